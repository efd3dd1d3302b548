"""Classification metrics: emotion recognition in conversation (ERC) and EmoVerse's binary sentiment."""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np
from sklearn.metrics import accuracy_score, f1_score, recall_score

from .parsing import SENTIMENT_LABELS
from .validation import check_class_values, check_same_length


def _encode(
    predictions: Sequence[Hashable | None], references: Sequence[Hashable], classes: Sequence[Hashable]
) -> tuple[np.ndarray, np.ndarray]:
    # Unparsable predictions (None) get the extra index len(classes): wrong for every sample, and, being left
    # out of sklearn's `labels`, they lower the recall of the true class without counting as any class.
    index = {label: position for position, label in enumerate(classes)}
    encoded_predictions = np.array([len(classes) if p is None else index[p] for p in predictions])
    return encoded_predictions, np.array([index[r] for r in references])


def _unparsable_counts(predictions: Sequence[Hashable | None]) -> dict[str, float]:
    unparsable = sum(prediction is None for prediction in predictions)
    return {"unparsable": float(unparsable), "unparsable_rate": unparsable / len(predictions)}


def erc_metrics(
    predictions: Sequence[str | int | None],
    references: Sequence[str | int],
    label_names: Sequence[str] | None = None,
) -> dict[str, float]:
    """Accuracy and weighted F1 (sklearn, weights = reference support) of emotion labels.

    Args:
        predictions: class names or class indices; None marks an unparsable answer (see
            ``parse_emotion_answer``), counted in ``unparsable`` and scored as wrong.
        references: class names or indices, the same kind as the predictions.
        label_names: the data set's classes. When given, every value must be one of them (names) or an index
            into them; without it the classes are those that occur.

    Returns:
        ``{"acc", "weighted_f1", "unparsable", "unparsable_rate"}``.
    """
    check_same_length(predictions, references)
    if label_names is not None and (
        isinstance(label_names, str) or len(set(label_names)) != len(label_names)
    ):
        raise ValueError(f"label_names must be a sequence of distinct class names; got {label_names!r}")
    reference_kind = check_class_values("references", references, label_names, allow_none=False)
    prediction_kind = check_class_values("predictions", predictions, label_names, allow_none=True)
    if prediction_kind is not None and prediction_kind != reference_kind:
        raise TypeError(
            f"predictions are {prediction_kind} values but references are {reference_kind} values; "
            "use class names on both sides or indices on both sides"
        )
    if label_names is None:
        classes: Sequence[Hashable] = sorted(set(references) | {p for p in predictions if p is not None})
    else:
        classes = list(label_names) if reference_kind == "str" else list(range(len(label_names)))
    encoded_predictions, encoded_references = _encode(predictions, references, classes)
    return {
        "acc": float(accuracy_score(encoded_references, encoded_predictions)),
        "weighted_f1": float(
            f1_score(
                encoded_references,
                encoded_predictions,
                labels=range(len(classes)),
                average="weighted",
                zero_division=0,
            )
        ),
        **_unparsable_counts(predictions),
    }


def binary_sentiment_metrics(
    predictions: Sequence[str | None], references: Sequence[str]
) -> dict[str, float]:
    """Accuracy and per-class recall of EmoVerse's MSA answers.

    Args:
        predictions: ``"Positive"``, ``"Negative"`` (the output of ``parse_sentiment_answer``) or None for an
            unparsable answer (counted in ``unparsable``, scored as wrong).
        references: ``"Positive"`` / ``"Negative"``. Which gold scores count as positive decides the Acc-2
            variant: EMT's N/P records drop score 0, the N/N variant maps score >= 0 to Positive.

    Returns:
        ``{"accuracy", "recall_positive", "recall_negative", "unparsable", "unparsable_rate"}``; a recall is
        NaN when the references hold no sample of that class.
    """
    check_same_length(predictions, references)
    check_class_values("references", references, SENTIMENT_LABELS, allow_none=False, allow_indices=False)
    check_class_values("predictions", predictions, SENTIMENT_LABELS, allow_none=True, allow_indices=False)
    encoded_predictions, encoded_references = _encode(predictions, references, SENTIMENT_LABELS)
    recall_positive, recall_negative = recall_score(
        encoded_references, encoded_predictions, labels=[0, 1], average=None, zero_division=np.nan
    )
    return {
        "accuracy": float(accuracy_score(encoded_references, encoded_predictions)),
        "recall_positive": float(recall_positive),
        "recall_negative": float(recall_negative),
        **_unparsable_counts(predictions),
    }
