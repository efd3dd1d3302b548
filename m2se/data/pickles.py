"""Loaders for the pickled feature files of the MMSA toolkit and of MSE-Adapter.

Pickle can run arbitrary code while loading, so every function here refuses to unpickle unless called with
``allow_pickle=True``. Convert a trusted pickle once (``python -m m2se.data convert --allow-pickle in.pkl
--out dir``) and load the Arrow copy with ``datasets.load_from_disk(dir)`` from then on.

Layouts:

* MMSA (MOSI / MOSEI ``unaligned_50.pkl``, SIMS, SIMS-V2 ``ch-simsv2s.pkl``): ``{"train"|"valid"|"test":
  {"raw_text": (N,), "audio": (N, T_a, D_a), "vision": (N, T_v, D_v), "audio_lengths": (N,),
  "vision_lengths": (N,), "regression_labels": (N,), "id": (N,), ...}}``. Sequences are padded at the end;
  only the first ``*_lengths[i]`` rows are kept. The split ``valid`` becomes ``validation``.
* MSE-Adapter ERC pickles (``meld_train.pkl`` ...): ``[{"features": {"text": str, "audio": (T_a, D_a),
  "video": (T_v, D_v), "audio_len": int, "video_len": int}, "label": str}, ...]``. The label is a class name
  (case-insensitive) or a class index written as a string; ids are ``<file stem>-<position>``.

Non-finite feature values (``-inf`` in MMSA audio, ``NaN`` in vision) are replaced by 0, as the released
loaders do, and counted in one log line per file.
"""

from __future__ import annotations

import logging
import os
import pickle
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import datasets
import numpy as np

from m2se.data.conversations import MELD_EMOTIONS
from m2se.data.schema import multimodal_features
from tasks_mse_adapter import CHERMA_LABELS

logger = logging.getLogger(__name__)

ERC_LABEL_NAMES: dict[str, tuple[str, ...]] = {
    # Index order of the MSE-Adapter task prompts (PAPER_FACTS.md); for MELD that is the CSV loader's order.
    "meld": MELD_EMOTIONS,
    "cherma": tuple(CHERMA_LABELS),
    # Assumed: the six-class IEMOCAP setup common in ERC work (no prompt for it is published).
    "iemocap": ("happy", "sad", "neutral", "angry", "excited", "frustrated"),
}
MMSA_SPLITS = {"train": "train", "valid": "validation", "test": "test"}
MMSA_REQUIRED_KEYS = (
    "raw_text",
    "audio",
    "vision",
    "audio_lengths",
    "vision_lengths",
    "regression_labels",
    "id",
)


def read_trusted_pickle(path: str | os.PathLike, *, allow_pickle: bool) -> Any:
    """Unpickle ``path`` only when the caller vouches for it with ``allow_pickle=True``."""
    path = Path(path)
    if not allow_pickle:
        raise ValueError(
            f"refusing to unpickle {path}: loading a pickle can execute arbitrary code. "
            f"Pass allow_pickle=True (CLI: --allow-pickle) only for a file you trust, and convert it once "
            f"with "
            f"`python -m m2se.data convert --allow-pickle {path} --out <dir>` to load it without pickle later"
        )
    if not path.is_file():
        raise FileNotFoundError(f"pickle file not found: {path}")
    with open(path, "rb") as handle:
        try:
            return pickle.load(handle)
        # Unpickling bytes that are not a pickle (or a pickle of classes that are not installed) can raise
        # nearly any exception type; each means the same thing to the caller.
        except Exception as error:
            raise ValueError(
                f"{path} is not a readable pickle ({type(error).__name__}: {error}); expected an MMSA or "
                "MSE-Adapter .pkl file"
            ) from error


class _NonFiniteCounter:
    """Replaces -inf/NaN by 0 in place and counts them per modality, for one log line per file."""

    def __init__(self) -> None:
        self.counts = {"audio": 0, "video": 0}

    def clean(self, modality: str, values: np.ndarray) -> np.ndarray:
        values = np.asarray(values, dtype=np.float32)
        bad = ~np.isfinite(values)
        if bad.any():
            values = np.where(bad, np.float32(0.0), values)
            self.counts[modality] += int(bad.sum())
        return values

    def log(self, source: Path) -> None:
        total = sum(self.counts.values())
        logger.info(
            "%s: replaced %d non-finite feature values by 0 (audio %d, video %d)",
            source,
            total,
            self.counts["audio"],
            self.counts["video"],
        )


def _valid_length(length: Any, padded: int, what: str) -> int:
    length = int(length)
    if not 0 <= length <= padded:
        raise ValueError(f"{what} is {length}, expected a length between 0 and the padded length {padded}")
    return length


def _mmsa_split(
    split: Mapping[str, Any], source: str, name: str, counter: _NonFiniteCounter
) -> datasets.Dataset:
    missing = [key for key in MMSA_REQUIRED_KEYS if key not in split]
    if missing:
        raise ValueError(f"MMSA split {name!r} lacks keys {missing}; it has {sorted(split)}")
    audio, vision = np.asarray(split["audio"]), np.asarray(split["vision"])
    if audio.ndim != 3 or vision.ndim != 3:
        raise ValueError(
            f"MMSA split {name!r}: audio and vision must be (N, T, D) arrays, got shapes {audio.shape} and "
            f"{vision.shape}"
        )
    count = len(split["raw_text"])
    for key in MMSA_REQUIRED_KEYS:
        if len(split[key]) != count:
            raise ValueError(
                f"MMSA split {name!r}: {key} has {len(split[key])} entries, raw_text has {count}"
            )
    rows: dict[str, list] = {key: [] for key in multimodal_features(1, 1)}
    for i in range(count):
        audio_length = _valid_length(split["audio_lengths"][i], audio.shape[1], f"{name} audio_lengths[{i}]")
        video_length = _valid_length(
            split["vision_lengths"][i], vision.shape[1], f"{name} vision_lengths[{i}]"
        )
        rows["id"].append(str(split["id"][i]))
        rows["source"].append(source)
        rows["text"].append(str(split["raw_text"][i]))
        rows["audio"].append(counter.clean("audio", audio[i, :audio_length]))
        rows["video"].append(counter.clean("video", vision[i, :video_length]))
        rows["audio_length"].append(audio_length)
        rows["video_length"].append(video_length)
        rows["label"].append(float(split["regression_labels"][i]))
    return datasets.Dataset.from_dict(rows, features=multimodal_features(audio.shape[2], vision.shape[2]))


def mmsa_to_dataset_dict(data: Mapping[str, Any], *, source: str, origin: Path) -> datasets.DatasetDict:
    """An unpickled MMSA dict -> ``DatasetDict`` (train / validation / test) in the standard schema."""
    if not isinstance(data, Mapping) or not set(MMSA_SPLITS) & set(data):
        got = sorted(data) if isinstance(data, Mapping) else type(data).__name__
        raise ValueError(
            f"{origin} is not an MMSA pickle: expected a dict with keys train/valid/test, got {got}"
        )
    counter = _NonFiniteCounter()
    splits = {
        MMSA_SPLITS[name]: _mmsa_split(data[name], source, name, counter)
        for name in MMSA_SPLITS
        if name in data
    }
    counter.log(origin)
    return datasets.DatasetDict(splits)


def load_mmsa_pickle(
    path: str | os.PathLike, *, allow_pickle: bool = False, source: str | None = None
) -> datasets.DatasetDict:
    """Load an MMSA pickle (MOSI, MOSEI, SIMS, SIMS-V2) as a regression ``DatasetDict``.

    ``source`` names the dataset in the ``source`` column (default: the file stem).
    """
    path = Path(path)
    data = read_trusted_pickle(path, allow_pickle=allow_pickle)
    return mmsa_to_dataset_dict(data, source=source or path.stem, origin=path)


def _label_index(label: Any, names: Sequence[str], where: str) -> int:
    text = str(label).strip()
    if text.isdigit() and int(text) < len(names):
        return int(text)
    lowered = [name.lower() for name in names]
    if text.lower() in lowered:
        return lowered.index(text.lower())
    raise ValueError(
        f"{where}: unknown label {label!r}; expected one of {list(names)} or an index 0-{len(names) - 1}"
    )


def erc_records_to_dataset(
    records: Sequence[Mapping[str, Any]], *, label_names: Sequence[str], source: str, origin: Path
) -> datasets.Dataset:
    """Unpickled MSE-Adapter ERC records -> a classification ``Dataset`` in the standard schema."""
    if not isinstance(records, Sequence) or not records:
        got = type(records).__name__ if not isinstance(records, Sequence) else "an empty list"
        raise ValueError(
            f"{origin} is not an MSE-Adapter ERC pickle: expected a non-empty list of records, got {got}"
        )
    counter = _NonFiniteCounter()
    rows: dict[str, list] = {key: [] for key in multimodal_features(1, 1)}
    dims: set[tuple[int, int]] = set()
    for i, record in enumerate(records):
        where = f"{origin} record {i}"
        features = record.get("features") if isinstance(record, Mapping) else None
        if not isinstance(features, Mapping) or "label" not in record:
            raise ValueError(
                f"{where}: expected {{'features': {{text, audio, video, audio_len, video_len}}, "
                f"'label': str}}, got {record!r:.200}"
            )
        missing = [key for key in ("text", "audio", "video", "audio_len", "video_len") if key not in features]
        if missing:
            raise ValueError(f"{where}: features lack {missing}; they have {sorted(features)}")
        audio, video = np.asarray(features["audio"]), np.asarray(features["video"])
        if audio.ndim != 2 or video.ndim != 2:
            raise ValueError(
                f"{where}: audio and video must be (T, D) arrays, got {audio.shape} and {video.shape}"
            )
        dims.add((audio.shape[1], video.shape[1]))
        audio_length = _valid_length(features["audio_len"], audio.shape[0], f"{where} audio_len")
        video_length = _valid_length(features["video_len"], video.shape[0], f"{where} video_len")
        rows["id"].append(f"{origin.stem}-{i}")
        rows["source"].append(source)
        rows["text"].append(str(features["text"]))
        rows["audio"].append(counter.clean("audio", audio[:audio_length]))
        rows["video"].append(counter.clean("video", video[:video_length]))
        rows["audio_length"].append(audio_length)
        rows["video_length"].append(video_length)
        rows["label"].append(_label_index(record["label"], label_names, where))
    if len(dims) != 1:
        raise ValueError(
            f"{origin}: records have different (audio, video) feature dimensions: {sorted(dims)}"
        )
    counter.log(origin)
    ((audio_dim, video_dim),) = dims
    return datasets.Dataset.from_dict(rows, features=multimodal_features(audio_dim, video_dim, label_names))


def load_erc_pickle(
    path: str | os.PathLike,
    dataset: str,
    *,
    allow_pickle: bool = False,
    label_names: Sequence[str] | None = None,
) -> datasets.Dataset:
    """Load an MSE-Adapter MELD / CHERMA / IEMOCAP pickle as a classification ``Dataset``.

    ``label_names`` overrides the class list of ``dataset`` (``ERC_LABEL_NAMES``), e.g. for another IEMOCAP
    class set.
    """
    key = dataset.lower()
    if label_names is None:
        if key not in ERC_LABEL_NAMES:
            raise ValueError(
                f"unknown ERC dataset {dataset!r}; expected one of {sorted(ERC_LABEL_NAMES)} "
                "or pass label_names"
            )
        label_names = ERC_LABEL_NAMES[key]
    path = Path(path)
    records = read_trusted_pickle(path, allow_pickle=allow_pickle)
    return erc_records_to_dataset(records, label_names=label_names, source=key, origin=path)
