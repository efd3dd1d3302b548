"""Sentiment-intensity regression metrics with the MMSA conventions (CMU-MOSI/MOSEI and CH-SIMS/SIMS-V2)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import accuracy_score, f1_score

from .validation import as_finite_float_array, check_same_length

# Inner bin edges of the SIMS metrics; bins are right-closed: Mult_acc_3 is [-1, -0.1], (-0.1, 0.1], (0.1, 1].
SIMS_BIN_THRESHOLDS: dict[str, tuple[float, ...]] = {
    "Mult_acc_2": (0.0,),
    "Mult_acc_3": (-0.1, 0.1),
    "Mult_acc_5": (-0.7, -0.1, 0.1, 0.7),
}
SIMS_WEAK_RANGE = (-0.4, 0.4)


def _pearson(predictions: np.ndarray, references: np.ndarray) -> float:
    # Undefined (not zero) when either side is constant, e.g. an untrained model that always answers +0.0.
    if predictions.size < 2 or np.ptp(predictions) == 0 or np.ptp(references) == 0:
        return float("nan")
    # The correlation does not depend on scale: dividing each side by its largest magnitude keeps the sums of
    # squares inside corrcoef from overflowing for values near the float64 limit.
    scaled_predictions = predictions / np.abs(predictions).max()
    scaled_references = references / np.abs(references).max()
    return float(np.clip(np.corrcoef(scaled_predictions, scaled_references)[0, 1], -1.0, 1.0))


def _mean_absolute_error(predictions: np.ndarray, references: np.ndarray) -> float:
    # Scaled like _pearson, so that differences of large values do not overflow on the way to a finite mean.
    scale = max(float(np.abs(predictions).max()), float(np.abs(references).max())) or 1.0
    with np.errstate(over="ignore"):
        error = float(scale * np.mean(np.abs(predictions / scale - references / scale)))
    if not np.isfinite(error):
        raise ValueError(
            f"the mean absolute error of these values exceeds the float64 range (largest magnitude {scale:g})"
        )
    return error


def _rounded_class_accuracy(predictions: np.ndarray, references: np.ndarray, bound: float) -> float:
    # np.round rounds halves to even (2.5 -> 2) as MMSA does; one-decimal answers like +0.5 hit this often.
    clipped_predictions = np.round(np.clip(predictions, -bound, bound))
    clipped_references = np.round(np.clip(references, -bound, bound))
    return float(np.mean(clipped_predictions == clipped_references))


def _validated_pair(
    predictions: Sequence[float], references: Sequence[float]
) -> tuple[np.ndarray, np.ndarray]:
    check_same_length(predictions, references)
    return as_finite_float_array("predictions", predictions), as_finite_float_array("references", references)


def msa_regression_metrics(predictions: Sequence[float], references: Sequence[float]) -> dict[str, float]:
    """MOSI/MOSEI metrics in [-3, 3] with the MMSA definitions.

    - ``Has0_acc_2`` / ``Has0_F1_score``: reference >= 0 against prediction >= 0 on every sample (negative vs
      non-negative, the "N/N" Acc-2 of M2SE); the F1 is sklearn's weighted F1 over the two classes.
    - ``Non0_acc_2`` / ``Non0_F1_score``: only samples whose reference is not 0; > 0 against <= 0 (negative vs
      positive, M2SE's "N/P"). NaN when every reference is 0.
    - ``Mult_acc_5`` / ``Mult_acc_7``: both sides clipped to [-2, 2] / [-3, 3] and rounded to the nearest
      integer (halves to even, like ``numpy.round``); the fraction of equal classes.
    - ``MAE``: mean absolute error of the unclipped values. ``Corr``: Pearson correlation of the unclipped
      values, NaN when either side is constant or there is a single sample.

    Args:
        predictions: predicted intensities, finite real numbers.
        references: gold intensities, the same length.

    Returns:
        A dict of floats with the eight keys above. Raises ValueError/TypeError on empty inputs, different
        lengths, NaN/inf or non-numeric values.
    """
    predictions_array, references_array = _validated_pair(predictions, references)
    has0_references = references_array >= 0
    has0_predictions = predictions_array >= 0
    non_zero = references_array != 0
    if non_zero.any():
        non0_references = references_array[non_zero] > 0
        non0_predictions = predictions_array[non_zero] > 0
        non0_acc = float(accuracy_score(non0_references, non0_predictions))
        non0_f1 = float(f1_score(non0_references, non0_predictions, average="weighted", zero_division=0))
    else:
        non0_acc = non0_f1 = float("nan")
    return {
        "Has0_acc_2": float(accuracy_score(has0_references, has0_predictions)),
        "Has0_F1_score": float(
            f1_score(has0_references, has0_predictions, average="weighted", zero_division=0)
        ),
        "Non0_acc_2": non0_acc,
        "Non0_F1_score": non0_f1,
        "Mult_acc_5": _rounded_class_accuracy(predictions_array, references_array, 2.0),
        "Mult_acc_7": _rounded_class_accuracy(predictions_array, references_array, 3.0),
        "MAE": _mean_absolute_error(predictions_array, references_array),
        "Corr": _pearson(predictions_array, references_array),
    }


def _sims_bins(values: np.ndarray, thresholds: tuple[float, ...]) -> np.ndarray:
    # Rounding to 6 decimals first puts a label stored as float32 (0.1 -> 0.10000000149) in the bin that the
    # definition names, (-0.1, 0.1]; MMSA compares float32 tensors and so moves such labels one bin up.
    return np.digitize(np.round(values, 6), thresholds, right=True)


def sims_regression_metrics(predictions: Sequence[float], references: Sequence[float]) -> dict[str, float]:
    """CH-SIMS / SIMS-V2 metrics with the MMSA definitions; both sides are first clipped to [-1, 1].

    - ``Mult_acc_2``: classes [-1, 0] and (0, 1]. ``Mult_acc_2_weak``: the same on the samples whose reference
      lies in [-0.4, 0.4] (NaN when there are none). ``Mult_acc_3``: [-1, -0.1], (-0.1, 0.1], (0.1, 1].
      ``Mult_acc_5``: [-1, -0.7], (-0.7, -0.1], (-0.1, 0.1], (0.1, 0.7], (0.7, 1].
    - ``F1_score``: sklearn's weighted F1 over the two ``Mult_acc_2`` classes.
    - ``MAE`` and ``Corr`` (Pearson; NaN when either side is constant) of the clipped values.

    Values are rounded to 6 decimals before binning and before the weak-range test, so float32 labels such as
    0.1 or -0.4 fall in the bins named above.
    """
    predictions_array, references_array = _validated_pair(predictions, references)
    predictions_array = np.clip(predictions_array, -1.0, 1.0)
    references_array = np.clip(references_array, -1.0, 1.0)
    results = {
        name: float(np.mean(_sims_bins(predictions_array, edges) == _sims_bins(references_array, edges)))
        for name, edges in SIMS_BIN_THRESHOLDS.items()
    }
    rounded_references = np.round(references_array, 6)
    weak = (rounded_references >= SIMS_WEAK_RANGE[0]) & (rounded_references <= SIMS_WEAK_RANGE[1])
    two_class_edges = SIMS_BIN_THRESHOLDS["Mult_acc_2"]
    results["Mult_acc_2_weak"] = (
        float(
            np.mean(
                _sims_bins(predictions_array[weak], two_class_edges)
                == _sims_bins(references_array[weak], two_class_edges)
            )
        )
        if weak.any()
        else float("nan")
    )
    results["F1_score"] = float(
        f1_score(
            _sims_bins(references_array, two_class_edges),
            _sims_bins(predictions_array, two_class_edges),
            average="weighted",
            zero_division=0,
        )
    )
    results["MAE"] = _mean_absolute_error(predictions_array, references_array)
    results["Corr"] = _pearson(predictions_array, references_array)
    ordered_keys = ("Mult_acc_2", "Mult_acc_2_weak", "Mult_acc_3", "Mult_acc_5", "F1_score", "MAE", "Corr")
    return {key: results[key] for key in ordered_keys}
