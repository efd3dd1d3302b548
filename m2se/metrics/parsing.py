"""Parsers that turn generated answers into class labels, returning None for answers that do not parse.

Rule (one for every classification task): after leading white space and an opening quote, the answer must
begin with one of the label names, compared case-insensitively, followed by the end of the text or a character
that is not a letter, digit or underscore. The rest of the answer is ignored. So ``"Joy."``, ``"joy"`` and
``"Joy. She laughs."`` parse as ``joy``, while ``"Joyful."`` and ``"The emotion is joy."`` do not parse. The
EMT responses that EmoVerse is trained on put the label first (``Positive.``, ``Joy.``), so an answer that
does not is a model error, and it is scored as wrong: metrics take None as "unparsable", count it and never
map it to a default class.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from templates_emoverse import CLOSED_TASK_ANSWERS

SENTIMENT_LABELS = tuple(answer.removesuffix(".") for answer in CLOSED_TASK_ANSWERS["msa"])
_LEADING_NOISE = re.compile(r"^[\s\"'“‘`]*")


def _leading_label(text: str, candidates: Mapping[str, str]) -> str | None:
    if not isinstance(text, str):
        raise TypeError(f"expected the generated answer as a str, got {type(text).__name__} {text!r}")
    answer = _LEADING_NOISE.sub("", text).casefold()
    # Longest first, so that a label that extends another (e.g. "very positive" / "very") wins.
    for spelling in sorted(candidates, key=len, reverse=True):
        if answer.startswith(spelling) and not re.match(r"\w", answer[len(spelling) : len(spelling) + 1]):
            return candidates[spelling]
    return None


def parse_sentiment_answer(text: str) -> str | None:
    """Parse an EmoVerse MSA answer (``"Positive."``/``"Negative."``) into "Positive", "Negative" or None."""
    return _leading_label(text, {label.casefold(): label for label in SENTIMENT_LABELS})


def parse_emotion_answer(
    text: str, label_names: Sequence[str], aliases: Mapping[str, str] | None = None
) -> str | None:
    """Parse an emotion answer into the matching entry of ``label_names`` (its own spelling), or None.

    Args:
        text: the generated answer, e.g. ``"Joy."``.
        label_names: the data set's class names, e.g. MELD's ``["neutral", "surprise", "fear", "sadness",
            "joy", "disgust", "anger"]``.
        aliases: other spellings accepted for a label, ``{alias: label_name}``. None by default: MELD's joy
            is answered ``Joy.``. EMT's MOSEI ER records answer ``Happy.`` for joy; to score a model trained
            on them against MELD labels and accept that spelling, pass ``aliases={"happy": "joy"}``
            explicitly (the released M2SE scorer looked only for ``Happy.`` and so missed every ``Joy.``).

    Raises:
        ValueError: empty or duplicate label names, or an alias whose target is not a label name.
    """
    if isinstance(label_names, str) or len(label_names) == 0:
        raise ValueError(f"label_names must be a non-empty sequence of class names; got {label_names!r}")
    candidates = {name.casefold(): name for name in label_names}
    if len(candidates) != len(label_names):
        raise ValueError(f"label_names must be distinct (case-insensitively); got {list(label_names)}")
    for alias, target in (aliases or {}).items():
        if target not in label_names:
            raise ValueError(f"alias {alias!r} maps to {target!r}, which is not one of {list(label_names)}")
        if alias.casefold() in candidates and candidates[alias.casefold()] != target:
            raise ValueError(f"alias {alias!r} is already the label {candidates[alias.casefold()]!r}")
        candidates[alias.casefold()] = target
    return _leading_label(text, candidates)
