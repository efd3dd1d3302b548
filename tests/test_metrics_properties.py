"""Property-based tests of every public metric function and `evaluate` module (Hypothesis).

Random shapes, dtypes, NaN/inf, lengths and strings: each call either raises a ValueError / TypeError with a
message, or returns a result that is valid (the documented keys, floats in their ranges, NaN only where the
docstring says so) and agrees with a direct computation. Never another exception, never a silent wrong answer.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import evaluate
import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from m2se.metrics import (
    ECPE_EMOTIONS,
    SENTIMENT_LABELS,
    binary_sentiment_metrics,
    ecpe_metrics,
    erc_metrics,
    evaluate_module_path,
    msa_regression_metrics,
    parse_ecpe_answer,
    parse_emotion_answer,
    parse_sentiment_answer,
    sims_regression_metrics,
)

MELD_LABELS = ("neutral", "surprise", "fear", "sadness", "joy", "disgust", "anger")
FAST = settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

# ------------------------------------------------------------------ inputs

scalars = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=-5, max_value=5),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.integers(min_value=-3, max_value=3),
    st.booleans(),
    st.none(),
    st.text(max_size=6),
    st.complex_numbers(max_magnitude=10),
)
arrays = hnp.arrays(
    dtype=st.one_of(
        hnp.floating_dtypes(),
        hnp.integer_dtypes(),
        hnp.complex_number_dtypes(),
        hnp.boolean_dtypes(),
        hnp.unicode_string_dtypes(max_len=3),
    ),
    shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4),
)
sequences = st.one_of(
    st.lists(scalars, max_size=8), st.lists(st.lists(scalars, max_size=2), max_size=3), arrays
)
# Mostly well-formed pairs, so that the valid results get checked too.
finite_numbers = st.lists(
    st.floats(min_value=-4, max_value=4, allow_subnormal=False), min_size=1, max_size=12
)
number_pairs = st.one_of(
    st.tuples(sequences, sequences),
    finite_numbers.flatmap(
        lambda p: st.tuples(
            st.just(p),
            st.lists(st.sampled_from([-3.0, -0.5, 0.0, 0.1, 2.0]), min_size=len(p), max_size=len(p)),
        )
    ),
    finite_numbers.map(lambda p: (p, list(p))),
    st.integers(1, 6).flatmap(
        lambda n: st.tuples(
            st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=n, max_size=n),
            st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=n, max_size=n),
        )
    ),
)


def _call(function: Callable, *args, **kwargs):
    """The result, or None after a ValueError / TypeError with a message; any other exception fails."""
    try:
        return function(*args, **kwargs)
    except (ValueError, TypeError) as error:
        assert str(error).strip(), f"{type(error).__name__} without a message"
        return None


def _as_floats(values) -> np.ndarray:
    return np.asarray(values, dtype=np.float64)


def _mean_absolute_error(p: np.ndarray, r: np.ndarray) -> float:
    # Each term divided by n first: the sum cannot overflow when the mean itself is a float64.
    return float(np.sum(np.abs(p / p.size - r / r.size)))


def _real_numbers(values) -> bool:
    """A 1-D sequence of real numbers: the only regression input that may give a result."""
    array = np.asarray(values, dtype=object)
    real = (int, float, np.integer, np.floating)
    return array.ndim == 1 and all(
        isinstance(value, real) and not isinstance(value, (bool, np.bool_)) for value in array.tolist()
    )


def _check_floats(result: dict, keys: tuple[str, ...], nan_allowed: dict[str, bool]) -> None:
    assert tuple(result) == keys
    for key, value in result.items():
        assert type(value) is float, (key, value)
        if math.isnan(value):
            assert nan_allowed.get(key, False), f"{key} is NaN for inputs that define it"


# ------------------------------------------------------------------ regression

MSA_KEYS = (
    "Has0_acc_2",
    "Has0_F1_score",
    "Non0_acc_2",
    "Non0_F1_score",
    "Mult_acc_5",
    "Mult_acc_7",
    "MAE",
    "Corr",
)
SIMS_KEYS = ("Mult_acc_2", "Mult_acc_2_weak", "Mult_acc_3", "Mult_acc_5", "F1_score", "MAE", "Corr")


def _constant_or_single(predictions: np.ndarray, references: np.ndarray) -> bool:
    return predictions.size < 2 or np.ptp(predictions) == 0 or np.ptp(references) == 0


def _check_msa(result: dict, predictions, references) -> None:
    assert _real_numbers(predictions) and _real_numbers(references), "a result for non-numeric input"
    p, r = _as_floats(predictions), _as_floats(references)
    assert np.isfinite(p).all() and np.isfinite(r).all(), "NaN/inf input gave a result"
    non_zero = r != 0
    _check_floats(
        result,
        MSA_KEYS,
        {
            "Non0_acc_2": not non_zero.any(),
            "Non0_F1_score": not non_zero.any(),
            "Corr": _constant_or_single(p, r),
        },
    )
    assert result["Has0_acc_2"] == pytest.approx(np.mean((p >= 0) == (r >= 0)))
    if non_zero.any():
        assert result["Non0_acc_2"] == pytest.approx(np.mean((p[non_zero] > 0) == (r[non_zero] > 0)))
    assert math.isfinite(result["MAE"]) and result["MAE"] == pytest.approx(_mean_absolute_error(p, r))
    for key in ("Has0_F1_score", "Non0_F1_score", "Mult_acc_5", "Mult_acc_7"):
        assert math.isnan(result[key]) or 0.0 <= result[key] <= 1.0
    assert math.isnan(result["Corr"]) or -1.0 - 1e-9 <= result["Corr"] <= 1.0 + 1e-9


def _check_sims(result: dict, predictions, references) -> None:
    assert _real_numbers(predictions) and _real_numbers(references), "a result for non-numeric input"
    assert np.isfinite(_as_floats(predictions)).all() and np.isfinite(_as_floats(references)).all()
    p, r = np.clip(_as_floats(predictions), -1, 1), np.clip(_as_floats(references), -1, 1)
    weak = (np.round(r, 6) >= -0.4) & (np.round(r, 6) <= 0.4)
    _check_floats(result, SIMS_KEYS, {"Mult_acc_2_weak": not weak.any(), "Corr": _constant_or_single(p, r)})
    assert result["Mult_acc_2"] == pytest.approx(np.mean((np.round(p, 6) > 0) == (np.round(r, 6) > 0)))
    assert result["MAE"] == pytest.approx(_mean_absolute_error(p, r))
    for key in ("Mult_acc_2_weak", "Mult_acc_3", "Mult_acc_5", "F1_score"):
        assert math.isnan(result[key]) or 0.0 <= result[key] <= 1.0


@FAST
@given(number_pairs)
def test_msa_regression_metrics_property(pair):
    predictions, references = pair
    result = _call(msa_regression_metrics, predictions, references)
    if result is not None:
        _check_msa(result, predictions, references)


@FAST
@given(number_pairs)
def test_sims_regression_metrics_property(pair):
    predictions, references = pair
    result = _call(sims_regression_metrics, predictions, references)
    if result is not None:
        _check_sims(result, predictions, references)


# ------------------------------------------------------------------ classification

emotion_values = st.one_of(st.sampled_from(MELD_LABELS), st.integers(-2, 8), scalars)
emotion_pairs = st.one_of(
    st.tuples(st.lists(emotion_values, max_size=8), st.lists(emotion_values, max_size=8)),
    st.integers(1, 10).flatmap(
        lambda n: st.tuples(
            st.lists(st.one_of(st.none(), st.sampled_from(MELD_LABELS)), min_size=n, max_size=n),
            st.lists(st.sampled_from(MELD_LABELS), min_size=n, max_size=n),
        )
    ),
    st.integers(1, 10).flatmap(
        lambda n: st.tuples(
            st.lists(st.integers(0, 6), min_size=n, max_size=n),
            st.lists(st.integers(0, 6), min_size=n, max_size=n),
        )
    ),
    sequences.map(lambda values: (values, values)),
)


@FAST
@given(emotion_pairs, st.sampled_from([None, MELD_LABELS]))
def test_erc_metrics_property(pair, label_names):
    predictions, references = pair
    result = _call(erc_metrics, predictions, references, label_names)
    if result is None:
        return
    _check_floats(result, ("acc", "weighted_f1", "unparsable", "unparsable_rate"), {})
    correct = [p is not None and p == r for p, r in zip(predictions, references, strict=True)]
    assert result["acc"] == pytest.approx(np.mean(correct))
    assert result["unparsable"] == sum(p is None for p in predictions)
    assert 0.0 <= result["weighted_f1"] <= 1.0


sentiment_values = st.one_of(st.sampled_from([*SENTIMENT_LABELS, "positive", None]), scalars)
sentiment_pairs = st.one_of(
    st.tuples(st.lists(sentiment_values, max_size=8), st.lists(sentiment_values, max_size=8)),
    st.integers(1, 10).flatmap(
        lambda n: st.tuples(
            st.lists(st.sampled_from([*SENTIMENT_LABELS, None]), min_size=n, max_size=n),
            st.lists(st.sampled_from(SENTIMENT_LABELS), min_size=n, max_size=n),
        )
    ),
)


@FAST
@given(sentiment_pairs)
def test_binary_sentiment_metrics_property(pair):
    predictions, references = pair
    result = _call(binary_sentiment_metrics, predictions, references)
    if result is None:
        return
    has = {label: label in references for label in SENTIMENT_LABELS}
    keys = ("accuracy", "recall_positive", "recall_negative", "unparsable", "unparsable_rate")
    _check_floats(
        result, keys, {"recall_positive": not has["Positive"], "recall_negative": not has["Negative"]}
    )
    assert result["accuracy"] == pytest.approx(
        np.mean([p == r for p, r in zip(predictions, references, strict=True)])
    )
    for label, key in (("Positive", "recall_positive"), ("Negative", "recall_negative")):
        if has[label]:
            hits = [p == r for p, r in zip(predictions, references, strict=True) if r == label]
            assert result[key] == pytest.approx(np.mean(hits))


# ------------------------------------------------------------------ ECPE and the parsers

pair_texts = st.builds(
    lambda t, e, c: f"{t}_{e},{c}",
    st.integers(0, 12),
    st.sampled_from([*ECPE_EMOTIONS, "Joy", "neutral"]),
    st.integers(0, 12),
)
ecpe_answers = st.one_of(
    st.lists(pair_texts, max_size=3).map(";".join), st.text(max_size=12), st.none(), scalars
)


@FAST
@given(st.lists(st.tuples(ecpe_answers, ecpe_answers), max_size=6))
def test_ecpe_metrics_property(pairs):
    predictions, references = [p for p, _ in pairs], [r for _, r in pairs]
    result = _call(ecpe_metrics, predictions, references)
    if result is None:
        return
    keys = (
        "precision",
        "recall",
        "f1",
        "weighted_f1",
        *(f"f1_{e}" for e in ECPE_EMOTIONS),
        "unparsable",
        "unparsable_rate",
        "skipped_empty_references",
    )
    _check_floats(result, keys, {})
    for key in keys[:-3]:
        assert 0.0 <= result[key] <= 1.0
    assert result["skipped_empty_references"] == sum(not r.strip() for r in references)


@FAST
@given(st.one_of(st.text(max_size=20), scalars, pair_texts))
def test_parsers_property(text):
    sentiment = _call(parse_sentiment_answer, text)
    assert sentiment in (None, *SENTIMENT_LABELS)
    emotion = _call(parse_emotion_answer, text, MELD_LABELS)
    assert emotion is None or emotion in MELD_LABELS
    pairs = _call(parse_ecpe_answer, text)
    assert pairs is None or all(emotion in ECPE_EMOTIONS for _, emotion, _ in pairs)
    if not isinstance(text, str):
        assert sentiment is emotion is pairs is None


# ------------------------------------------------------------------ evaluate modules: the functions' rules


@pytest.fixture(scope="module")
def modules() -> dict[str, evaluate.EvaluationModule]:
    names = ("msa_regression", "sims_regression", "erc", "binary_sentiment", "ecpe")
    return {name: evaluate.load(evaluate_module_path(name)) for name in names}


def _module_call(module: evaluate.EvaluationModule, predictions, references, **kwargs):
    try:
        return module.compute(predictions=predictions, references=references, **kwargs)
    except (ValueError, TypeError) as error:
        assert str(error).strip()
        return None


@FAST
@given(number_pairs)
def test_regression_modules_validate_as_the_functions_do(modules, pair):
    predictions, references = pair
    for name, function, check in (
        ("msa_regression", msa_regression_metrics, _check_msa),
        ("sims_regression", sims_regression_metrics, _check_sims),
    ):
        expected = _call(function, predictions, references)
        result = _module_call(modules[name], predictions, references)
        assert (result is None) == (expected is None), (name, predictions, references)
        if result is not None:
            check(result, predictions, references)
            assert result == pytest.approx(expected, nan_ok=True)


@FAST
@given(emotion_pairs)
def test_erc_module_validates_as_the_function_does(modules, pair):
    predictions, references = pair
    result = _module_call(modules["erc"], predictions, references, label_names=list(MELD_LABELS))
    if result is None:
        return
    # Accepted: answers or indices of one kind on both sides, as erc_metrics takes them.
    kinds = {type(value) for value in (*predictions, *references)}
    assert kinds in ({str}, {int})
    _check_floats(result, ("acc", "weighted_f1", "unparsable", "unparsable_rate"), {})


@FAST
@given(
    st.one_of(
        sentiment_pairs,
        st.lists(st.tuples(ecpe_answers, ecpe_answers), max_size=5).map(
            lambda pairs: ([p for p, _ in pairs], [r for _, r in pairs])
        ),
    )
)
def test_answer_modules_take_only_str_answers(modules, pair):
    predictions, references = pair
    for name in ("binary_sentiment", "ecpe"):
        result = _module_call(modules[name], predictions, references)
        if result is not None:
            assert all(isinstance(value, str) for value in (*predictions, *references)), name
            assert all(type(value) is float for value in result.values())
