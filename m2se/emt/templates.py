"""The exact EMT (emotion multitask) query/response templates of M2SE (arXiv 2412.08049).

The queries (and the task names) live in the remote code `templates_emoverse.py`, which the EmoVerse pipeline
ships with a checkpoint; this module re-exports them next to the responses.
"""

from __future__ import annotations

from collections.abc import Sequence

from templates_emoverse import (
    ECPE_FOOTER,
    ECPE_HEADER,
    EMT_TASKS,
    ERI_QUERY,
    FER_QUERY,
    ecpe_line,
    ecpe_query,
    er_query,
    msa_query,
)

__all__ = [
    "ECPE_FOOTER",
    "ECPE_HEADER",
    "EMT_TASKS",
    "ERI_QUERY",
    "ER_EMOTIONS",
    "FER_QUERY",
    "SYSTEM_PROMPT",
    "ecpe_line",
    "ecpe_query",
    "ecpe_response",
    "er_query",
    "label_answer",
    "msa_query",
    "msa_response",
]

SYSTEM_PROMPT = "You are an sentiment and emotion analysis expert."

ER_EMOTIONS = ("anger", "sadness", "surprise", "disgust", "joy", "neutral", "fear")


def label_answer(label: str) -> str:
    """``joy`` -> ``Joy.``: the answer form of MSA and ER responses."""
    return f"{label.strip().capitalize()}."


def msa_response(score: float, non_negative_is_positive: bool = False) -> str | None:
    """``Positive.``/``Negative.`` for a score; None for 0 unless the N/N variant maps >= 0 to Positive."""
    if score > 0 or (non_negative_is_positive and score == 0):
        return "Positive."
    if score < 0:
        return "Negative."
    return None


def ecpe_response(target_id: int, emotion: str, cause_ids: Sequence[int]) -> str:
    return ";".join(f"{target_id}_{emotion},{cause}" for cause in cause_ids)
