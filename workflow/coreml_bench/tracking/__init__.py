"""Tracking: the MLflow mirror (``mlflow_store``), the per-variant stage (``variant``) and its
settings (``settings``). Importing this package does not import mlflow."""
