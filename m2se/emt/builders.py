"""Build EMT records (``{"id", "task", "query", "response", "videos" | "images"}``) from public sources.

Record ids are ``<task>/<source>/<sample>`` so that one sample used by two tasks (MOSEI MSA and ERI) or two
splits (MELD's dialogue ids restart per split) stays distinct; stage mixing excludes samples by these ids.
Media paths are ``<media_root>/<file>`` strings, exactly as the training machine will see them; the builder
does not require the media to exist here.
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets
import pandas as pd

from m2se.emt import templates
from m2se.facial import action_unit_table, peak_expression
from m2se.outputs import atomic_file

DEFAULT_FER_IMAGE_PATTERN = "{id}_aligned/frame_det_{face_id:02d}_{frame:06d}.bmp"
"""OpenFace's aligned faces: ``<name>_aligned/frame_det_<face>_<frame>.bmp`` (frames numbered from 1)."""


@dataclass
class BuildResult:
    """Records plus what was left out and why (printed by the CLI)."""

    records: list[dict[str, Any]] = field(default_factory=list)
    skipped: Counter = field(default_factory=Counter)

    def counts(self) -> Counter:
        return Counter(record["task"] for record in self.records)

    def summary(self) -> str:
        counts = ", ".join(f"{task} {count}" for task, count in sorted(self.counts().items())) or "none"
        skipped = ", ".join(f"{count} {reason}" for reason, count in sorted(self.skipped.items()))
        return f"{len(self.records)} records ({counts})" + (f"; skipped {skipped}" if skipped else "")


def _media(root: str, name: str) -> str:
    return f"{str(root).rstrip('/')}/{name}" if str(root) else name


def _record(
    task: str, source: str, sample: str, query: str, response: str, media_key: str, media: str
) -> dict[str, Any]:
    return {
        "id": f"{task}/{source}/{sample}",
        "task": task,
        "query": query,
        "response": response,
        media_key: [media],
    }


def meld_records(
    meld: datasets.Dataset, media_root: str, *, tasks: Iterable[str] = ("er",), source: str = "meld"
) -> BuildResult:
    """ER (every utterance) and MSA (utterances whose sentiment is positive or negative) from a MELD split.

    ``meld`` is a ``m2se.data.load_meld_csv`` dataset; media is ``<media_root>/dia{D}_utt{U}.mp4``.
    """
    tasks = list(tasks)
    unknown = sorted(set(tasks) - {"er", "msa"})
    if unknown or not tasks:
        raise ValueError(f"MELD yields the tasks 'er' and 'msa'; got {tasks}")
    emotions, sentiments = meld.features["emotion"].names, meld.features["sentiment"].names
    result = BuildResult()
    for row in meld.to_list():
        sample = f"dia{row['dialogue_id']}_utt{row['utterance_id']}"
        video = _media(media_root, f"{sample}.mp4")
        if "er" in tasks:
            answer = templates.label_answer(emotions[row["emotion"]])
            result.records.append(
                _record("er", source, sample, templates.er_query(row["text"]), answer, "videos", video)
            )
        if "msa" in tasks:
            sentiment = sentiments[row["sentiment"]]
            if sentiment == "neutral":
                result.skipped["neutral-sentiment utterances (msa)"] += 1
                continue
            result.records.append(
                _record(
                    "msa",
                    source,
                    sample,
                    templates.msa_query(row["text"]),
                    templates.label_answer(sentiment),
                    "videos",
                    video,
                )
            )
    return result


def ecpe_records(conversations: datasets.Dataset, media_root: str, *, source: str = "ecf") -> BuildResult:
    """One ECPE record per non-neutral utterance of ECF conversations (``load_ecf2`` / ``load_ecf1``).

    The response lists the target's pairs ``{t}_{emotion},{cause}`` in dataset order, each cause once
    (span-level Subtask 1 pairs collapse to utterance level). Media: ``<media_root>/dia{conv}utt{utt}.mp4``.
    """
    result = BuildResult()
    for conversation in conversations.to_list():
        conversation_id = conversation["conversation_id"]
        utterances = conversation["utterances"]
        lines = [
            templates.ecpe_line(u["utterance_id"], u["emotion"], u["speaker"], u["text"]) for u in utterances
        ]
        for index, utterance in enumerate(utterances):
            target = utterance["utterance_id"]
            if utterance["emotion"] == "neutral":
                continue
            causes: list[int] = []
            for pair in conversation["pairs"]:
                if pair["emotion_utterance_id"] != target:
                    continue
                if pair["emotion"] != utterance["emotion"]:
                    raise ValueError(
                        f"conversation {conversation_id}: pair {target}_{pair['emotion']} disagrees with the "
                        f"emotion {utterance['emotion']!r} of utterance {target}"
                    )
                if pair["cause_utterance_id"] not in causes:
                    causes.append(pair["cause_utterance_id"])
            sample = f"dia{conversation_id}utt{target}"
            result.records.append(
                _record(
                    "ecpe",
                    source,
                    sample,
                    templates.ecpe_query(lines, index),
                    templates.ecpe_response(target, utterance["emotion"], causes),
                    "videos",
                    _media(media_root, f"{sample}.mp4"),
                )
            )
    return result


def msa_records(
    table: pd.DataFrame,
    media_root: str,
    *,
    source: str = "mosei",
    non_negative_is_positive: bool = False,
    media_suffix: str = ".mp4",
) -> BuildResult:
    """MSA records from an (id, text, score) table: score > 0 -> Positive, < 0 -> Negative.

    A score of exactly 0 is skipped, unless ``non_negative_is_positive`` (the N/N variant) maps it to
    Positive. Media: ``<media_root>/<id><media_suffix>``.
    """
    result = BuildResult()
    for row in table.itertuples(index=False):
        try:
            score = float(row.score)
        except ValueError:
            raise ValueError(f"id {row.id}: score must be a number, got {row.score!r}") from None
        if not math.isfinite(score):
            raise ValueError(f"id {row.id}: score must be finite, got {row.score!r}")
        answer = templates.msa_response(score, non_negative_is_positive)
        if answer is None:
            result.skipped["zero scores"] += 1
            continue
        result.records.append(
            _record(
                "msa",
                source,
                row.id,
                templates.msa_query(row.text),
                answer,
                "videos",
                _media(media_root, f"{row.id}{media_suffix}"),
            )
        )
    return result


def eri_records(
    table: pd.DataFrame, media_root: str, *, source: str = "mosei", media_suffix: str = ".mp4"
) -> BuildResult:
    """ERI records from an (id, reason) table: the fixed ERI query, the reason text as the response."""
    result = BuildResult()
    for row in table.itertuples(index=False):
        reason = row.reason.strip()
        if not reason:
            raise ValueError(f"id {row.id}: the reason text is empty")
        result.records.append(
            _record(
                "eri",
                source,
                row.id,
                templates.ERI_QUERY,
                reason,
                "videos",
                _media(media_root, f"{row.id}{media_suffix}"),
            )
        )
    return result


def fer_records(
    table: pd.DataFrame,
    openface_dir: str | os.PathLike,
    media_root: str,
    *,
    source: str = "fer",
    image_pattern: str = DEFAULT_FER_IMAGE_PATTERN,
    intensity_threshold: float = 0.8,
    min_confidence: float = 0.0,
) -> BuildResult:
    """FER records from an (id, emotion) table and OpenFace CSVs ``<openface_dir>/<id>.csv``.

    The image is the peak frame, ``<media_root>/`` + ``image_pattern`` formatted with ``id``, ``frame`` and
    ``face_id``; the response is ``m2se.facial``'s caption. Samples whose caption is empty (no AU of the
    emotion active at the peak, or a neutral emotion) are skipped and counted.
    """
    openface_dir = Path(openface_dir)
    table_of_aus = action_unit_table()
    for row in table.itertuples(index=False):
        try:
            table_of_aus.resolve_emotion(row.emotion)
        except ValueError as error:
            raise ValueError(f"id {row.id}: {error}") from None
    missing = [
        row.id for row in table.itertuples(index=False) if not (openface_dir / f"{row.id}.csv").is_file()
    ]
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} OpenFace CSVs missing in {openface_dir}, e.g. {missing[0]}.csv"
        )
    result = BuildResult()
    for row in table.itertuples(index=False):
        peak = peak_expression(
            openface_dir / f"{row.id}.csv",
            row.emotion,
            intensity_threshold=intensity_threshold,
            min_confidence=min_confidence,
        )
        if not peak.active_aus:
            result.skipped["empty captions"] += 1
            continue
        image = image_pattern.format(id=row.id, frame=peak.frame, face_id=peak.face_id)
        result.records.append(
            _record(
                "fer", source, row.id, templates.FER_QUERY, peak.caption, "images", _media(media_root, image)
            )
        )
    return result


def write_jsonl(records: Iterable[Mapping[str, Any]], path: str | os.PathLike) -> int:
    """Write records as UTF-8 JSON Lines (non-ASCII kept), atomically; returns the number written.

    ``path`` appears only once every record is written (``m2se.outputs.atomic_file``): a failure leaves the
    previous file, if any, as it was.
    """
    count = 0
    with atomic_file(path) as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            count += 1
    return count
