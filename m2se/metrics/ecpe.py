"""Emotion-cause pair extraction (ECF 2.0 Subtask 2, utterance level) answers and their scores."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

from .validation import check_same_length

# The six emotions that a target utterance of an ECPE record can carry (neutral utterances get no record).
ECPE_EMOTIONS = ("anger", "disgust", "fear", "joy", "sadness", "surprise")
_PAIR = re.compile(r"(\d+)_([A-Za-z]+)\s*,\s*(\d+)")

EmotionCausePair = tuple[int, str, int]


def parse_ecpe_answer(text: str) -> list[EmotionCausePair] | None:
    """Parse ``"5_surprise,2;5_surprise,5"`` into ``[(5, "surprise", 2), (5, "surprise", 5)]``.

    Each ``;``-separated item must be ``{target}_{emotion},{cause}`` with integer indices and one of
    ``ECPE_EMOTIONS`` (case-insensitive, returned in lower case); white space around items and around the
    comma is allowed. An empty (or blank) answer means "no pair" and gives ``[]``. Anything else gives None
    (unparsable).
    """
    if not isinstance(text, str):
        raise TypeError(f"expected the ECPE answer as a str, got {type(text).__name__} {text!r}")
    if not text.strip():
        return []
    pairs = []
    for item in text.split(";"):
        match = _PAIR.fullmatch(item.strip())
        if match is None or match.group(2).casefold() not in ECPE_EMOTIONS:
            return None
        pairs.append((int(match.group(1)), match.group(2).casefold(), int(match.group(3))))
    return pairs


def _f1(true_positives: int, false_positives: int, false_negatives: int) -> tuple[float, float, float]:
    # A class with no prediction has precision 0 (and F1 0), not a division error.
    predicted, gold = true_positives + false_positives, true_positives + false_negatives
    precision = true_positives / predicted if predicted else 0.0
    recall = true_positives / gold if gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def ecpe_metrics(predictions: Sequence[str | None], references: Sequence[str]) -> dict[str, float]:
    """Pair-level precision, recall and F1, and the F1 weighted over the six emotions, of ECPE answers.

    Matching: within one record, a predicted pair matches a gold pair when the target index, the emotion and
    the cause index are all equal; a pair repeated in one answer counts once. Counts are summed over records
    (micro average) for ``precision``/``recall``/``f1``. A pair with the right indices but the wrong emotion
    is a false positive of the predicted emotion and leaves the gold pair a false negative of its own emotion.
    ``f1_<emotion>`` is the same F1 restricted to pairs of that emotion, and ``weighted_f1`` the mean of the
    six weighted by the number of gold pairs of each emotion (the SemEval-2024 Task 3 ranking metric).

    Records whose reference is empty (the target has no cause) are skipped, as in the released M2SE scorer;
    their number is reported as ``skipped_empty_references``. Unparsable predictions (None or text that
    ``parse_ecpe_answer`` rejects) count as predicting no pair and are reported in ``unparsable`` and
    ``unparsable_rate`` (over the scored records).

    Raises:
        ValueError: different lengths, empty input, a reference that does not parse, or no gold pair at all.
        TypeError: a reference that is not a str, or a prediction that is neither str nor None.
    """
    check_same_length(predictions, references)
    scored: list[tuple[set[EmotionCausePair], set[EmotionCausePair]]] = []
    unparsable = 0
    for index, (prediction, reference) in enumerate(zip(predictions, references, strict=True)):
        if not isinstance(reference, str):
            raise TypeError(
                f"references[{index}] must be a str; got {type(reference).__name__} {reference!r}"
            )
        if prediction is not None and not isinstance(prediction, str):
            raise TypeError(
                f"predictions[{index}] must be a str or None; got {type(prediction).__name__} {prediction!r}"
            )
        gold = parse_ecpe_answer(reference)
        if gold is None:
            raise ValueError(
                f"references[{index}] = {reference!r} is not a list of pairs like "
                f"'5_surprise,2;5_surprise,5' with emotions from {ECPE_EMOTIONS}"
            )
        if not gold:
            continue
        predicted = None if prediction is None else parse_ecpe_answer(prediction)
        unparsable += predicted is None
        scored.append((set(predicted or ()), set(gold)))
    if not scored:
        raise ValueError(
            f"all {len(references)} references are empty; ECPE scores need at least one gold pair"
        )

    counts = {name: Counter() for name in ("tp", "fp", "fn")}
    for predicted, gold in scored:
        counts["tp"].update(pair[1] for pair in predicted & gold)
        counts["fp"].update(pair[1] for pair in predicted - gold)
        counts["fn"].update(pair[1] for pair in gold - predicted)
    precision, recall, f1 = _f1(*(sum(counts[name].values()) for name in ("tp", "fp", "fn")))
    per_emotion_f1 = {
        emotion: _f1(*(counts[name][emotion] for name in ("tp", "fp", "fn")))[2] for emotion in ECPE_EMOTIONS
    }
    gold_per_emotion = {emotion: counts["tp"][emotion] + counts["fn"][emotion] for emotion in ECPE_EMOTIONS}
    weighted_f1 = sum(gold_per_emotion[e] * per_emotion_f1[e] for e in ECPE_EMOTIONS) / sum(
        gold_per_emotion.values()
    )
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "weighted_f1": weighted_f1,
        **{f"f1_{emotion}": value for emotion, value in per_emotion_f1.items()},
        "unparsable": float(unparsable),
        "unparsable_rate": unparsable / len(scored),
        "skipped_empty_references": float(len(references) - len(scored)),
    }
