"""Aggregation: the tables (``tables``), the Pareto plot (``plot``) and the stage (``stage``)."""
