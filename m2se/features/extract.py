"""Dataset-scale feature extraction: media clips -> the Arrow ``DatasetDict`` MSE-Adapter trains on.

The manifest is a CSV file with the columns ``path,text,label,split`` (paths relative to the manifest's folder
are allowed). Each clip goes through the remote-code extractors of ``feature_extraction_mse_adapter`` in two
``datasets.map`` passes:

1. the expensive pass decodes the clip and computes the raw audio frames and the video frame vectors. It runs
   on a copy of the manifest saved under the datasets cache with a fingerprint made of the manifest, the
   extractor settings and the extraction code, so ``num_proc`` workers share the work and a second run reuses
   the results instead of recomputing them;
2. the cheap pass standardises the audio frames with statistics fitted on the ``train`` split (saved in the
   extractor configuration) and pools them.

The output folder holds the ``DatasetDict`` (``m2se.data`` schema: ``id, source, text, audio, video,
audio_length, video_length, label``; string labels become a ``ClassLabel`` over their sorted names, numeric
labels a float regression target), the extractor configurations (``preprocessor_config.json``,
``video_preprocessor_config.json``) and ``extraction_report.json``. A clip without an audio or a video stream
is kept with that modality zero-length; an unreadable clip is skipped. A dropped modality (``none``) is a
zero-length modality of width 1 in every row.
"""

from __future__ import annotations

import csv
import hashlib
import inspect
import json
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import torch
from transformers.utils import FEATURE_EXTRACTOR_NAME, VIDEO_PROCESSOR_NAME

import feature_extraction_mse_adapter as extractors
from feature_extraction_mse_adapter import (
    PROCESSOR_PARTS,
    MSEAdapterAudioFeatureExtractor,
    MSEAdapterVideoProcessor,
)
from m2se.data.schema import multimodal_features
from m2se.outputs import atomic_file, atomic_folder, check_output

logger = logging.getLogger(__name__)

MANIFEST_COLUMNS = ("path", "text", "label", "split")
REPORT_NAME = "extraction_report.json"
KIND = "extracted feature folder (written by python -m m2se.features extract)"
# The file each extractor is saved to in a feature folder, by processor part.
EXTRACTOR_FILES = {"feature_extractor": FEATURE_EXTRACTOR_NAME, "video_processor": VIDEO_PROCESSOR_NAME}
DROPPED_MODALITY_WIDTH = 1
"""Width of a modality extracted as ``none``: rows hold zero frames of it (the missing-modality path)."""


@dataclass
class ManifestRow:
    path: str
    text: str
    label: str
    split: str


@dataclass
class ExtractionReport:
    """What extraction could not use fully (written to ``extraction_report.json``, printed as counts)."""

    unreadable: list[dict[str, str]] = field(default_factory=list)
    without_audio: list[str] = field(default_factory=list)
    without_video: list[str] = field(default_factory=list)
    frames_without_face: dict[str, int] = field(default_factory=dict)
    clips: int = 0
    kept: int = 0

    def counts(self) -> dict[str, int]:
        return {
            "clips": self.clips,
            "kept": self.kept,
            "unreadable (skipped)": len(self.unreadable),
            "without audio stream": len(self.without_audio),
            "without video stream": len(self.without_video),
            "frames without a face": sum(self.frames_without_face.values()),
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "counts": self.counts(),
            "unreadable": self.unreadable,
            "without_audio": self.without_audio,
            "without_video": self.without_video,
            "frames_without_face": self.frames_without_face,
        }


def read_manifest(manifest: str | os.PathLike) -> list[ManifestRow]:
    """The rows of a ``path,text,label,split`` CSV manifest, with paths resolved against its folder."""
    manifest = Path(manifest)
    if not manifest.is_file():
        raise FileNotFoundError(
            f"--manifest {manifest}: file not found; expected a CSV with columns {','.join(MANIFEST_COLUMNS)}"
        )
    with open(manifest, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        columns = reader.fieldnames or []
        missing = [column for column in MANIFEST_COLUMNS if column not in columns]
        if missing:
            raise ValueError(
                f"--manifest {manifest}: missing columns {missing}; expected {list(MANIFEST_COLUMNS)}, found "
                f"{columns}"
            )
        rows = []
        for line, record in enumerate(reader, start=2):
            values = {column: (record[column] or "").strip() for column in MANIFEST_COLUMNS}
            for column in ("path", "label", "split"):
                if not values[column]:
                    raise ValueError(f"--manifest {manifest} line {line}: empty {column!r}")
            values["path"] = str((manifest.parent / values["path"]).resolve())
            values["text"] = record["text"] or ""
            rows.append(ManifestRow(**values))
    if not rows:
        raise ValueError(f"--manifest {manifest}: no clips; expected at least one row after the header")
    numbers = [_is_number(row.label) for row in rows]
    if any(numbers) and not all(numbers):
        number, name = numbers.index(True), numbers.index(False)
        raise ValueError(
            f"--manifest {manifest}: the labels mix numbers (line {number + 2}: {rows[number].label!r}) and "
            f"names (line {name + 2}: {rows[name].label!r}); expected numbers on every row (regression) or "
            "names on every row (classification)"
        )
    if not any(Path(row.path).is_file() for row in rows):
        raise FileNotFoundError(
            f"--manifest {manifest}: none of its {len(rows)} clip paths exists (first: {rows[0].path}); "
            "relative paths are read from the manifest's folder"
        )
    return rows


def _is_number(label: str) -> bool:
    try:
        return math.isfinite(float(label))
    except ValueError:
        return False


def label_names_of(rows: Sequence[ManifestRow]) -> list[str] | None:
    """``None`` when the labels are numbers (regression), else the sorted label names (classification);
    ``read_manifest`` refuses a mix."""
    return None if _is_number(rows[0].label) else sorted({row.label for row in rows})


def _code_version() -> str:
    digest = hashlib.sha256()
    for module in (extractors, inspect.getmodule(read_manifest)):
        digest.update(Path(inspect.getfile(module)).read_bytes())
    return digest.hexdigest()


def _raw_features(audio_dim: int, video_dim: int) -> datasets.Features:
    return datasets.Features(
        {
            "path": datasets.Value("string"),
            "text": datasets.Value("string"),
            "label": datasets.Value("string"),
            "split": datasets.Value("string"),
            "audio_raw": datasets.Array2D(shape=(None, audio_dim), dtype="float32"),
            "audio_seconds": datasets.Value("float64"),
            "video": datasets.Array2D(shape=(None, video_dim), dtype="float32"),
            "has_audio": datasets.Value("bool"),
            "has_video": datasets.Value("bool"),
            "frames_without_face": datasets.Value("int32"),
            "error": datasets.Value("string"),
        }
    )


def _extract_clip(
    row: dict[str, Any],
    audio: MSEAdapterAudioFeatureExtractor | None,
    video: MSEAdapterVideoProcessor | None,
    single_thread: bool,
) -> dict[str, Any]:
    """One manifest row -> its raw features; an unusable file is recorded in ``error`` instead of raising."""
    if single_thread:
        # Worker processes share the cores: one thread each scales better than oversubscribed pools.
        torch.set_num_threads(1)
    audio_dim = audio.feature_size if audio else DROPPED_MODALITY_WIDTH
    video_dim = video.feature_size if video else DROPPED_MODALITY_WIDTH
    result = {
        "audio_raw": np.zeros((0, audio_dim), np.float32),
        "audio_seconds": 0.0,
        "video": np.zeros((0, video_dim), np.float32),
        "has_audio": False,
        "has_video": False,
        "frames_without_face": 0,
        "error": "",
    }
    try:
        with extractors.open_media(row["path"]) as container:
            has_audio, has_video = bool(container.streams.audio), bool(container.streams.video)
        if not has_audio and not has_video:
            raise extractors.MediaError(f"{row['path']}: no audio or video stream")
        result["has_audio"], result["has_video"] = has_audio, has_video
        if audio is not None and has_audio:
            waveform = audio.load(row["path"])
            result["audio_raw"] = audio.extract_frames(waveform, audio.sampling_rate)
            result["audio_seconds"] = waveform.shape[0] / audio.sampling_rate
        if video is not None and has_video:
            frames, without_face = video.process_file(row["path"])
            result["video"], result["frames_without_face"] = frames, without_face or 0
    except (OSError, ValueError) as error:
        result.update(has_audio=False, has_video=False, error=" ".join(str(error).split()))
    return result


def _manifest_dataset(rows: Sequence[ManifestRow], cache_root: Path) -> datasets.Dataset:
    """The manifest as a file-backed ``Dataset`` in ``cache_root`` (``map`` caches only file-backed data)."""
    table = {column: [getattr(row, column) for row in rows] for column in MANIFEST_COLUMNS}
    digest = hashlib.sha256(json.dumps(table, ensure_ascii=False).encode()).hexdigest()[:24]
    folder = cache_root / f"manifest-{digest}"
    if not (folder / "state.json").is_file():
        with atomic_folder(folder) as temporary:
            datasets.Dataset.from_dict(table).save_to_disk(str(temporary))
    return datasets.load_from_disk(str(folder))


def extract_features(
    manifest: str | os.PathLike,
    output_dir: str | os.PathLike,
    *,
    audio_backend: str | None = "egemaps",
    video_encoder: str | None = None,
    num_proc: int = 1,
    pool_windows: int | None = 8,
    standardize: bool = True,
    fps: float = 1.0,
    crop_face: bool = True,
    max_seconds: float = 600.0,
    cache_dir: str | os.PathLike | None = None,
) -> tuple[datasets.DatasetDict, ExtractionReport]:
    """Extract the features of every clip of ``manifest`` into ``output_dir`` (see the module docstring).

    Args:
        audio_backend / video_encoder: ``MSEAdapterAudioFeatureExtractor`` backend /
            ``MSEAdapterVideoProcessor`` encoder; ``None`` drops the modality.
        num_proc: ``datasets.map`` worker processes for the expensive pass.
        pool_windows: average each clip's audio frames into this many windows (``None``: keep every frame).
        standardize: fit per-feature audio statistics on the ``train`` split and apply them.
        cache_dir: where the manifest copy and the ``map`` caches live (default: the datasets cache).

    Returns:
        The ``DatasetDict`` written and the report.
    """
    if isinstance(num_proc, bool) or not isinstance(num_proc, int) or num_proc < 1:
        raise ValueError(f"--num_proc must be an integer >= 1, got {num_proc!r}")
    if audio_backend is None and video_encoder is None:
        raise ValueError("--audio none and --video none leave nothing to extract; keep at least one modality")
    for name, value in (("--fps", fps), ("--max_seconds", max_seconds)):
        if not value > 0:
            raise ValueError(f"{name} must be a number > 0, got {value}")
    output_dir = Path(output_dir)
    rows = read_manifest(manifest)
    check_output(
        output_dir, inputs=[manifest], overwrite=True, is_ours=is_feature_folder, kind=KIND, folder=True
    )
    if standardize and audio_backend is not None and not any(row.split == "train" for row in rows):
        raise ValueError(
            f"--manifest {manifest}: no row has split 'train' to fit the audio standardisation on (splits: "
            f"{sorted({row.split for row in rows})}); add training clips or pass --no_standardize"
        )
    audio = (
        MSEAdapterAudioFeatureExtractor(
            backend=audio_backend, pool_windows=pool_windows, max_seconds=max_seconds
        )
        if audio_backend is not None
        else None
    )
    video = (
        MSEAdapterVideoProcessor(encoder=video_encoder, fps=fps, crop_face=crop_face, max_seconds=max_seconds)
        if video_encoder is not None
        else None
    )
    audio_dim = audio.feature_size if audio else DROPPED_MODALITY_WIDTH
    video_dim = video.feature_size if video else DROPPED_MODALITY_WIDTH

    cache_root = (
        Path(cache_dir)
        if cache_dir is not None
        else Path(datasets.config.HF_DATASETS_CACHE) / "m2se_features"
    )
    source = _manifest_dataset(rows, cache_root)
    fingerprint = datasets.fingerprint.Hasher.hash(
        [
            source._fingerprint,
            audio.to_json_string() if audio else None,
            video.to_json_string() if video else None,
            _code_version(),
        ]
    )
    raw = source.map(
        _extract_clip,
        fn_kwargs={"audio": audio, "video": video, "single_thread": num_proc > 1},
        features=_raw_features(audio_dim, video_dim),
        num_proc=num_proc if num_proc > 1 else None,
        new_fingerprint=fingerprint,
        desc="extracting features",
    )

    report = ExtractionReport(clips=len(raw))
    status = raw.select_columns(["path", "error", "has_audio", "has_video", "frames_without_face"])
    for entry in status:
        if entry["error"]:
            report.unreadable.append({"path": entry["path"], "error": entry["error"]})
            continue
        if not entry["has_audio"]:
            report.without_audio.append(entry["path"])
        if not entry["has_video"]:
            report.without_video.append(entry["path"])
        if entry["frames_without_face"]:
            report.frames_without_face[entry["path"]] = entry["frames_without_face"]
    # The cheap pass stays in memory: only the expensive extraction is worth a cache file.
    usable = raw.filter(
        lambda error: not error, input_columns="error", keep_in_memory=True, desc="dropping unreadable clips"
    )
    report.kept = len(usable)
    if report.kept == 0:
        raise ValueError(
            f"--manifest {manifest}: none of the {report.clips} clips could be read "
            f"(first error: {report.unreadable[0]['error']})"
        )

    if audio is not None and standardize:
        train = usable.filter(lambda split: split == "train", input_columns="split", keep_in_memory=True)
        train = train.with_format("numpy")
        audio.fit_standardization(train["audio_raw"])
    label_names = label_names_of(rows)
    features = multimodal_features(audio_dim, video_dim, label_names)
    stem = Path(manifest).stem

    def finish(row: dict[str, Any]) -> dict[str, Any]:
        audio_values = (
            audio.postprocess(np.asarray(row["audio_raw"], np.float32), row["audio_seconds"])
            if audio is not None
            else np.zeros((0, audio_dim), np.float32)
        )
        return {
            "id": row["path"],
            "source": stem,
            "text": row["text"],
            "audio": audio_values,
            "video": row["video"],
            "audio_length": len(audio_values),
            "video_length": len(row["video"]),
            "label": float(row["label"]) if label_names is None else label_names.index(row["label"]),
        }

    splits = sorted({row.split for row in rows})
    dataset = datasets.DatasetDict(
        {
            split: usable.filter(
                lambda value, wanted=split: value == wanted, input_columns="split", keep_in_memory=True
            ).map(
                finish,
                remove_columns=usable.column_names,
                features=features,
                keep_in_memory=True,
                desc=f"pooling {split}",
            )
            for split in splits
        }
    )
    dataset = datasets.DatasetDict({split: part for split, part in dataset.items() if len(part)})
    with atomic_folder(output_dir) as folder:
        dataset.save_to_disk(str(folder))
        if audio is not None:
            audio.save_pretrained(folder)
        if video is not None:
            video.save_pretrained(folder)
        with atomic_file(folder / REPORT_NAME) as handle:
            json.dump(report.to_json(), handle, indent=2, ensure_ascii=False)
    return datasets.load_from_disk(str(output_dir)), report


def is_feature_folder(path: Path) -> bool:
    """Whether ``path`` is an earlier output of ``extract_features`` (a saved DatasetDict with the report)."""
    return (path / "dataset_dict.json").is_file() and (path / REPORT_NAME).is_file()


def load_extractors(folder: str | os.PathLike) -> dict[str, Any]:
    """The extractors a feature folder was made with, by processor part (``feature_extractor``,
    ``video_processor``); a modality extracted as ``none`` has none. Pass them to ``MSEAdapterProcessor`` so a
    model trained on the folder reads raw media the same way."""
    folder = Path(folder)
    return {
        name: PROCESSOR_PARTS[name].from_pretrained(folder)
        for name, file_name in EXTRACTOR_FILES.items()
        if (folder / file_name).is_file()
    }
