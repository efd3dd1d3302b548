"""Input checks of the metrics, public for other modules that score predictions (``m2se.reporting``): each
raises before computing, naming what it expected and what it got."""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral
from typing import Any

import numpy as np


def check_same_length(predictions: Sequence[Any], references: Sequence[Any]) -> int:
    """Return the common length of two non-empty sequences, or raise ValueError."""
    if len(predictions) != len(references):
        raise ValueError(
            f"predictions and references must have the same length; got {len(predictions)} predictions "
            f"and {len(references)} references"
        )
    if len(predictions) == 0:
        raise ValueError("expected at least one prediction/reference pair, got empty inputs")
    return len(predictions)


def as_finite_float_array(name: str, values: Any) -> np.ndarray:
    """Convert a 1-D sequence of real numbers to float64, rejecting None, strings, booleans, complex numbers,
    NaN and infinities."""
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name} must be a 1-D sequence of numbers; got an array of shape {array.shape}")
    real_dtype = np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)
    # The elements as given: numpy would silently turn a True among floats into 1.0.
    elements = list(values) if isinstance(values, (list, tuple)) else None if real_dtype else array.tolist()
    for index, value in enumerate(elements or ()):
        if isinstance(value, (bool, np.bool_)) or not isinstance(
            value, (int, float, np.integer, np.floating)
        ):
            raise TypeError(
                f"{name} must contain real numbers only; got {type(value).__name__} {value!r} at index "
                f"{index} (dtype {array.dtype})"
            )
    if array.dtype == object:  # real numbers that numpy keeps as objects: Python ints beyond 64 bits
        try:
            array = np.array([float(value) for value in array.tolist()], dtype=np.float64)
        except OverflowError as error:
            raise ValueError(f"{name} holds a number too large for a float: {error}") from None
    array = array.astype(np.float64)
    non_finite = np.flatnonzero(~np.isfinite(array))
    if non_finite.size:
        raise ValueError(
            f"{name} must be finite numbers; got {non_finite.size} NaN/inf value(s), the first "
            f"{array[non_finite[0]]} at index {int(non_finite[0])}"
        )
    return array


def check_class_values(
    name: str,
    values: Sequence[Any],
    known: Sequence[str] | None,
    *,
    allow_none: bool,
    allow_indices: bool = True,
) -> str | None:
    """Check that class values are all strings or all integers (None allowed where stated).

    Returns the kind of the values ("str" or "int"; None when every value is None). With ``known`` (the
    label names), string values must be one of them and integer values (unless ``allow_indices`` is False) an
    index into them.
    """
    kinds: set[str] = set()
    for index, value in enumerate(values):
        if value is None:
            if not allow_none:
                raise ValueError(
                    f"{name}[{index}] is None; expected a class label (None marks unparsable "
                    "answers and is allowed in predictions only)"
                )
            continue
        if isinstance(value, str):
            kinds.add("str")
        elif allow_indices and isinstance(value, Integral) and not isinstance(value, bool):
            kinds.add("int")
        else:
            expected = "a str label or an int index" if allow_indices else "a str label"
            raise TypeError(f"{name}[{index}] must be {expected}; got {type(value).__name__} {value!r}")
        if len(kinds) > 1:
            raise TypeError(
                f"{name} mixes str labels and int indices (at index {index}: {value!r}); use one kind"
            )
        if known is not None:
            if isinstance(value, str) and value not in known:
                raise ValueError(
                    f"{name}[{index}] = {value!r} is not a known label; expected one of {list(known)}"
                )
            if not isinstance(value, str) and not 0 <= int(value) < len(known):
                raise ValueError(
                    f"{name}[{index}] = {value} is not a valid index; expected 0..{len(known) - 1} "
                    f"for label names {list(known)}"
                )
    return kinds.pop() if kinds else None
