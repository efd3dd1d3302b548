"""`evaluate.Metric` classes over the plain metric functions; the scripts in ``modules/`` re-export them.

``evaluate.load("<repo>/m2se/metrics/modules/erc")`` copies the script into its module cache and imports it,
so the scripts hold no logic: each imports its class from here (the installed ``m2se`` package) and
``evaluate`` takes the first metric class it finds in the script.

The classification modules take generated answers as ``predictions`` (evaluate's string columns cannot start
with None, the plain functions' mark for "unparsable") and parse them with the ``parse_*_answer`` functions;
references are parsed the same way and must parse. The other modules take exactly what the functions take.

Every module checks each batch (``compute``, ``add_batch``, ``add``) with the functions' own checks before
evaluate casts it to the module's features: the cast would otherwise accept what the functions refuse (the
string ``"1.5"`` as a regression value, the integer 5 as an answer).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence

import datasets
import evaluate

from .classification import binary_sentiment_metrics, erc_metrics
from .ecpe import ecpe_metrics
from .parsing import parse_emotion_answer, parse_sentiment_answer
from .regression import msa_regression_metrics, sims_regression_metrics
from .validation import as_finite_float_array, check_class_values, check_same_length

_CITATION = (
    "MMSA metric conventions (Yu et al., CH-SIMS, ACL 2020); MSE-Adapter (Yang et al., AAAI 2025); "
    "M2SE (Li et al., arXiv 2412.08049); SemEval-2024 Task 3 (Wang et al., 2024)."
)


def _features(dtype: str) -> datasets.Features:
    return datasets.Features({"predictions": datasets.Value(dtype), "references": datasets.Value(dtype)})


def _metric_info(function: Callable[..., dict[str, float]], features) -> evaluate.MetricInfo:
    return evaluate.MetricInfo(
        description=f"m2se.metrics.{function.__name__}",
        citation=_CITATION,
        inputs_description=function.__doc__ or "",
        features=features,
    )


def _parse_references(references: Sequence[str], parse: Callable[[str], str | None]) -> list[str]:
    parsed = [parse(reference) for reference in references]
    for index, (reference, label) in enumerate(zip(references, parsed, strict=True)):
        if label is None:
            raise ValueError(f"references[{index}] = {reference!r} does not parse as a label")
    return parsed


def _check_numbers(predictions: Sequence[float], references: Sequence[float]) -> None:
    check_same_length(predictions, references)
    as_finite_float_array("predictions", predictions)
    as_finite_float_array("references", references)


def _check_answers(predictions: Sequence[str], references: Sequence[str]) -> None:
    check_same_length(predictions, references)
    for name, values in (("predictions", predictions), ("references", references)):
        for index, value in enumerate(values):
            if not isinstance(value, str):
                raise TypeError(f"{name}[{index}] must be a str answer; got {type(value).__name__} {value!r}")


def _check_emotion_values(predictions: Sequence[str | int], references: Sequence[str | int]) -> None:
    check_same_length(predictions, references)
    reference_kind = check_class_values("references", references, None, allow_none=False)
    prediction_kind = check_class_values("predictions", predictions, None, allow_none=False)
    if prediction_kind != reference_kind:
        raise TypeError(
            f"predictions are {prediction_kind} values but references are {reference_kind} values; "
            "use answers (str) on both sides or class indices (int) on both sides"
        )
    if reference_kind == "int":
        too_large = [value for value in (*predictions, *references) if not -(2**63) <= value < 2**63]
        if too_large:
            raise ValueError(f"class indices must fit in 64 bits; got {too_large[0]}")


class _CheckedMetric(evaluate.Metric):
    """An ``evaluate.Metric`` whose batches go through ``check_inputs`` before evaluate stores them."""

    check_inputs: Callable[[Sequence, Sequence], None]

    def add_batch(self, *, predictions=None, references=None, **kwargs) -> None:
        """Check a batch of predictions and references as the plain function does, then add it.\n"""
        type(self).check_inputs(predictions, references)
        evaluate.Metric.add_batch(self, predictions=predictions, references=references, **kwargs)

    def add(self, *, prediction=None, reference=None, **kwargs) -> None:
        """Check one prediction and reference as the plain function does, then add them.\n"""
        type(self).check_inputs([prediction], [reference])
        evaluate.Metric.add(self, prediction=prediction, reference=reference, **kwargs)


class MsaRegression(_CheckedMetric):
    """MOSI/MOSEI regression metrics: see ``m2se.metrics.msa_regression_metrics``."""

    check_inputs = staticmethod(_check_numbers)

    def _info(self) -> evaluate.MetricInfo:
        return _metric_info(msa_regression_metrics, _features("float64"))

    def _compute(self, predictions: Sequence[float], references: Sequence[float]) -> dict[str, float]:
        return msa_regression_metrics(predictions, references)


class SimsRegression(_CheckedMetric):
    """CH-SIMS / SIMS-V2 regression metrics: see ``m2se.metrics.sims_regression_metrics``."""

    check_inputs = staticmethod(_check_numbers)

    def _info(self) -> evaluate.MetricInfo:
        return _metric_info(sims_regression_metrics, _features("float64"))

    def _compute(self, predictions: Sequence[float], references: Sequence[float]) -> dict[str, float]:
        return sims_regression_metrics(predictions, references)


class Erc(_CheckedMetric):
    """Accuracy and weighted F1 of emotion labels: see ``m2se.metrics.erc_metrics``.

    Class indices (int) are scored as they are. Strings are answers: ``label_names`` is then required, and
    predictions and references go through ``parse_emotion_answer(text, label_names, aliases)``.
    """

    check_inputs = staticmethod(_check_emotion_values)

    def _info(self) -> evaluate.MetricInfo:
        return _metric_info(erc_metrics, [_features("string"), _features("int64")])

    def _compute(
        self,
        predictions: Sequence[str | int],
        references: Sequence[str | int],
        label_names: Sequence[str] | None = None,
        aliases: Mapping[str, str] | None = None,
    ) -> dict[str, float]:
        if isinstance(references[0], str):
            if label_names is None:
                raise ValueError("string answers need label_names=[...] to be parsed; got label_names=None")
            parse = functools.partial(parse_emotion_answer, label_names=label_names, aliases=aliases)
            predictions = [parse(prediction) for prediction in predictions]
            references = _parse_references(references, parse)
        return erc_metrics(predictions, references, label_names)


class Ecpe(_CheckedMetric):
    """Emotion-cause pair scores of ECPE answers: see ``m2se.metrics.ecpe_metrics``."""

    check_inputs = staticmethod(_check_answers)

    def _info(self) -> evaluate.MetricInfo:
        return _metric_info(ecpe_metrics, _features("string"))

    def _compute(self, predictions: Sequence[str], references: Sequence[str]) -> dict[str, float]:
        return ecpe_metrics(predictions, references)


class BinarySentiment(_CheckedMetric):
    """Accuracy and per-class recall of ``Positive.``/``Negative.`` answers, parsed with
    ``parse_sentiment_answer`` on both sides: see ``m2se.metrics.binary_sentiment_metrics``."""

    check_inputs = staticmethod(_check_answers)

    def _info(self) -> evaluate.MetricInfo:
        return _metric_info(binary_sentiment_metrics, _features("string"))

    def _compute(self, predictions: Sequence[str], references: Sequence[str]) -> dict[str, float]:
        parsed_predictions = [parse_sentiment_answer(prediction) for prediction in predictions]
        return binary_sentiment_metrics(
            parsed_predictions, _parse_references(references, parse_sentiment_answer)
        )
