"""Metrics of both papers as plain functions over sequences, plus `evaluate` modules kept in the package.

Every function validates its inputs before computing (different lengths, empty inputs, NaN/inf, unknown labels
raise ValueError or TypeError naming what was expected and what was received) and returns a flat
``dict[str, float]`` that the Trainer can log. Answers of generative models are parsed with the
``parse_*_answer`` functions; None (unparsable) is counted and scored as wrong, never mapped to a class.
"""

from __future__ import annotations

from pathlib import Path

from .classification import binary_sentiment_metrics, erc_metrics
from .ecpe import ECPE_EMOTIONS, ecpe_metrics, parse_ecpe_answer
from .parsing import SENTIMENT_LABELS, parse_emotion_answer, parse_sentiment_answer
from .regression import msa_regression_metrics, sims_regression_metrics

EVALUATE_MODULES = ("msa_regression", "sims_regression", "erc", "ecpe", "binary_sentiment")


def evaluate_module_path(name: str) -> str:
    """Folder of `evaluate` module ``name``: ``evaluate.load(evaluate_module_path("erc"))`` (offline)."""
    if name not in EVALUATE_MODULES:
        raise ValueError(f"unknown metric module {name!r}; expected one of {EVALUATE_MODULES}")
    return str(Path(__file__).parent / "modules" / name)


__all__ = [
    "ECPE_EMOTIONS",
    "EVALUATE_MODULES",
    "SENTIMENT_LABELS",
    "binary_sentiment_metrics",
    "ecpe_metrics",
    "erc_metrics",
    "evaluate_module_path",
    "msa_regression_metrics",
    "parse_ecpe_answer",
    "parse_emotion_answer",
    "parse_sentiment_answer",
    "sims_regression_metrics",
]
