"""`evaluate.Metric` classes over the plain metric functions; the scripts in ``modules/`` re-export them.

``evaluate.load("<repo>/m2se/metrics/modules/erc")`` copies the script into its module cache and imports it,
so the scripts hold no logic: each imports its class from here (the installed ``m2se`` package) and
``evaluate`` takes the first metric class it finds in the script.

The classification modules take generated answers as ``predictions`` (evaluate's string columns cannot start
with None, the plain functions' mark for "unparsable") and parse them with the ``parse_*_answer`` functions;
references are parsed the same way and must parse. The other modules take exactly what the functions take.
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


class MsaRegression(evaluate.Metric):
    """MOSI/MOSEI regression metrics: see ``m2se.metrics.msa_regression_metrics``."""

    def _info(self) -> evaluate.MetricInfo:
        return _metric_info(msa_regression_metrics, _features("float64"))

    def _compute(self, predictions: Sequence[float], references: Sequence[float]) -> dict[str, float]:
        return msa_regression_metrics(predictions, references)


class SimsRegression(evaluate.Metric):
    """CH-SIMS / SIMS-V2 regression metrics: see ``m2se.metrics.sims_regression_metrics``."""

    def _info(self) -> evaluate.MetricInfo:
        return _metric_info(sims_regression_metrics, _features("float64"))

    def _compute(self, predictions: Sequence[float], references: Sequence[float]) -> dict[str, float]:
        return sims_regression_metrics(predictions, references)


class Erc(evaluate.Metric):
    """Accuracy and weighted F1 of emotion labels: see ``m2se.metrics.erc_metrics``.

    Class indices (int) are scored as they are. Strings are answers: ``label_names`` is then required, and
    predictions and references go through ``parse_emotion_answer(text, label_names, aliases)``.
    """

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


class Ecpe(evaluate.Metric):
    """Emotion-cause pair scores of ECPE answers: see ``m2se.metrics.ecpe_metrics``."""

    def _info(self) -> evaluate.MetricInfo:
        return _metric_info(ecpe_metrics, _features("string"))

    def _compute(self, predictions: Sequence[str], references: Sequence[str]) -> dict[str, float]:
        return ecpe_metrics(predictions, references)


class BinarySentiment(evaluate.Metric):
    """Accuracy and per-class recall of ``Positive.``/``Negative.`` answers, parsed with
    ``parse_sentiment_answer`` on both sides: see ``m2se.metrics.binary_sentiment_metrics``."""

    def _info(self) -> evaluate.MetricInfo:
        return _metric_info(binary_sentiment_metrics, _features("string"))

    def _compute(self, predictions: Sequence[str], references: Sequence[str]) -> dict[str, float]:
        parsed_predictions = [parse_sentiment_answer(prediction) for prediction in predictions]
        return binary_sentiment_metrics(
            parsed_predictions, _parse_references(references, parse_sentiment_answer)
        )
