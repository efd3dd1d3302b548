"""FER captions from OpenFace 2.x action-unit output (M2SE, equations 1 and 2).

An OpenFace ``FeatureExtraction`` CSV has one row per frame (and per face in multi-face output) with the
columns ``frame``, ``success``, ``confidence``, the AU intensities ``AU01_r`` ... ``AU45_r`` (0-5) and the AU
presence flags ``AU01_c`` ... ``AU45_c`` (0/1). The header has a space after every comma. ``face_id`` only
exists in multi-face output; without it every row belongs to face 0.

Peak frame: the frame score is S_f = sum of all ``AU*_r`` intensities of frame f, over the frames where
``success == 1`` and ``confidence >= min_confidence``; each face's peak is its argmax (equation 1), and the
face whose peak scores highest wins (equation 2). Ties go to the earliest frame and then the lowest face id.

Caption: an AU of the emotion's list is *active* at the peak frame when its presence flag ``AU*_c`` is 1 or
its intensity ``AU*_r`` exceeds ``intensity_threshold`` (0.8 by default, the "slight" level). Both are read
because OpenFace writes some AUs (AU28) with a presence flag only, and the two estimators disagree on weak
expressions. The caption is the text names of the active AUs, in AU-number order, joined by ``"; "``; it is
the empty string when none is active (always for ``neutral``, whose list is empty). The emotion-to-AU lists
and AU names are in ``m2se/resources/facial_action_units.json``.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pandas as pd

from m2se.data.tables import read_csv

DEFAULT_INTENSITY_THRESHOLD = 0.8
_TABLE_PATH = Path(__file__).parent / "resources" / "facial_action_units.json"
_INTENSITY_COLUMN = re.compile(r"^AU\d+_r$")
_AU_COLUMN = re.compile(r"^AU\d+_[rc]$")


@dataclass(frozen=True)
class ActionUnitTable:
    """``au_names``: AU code (``"AU06"``) -> text name; ``emotion_aus``: emotion -> AU codes; ``aliases``."""

    au_names: dict[str, str]
    emotion_aus: dict[str, tuple[str, ...]]
    aliases: dict[str, str]

    def resolve_emotion(self, emotion: str) -> str:
        """The table's name for ``emotion`` (case-insensitive, aliases such as ``happy`` -> ``joy``)."""
        if not isinstance(emotion, str):
            raise TypeError(f"emotion must be a str, got {type(emotion).__name__}")
        key = emotion.strip().lower()
        key = self.aliases.get(key, key)
        if key not in self.emotion_aus:
            known = sorted(self.emotion_aus) + sorted(self.aliases)
            raise ValueError(f"unknown emotion {emotion!r}; known emotions: {', '.join(known)}")
        return key


@cache
def action_unit_table() -> ActionUnitTable:
    raw = json.loads(_TABLE_PATH.read_text(encoding="utf-8"))
    return ActionUnitTable(
        au_names=dict(raw["au_names"]),
        emotion_aus={emotion: tuple(aus) for emotion, aus in raw["emotion_aus"].items()},
        aliases=dict(raw["emotion_aliases"]),
    )


def read_openface_csv(csv_path: str | os.PathLike) -> pd.DataFrame:
    """An OpenFace CSV as a DataFrame with stripped column names and a ``face_id`` column (0 when absent)."""
    path = Path(csv_path)
    if not path.is_file():
        raise FileNotFoundError(f"OpenFace CSV not found: {path}")
    frame = read_csv(path, "an OpenFace 2.x CSV", skipinitialspace=True)
    frame.columns = [str(column).strip() for column in frame.columns]
    missing = [column for column in ("frame", "success", "confidence") if column not in frame.columns]
    if missing or not any(_INTENSITY_COLUMN.match(column) for column in frame.columns):
        expected = "frame, success, confidence and at least one AU*_r column"
        received = ", ".join(frame.columns[:12]) + (" ..." if len(frame.columns) > 12 else "")
        raise ValueError(f"{path} is not an OpenFace 2.x CSV: expected {expected}; got columns {received}")
    # Keep only what the peak and caption need; the copy also consolidates the ~400-column frame.
    keep = [
        column
        for column in frame.columns
        if column in ("frame", "face_id", "success", "confidence") or _AU_COLUMN.match(column)
    ]
    frame = _numeric(frame.loc[:, keep], path)
    if "face_id" not in frame.columns:
        frame["face_id"] = 0
    return frame


def _numeric(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    """The columns as numbers; a text value or an empty cell (a truncated file) is an error naming it."""
    numbers = frame.apply(pd.to_numeric, errors="coerce")
    text = numbers.isna() & frame.notna()
    if text.any(axis=None):
        row = int(text.any(axis=1).idxmax())
        column = next(column for column in frame.columns if text.at[row, column])
        raise ValueError(
            f"{path} line {row + 2}: {column} is {frame.at[row, column]!r}; expected a number in every "
            "frame, success, confidence and AU column"
        )
    empty = numbers.isna().any(axis=1)
    if empty.any():
        row = int(empty.idxmax())
        columns = [column for column in frame.columns if pd.isna(numbers.at[row, column])]
        shown = ", ".join(columns[:4]) + (f" and {len(columns) - 4} more" if len(columns) > 4 else "")
        raise ValueError(
            f"{path} line {row + 2} has no value for {shown}: the file looks truncated or damaged "
            "(expected a number in every frame, success, confidence and AU column)"
        )
    return numbers


def _peak_row(frame: pd.DataFrame, source: Path, min_confidence: float) -> pd.Series:
    intensity_columns = [column for column in frame.columns if _INTENSITY_COLUMN.match(column)]
    usable = frame[(frame["success"] == 1) & (frame["confidence"] >= min_confidence)]
    if usable.empty:
        raise ValueError(
            f"{source} has no successful frame (success == 1 and confidence >= {min_confidence}) "
            f"among its {len(frame)} rows"
        )
    scores = usable[intensity_columns].sum(axis=1)
    per_face_peak = scores.groupby(usable["face_id"], sort=True).idxmax()
    best_face_row = max(per_face_peak, key=lambda row: (scores[row], -usable.at[row, "face_id"]))
    peak = usable.loc[best_face_row].copy()
    peak["score"] = float(scores[best_face_row])
    return peak


def peak_frame(csv_path: str | os.PathLike, *, min_confidence: float = 0.0) -> tuple[int, int, float]:
    """``(frame, face_id, score)`` of the peak frame of the most expressive face (see the module doc)."""
    peak = _peak_row(read_openface_csv(csv_path), Path(csv_path), min_confidence)
    return int(peak["frame"]), int(peak["face_id"]), float(peak["score"])


@dataclass(frozen=True)
class PeakExpression:
    """The peak frame of the most expressive face and the emotion's AUs active there (text names)."""

    frame: int
    face_id: int
    score: float
    active_aus: tuple[str, ...]

    @property
    def caption(self) -> str:
        return "; ".join(self.active_aus)


def peak_expression(
    csv_path: str | os.PathLike,
    emotion: str,
    *,
    intensity_threshold: float = DEFAULT_INTENSITY_THRESHOLD,
    min_confidence: float = 0.0,
) -> PeakExpression:
    """Peak frame and active AU names of ``emotion`` in one pass (see the module docstring)."""
    table = action_unit_table()
    emotion_aus = table.emotion_aus[table.resolve_emotion(emotion)]
    peak = _peak_row(read_openface_csv(csv_path), Path(csv_path), min_confidence)
    active = []
    for au in sorted(emotion_aus, key=lambda code: int(code[2:])):
        present = f"{au}_c" in peak.index and peak[f"{au}_c"] >= 0.5
        intense = f"{au}_r" in peak.index and peak[f"{au}_r"] > intensity_threshold
        if present or intense:
            active.append(table.au_names[au])
    return PeakExpression(int(peak["frame"]), int(peak["face_id"]), float(peak["score"]), tuple(active))


def fer_caption(
    csv_path: str | os.PathLike,
    emotion: str,
    *,
    intensity_threshold: float = DEFAULT_INTENSITY_THRESHOLD,
    min_confidence: float = 0.0,
) -> str:
    """Names of the emotion's AUs active at the peak frame, joined by ``"; "`` (see the module doc)."""
    return peak_expression(
        csv_path, emotion, intensity_threshold=intensity_threshold, min_confidence=min_confidence
    ).caption
