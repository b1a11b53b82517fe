"""Evaluation: the evaluator registry (``registry``, entries in ``backends``), the metrics
(``metrics``) and the stage (``stage``)."""

from . import backends as _backends  # noqa: F401 - registers the built-in evaluators
from .registry import EVALUATORS, Evaluator, Predictor, resolve_evaluator

__all__ = ["EVALUATORS", "Evaluator", "Predictor", "resolve_evaluator"]
