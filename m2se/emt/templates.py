"""The exact EMT (emotion multitask) query/response templates of M2SE (arXiv 2412.08049).

The task names, the system prompt, the queries and the answers of the closed tasks (MSA, ER) live in the
remote code `templates_emoverse.py`, which a checkpoint ships (the EmoVerse processor constrains generation to
those answers, the pipeline builds its queries); this module re-exports them next to the responses.
"""

from __future__ import annotations

from collections.abc import Sequence

from templates_emoverse import (
    CLOSED_TASK_ANSWERS,
    DEFAULT_SYSTEM_PROMPT,
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
    "CLOSED_TASK_ANSWERS",
    "DEFAULT_SYSTEM_PROMPT",
    "ECPE_FOOTER",
    "ECPE_HEADER",
    "EMT_TASKS",
    "ERI_QUERY",
    "ER_EMOTIONS",
    "FER_QUERY",
    "ecpe_line",
    "ecpe_query",
    "ecpe_response",
    "er_query",
    "label_answer",
    "msa_query",
    "msa_response",
]

ER_EMOTIONS = tuple(answer.removesuffix(".").lower() for answer in CLOSED_TASK_ANSWERS["er"])
"""The ER emotions in the order of the ER query and the answer set: anger, sadness, ..., fear."""

_CLOSED_ANSWERS = CLOSED_TASK_ANSWERS["msa"] + CLOSED_TASK_ANSWERS["er"]


def label_answer(label: str) -> str:
    """``joy`` -> ``Joy.``: the answer form of MSA and ER responses; ValueError for a label outside the answer
    sets (e.g. ``happy``: EmoVerse answers ``Joy.``)."""
    answer = f"{label.strip().capitalize()}."
    if answer not in _CLOSED_ANSWERS:
        raise ValueError(
            f"{answer!r} is not an answer of EmoVerse's closed tasks; expected one of {_CLOSED_ANSWERS}"
        )
    return answer


def msa_response(score: float, non_negative_is_positive: bool = False) -> str | None:
    """``Positive.``/``Negative.`` for a score; None for 0 unless the N/N variant maps >= 0 to Positive."""
    positive, negative = CLOSED_TASK_ANSWERS["msa"]
    if score > 0 or (non_negative_is_positive and score == 0):
        return positive
    if score < 0:
        return negative
    return None


def ecpe_response(target_id: int, emotion: str, cause_ids: Sequence[int]) -> str:
    return ";".join(f"{target_id}_{emotion},{cause}" for cause in cause_ids)
