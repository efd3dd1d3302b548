"""Loaders for the text releases of MELD, ECF 2.0 and ECF 1.0.

MELD CSV (``train_sent_emo.csv``, ``dev_sent_emo.csv``, ``test_sent_emo.csv``; UTF-8, CRLF, curly quotes
kept) -> one row per utterance: ``id`` (``dia{D}_utt{U}``), ``source`` ("meld"), ``text``, ``speaker``,
``emotion`` (ClassLabel, MELD_EMOTIONS), ``sentiment`` (ClassLabel, MELD_SENTIMENTS), ``dialogue_id``,
``utterance_id``, ``season``, ``episode``, ``start_time``, ``end_time``.

ECF 2.0 JSON (SemEval-2024 Task 3) and ECF 1.0 text files -> one row per conversation (CONVERSATION_FEATURES):
``conversation_id``, ``utterances`` (``utterance_id``, ``speaker``, ``emotion``, ``text``, ``video_name`` or
None, ``clip`` or None) and ``pairs`` (``emotion_utterance_id``, ``emotion``, ``cause_utterance_id``,
``cause_span``). Subtask 1 pairs (``["3_surprise", "1_<span>"]``) keep the span text; Subtask 2 pairs
(``["3_surprise", "1"]``) and ECF 1.0 pairs have ``cause_span`` None. ECF 1.0 ``clip`` is the last field of an
utterance line (``Friends_S1E1: 00:01:19.037 - 00:01:25.417``, or the MELD id ``train_dia559_utt0`` in
``all_data_pair_ECFvsMELD.txt``).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import datasets

from m2se.data.tables import read_csv, read_text
from tasks_mse_adapter import MELD_LABELS

MELD_EMOTIONS = tuple(MELD_LABELS)  # in MSE-Adapter's MELD prompt order, which the class indices follow
MELD_SENTIMENTS = ("negative", "neutral", "positive")
MELD_COLUMNS = ("Sr No.", "Utterance", "Speaker", "Emotion", "Sentiment", "Dialogue_ID", "Utterance_ID")
MELD_SPLIT_FILES = {
    "train": "train_sent_emo.csv",
    "validation": "dev_sent_emo.csv",
    "test": "test_sent_emo.csv",
}

MELD_FEATURES = datasets.Features(
    {
        "id": datasets.Value("string"),
        "source": datasets.Value("string"),
        "text": datasets.Value("string"),
        "speaker": datasets.Value("string"),
        "emotion": datasets.ClassLabel(names=list(MELD_EMOTIONS)),
        "sentiment": datasets.ClassLabel(names=list(MELD_SENTIMENTS)),
        "dialogue_id": datasets.Value("int32"),
        "utterance_id": datasets.Value("int32"),
        "season": datasets.Value("int32"),
        "episode": datasets.Value("int32"),
        "start_time": datasets.Value("string"),
        "end_time": datasets.Value("string"),
    }
)

CONVERSATION_FEATURES = datasets.Features(
    {
        "conversation_id": datasets.Value("int32"),
        "utterances": datasets.List(
            {
                "utterance_id": datasets.Value("int32"),
                "speaker": datasets.Value("string"),
                "emotion": datasets.Value("string"),
                "text": datasets.Value("string"),
                "video_name": datasets.Value("string"),
                "clip": datasets.Value("string"),
            }
        ),
        "pairs": datasets.List(
            {
                "emotion_utterance_id": datasets.Value("int32"),
                "emotion": datasets.Value("string"),
                "cause_utterance_id": datasets.Value("int32"),
                "cause_span": datasets.Value("string"),
            }
        ),
    }
)


def _existing_file(path: str | os.PathLike, what: str) -> Path:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    return path


def load_meld_csv(path: str | os.PathLike) -> datasets.Dataset:
    """One MELD split CSV as a ``Dataset`` (schema in the module docstring)."""
    path = _existing_file(path, "MELD CSV")
    table = read_csv(path, "a MELD CSV", dtype=str, keep_default_na=False)
    missing = [column for column in MELD_COLUMNS if column not in table.columns]
    if missing:
        raise ValueError(f"{path} is not a MELD CSV: missing columns {missing}; it has {list(table.columns)}")
    for column, names in (("Emotion", MELD_EMOTIONS), ("Sentiment", MELD_SENTIMENTS)):
        unknown = sorted(set(table[column].str.strip().str.lower()) - set(names))
        if unknown:
            raise ValueError(f"{path}: unknown {column} values {unknown}; expected {list(names)}")
    for column in ("Dialogue_ID", "Utterance_ID"):
        bad = table[~table[column].str.strip().str.fullmatch(r"\d+")]
        if len(bad):
            raise ValueError(
                f"{path}: {column} must be a non-negative integer, got {bad[column].iloc[0]!r} "
                f"(Sr No. {bad['Sr No.'].iloc[0]})"
            )

    def optional_int(column: str) -> list[int | None]:
        if column not in table.columns:
            return [None] * len(table)
        return [int(value) if value.strip().isdigit() else None for value in table[column]]

    dialogues, utterances = table["Dialogue_ID"].astype(int), table["Utterance_ID"].astype(int)
    return datasets.Dataset.from_dict(
        {
            "id": [f"dia{d}_utt{u}" for d, u in zip(dialogues, utterances, strict=True)],
            "source": ["meld"] * len(table),
            "text": table["Utterance"].tolist(),
            "speaker": table["Speaker"].tolist(),
            "emotion": [MELD_EMOTIONS.index(e.strip().lower()) for e in table["Emotion"]],
            "sentiment": [MELD_SENTIMENTS.index(s.strip().lower()) for s in table["Sentiment"]],
            "dialogue_id": dialogues.tolist(),
            "utterance_id": utterances.tolist(),
            "season": optional_int("Season"),
            "episode": optional_int("Episode"),
            "start_time": table["StartTime"].tolist()
            if "StartTime" in table.columns
            else [None] * len(table),
            "end_time": table["EndTime"].tolist() if "EndTime" in table.columns else [None] * len(table),
        },
        features=MELD_FEATURES,
    )


def load_meld(data_dir: str | os.PathLike) -> datasets.DatasetDict:
    """The MELD splits found in ``data_dir`` (``train`` / ``validation`` = dev / ``test``)."""
    data_dir = Path(data_dir)
    found = {
        split: data_dir / name for split, name in MELD_SPLIT_FILES.items() if (data_dir / name).is_file()
    }
    if not found:
        raise FileNotFoundError(
            f"no MELD CSV in {data_dir}: expected any of {list(MELD_SPLIT_FILES.values())}"
        )
    return datasets.DatasetDict({split: load_meld_csv(path) for split, path in found.items()})


_EMOTION_KEY = re.compile(r"^(\d+)_(\w+)$")
_CAUSE_KEY = re.compile(r"^(\d+)(?:_(.*))?$", re.DOTALL)


def _ecf2_pair(pair: Any, where: str) -> dict[str, Any]:
    if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(part, str) for part in pair)):
        raise ValueError(f'{where}: expected a pair ["3_surprise", "1" or "1_<span>"], got {pair!r}')
    emotion_key, cause_key = _EMOTION_KEY.match(pair[0]), _CAUSE_KEY.match(pair[1])
    if emotion_key is None or cause_key is None:
        raise ValueError(f'{where}: expected a pair ["3_surprise", "1" or "1_<span>"], got {pair!r}')
    return {
        "emotion_utterance_id": int(emotion_key.group(1)),
        "emotion": emotion_key.group(2),
        "cause_utterance_id": int(cause_key.group(1)),
        "cause_span": cause_key.group(2),
    }


def load_ecf2(path: str | os.PathLike) -> datasets.Dataset:
    """An ECF 2.0 JSON file (Subtask 1 or 2, with or without pairs) as one row per conversation."""
    path = _existing_file(path, "ECF 2.0 JSON")
    try:
        conversations = json.loads(read_text(path, "an ECF 2.0 JSON file"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from error
    if not isinstance(conversations, list):
        raise ValueError(f"{path}: expected a list of conversations, got {type(conversations).__name__}")
    rows = []
    for position, conversation in enumerate(conversations):
        where = f"{path} conversation #{position}"
        if not isinstance(conversation, dict) or not {"conversation_ID", "conversation"} <= set(conversation):
            got = sorted(conversation) if isinstance(conversation, dict) else type(conversation).__name__
            raise ValueError(f"{where}: expected keys conversation_ID, conversation; got {got}")
        utterances = []
        for utterance in conversation["conversation"]:
            missing = {"utterance_ID", "text", "speaker", "emotion"} - set(utterance)
            if missing:
                raise ValueError(f"{where}: utterance lacks {sorted(missing)}: {utterance!r:.200}")
            utterances.append(
                {
                    "utterance_id": int(utterance["utterance_ID"]),
                    "speaker": utterance["speaker"],
                    "emotion": utterance["emotion"],
                    "text": utterance["text"],
                    "video_name": utterance.get("video_name"),
                    "clip": None,
                }
            )
        pairs = [_ecf2_pair(pair, where) for pair in conversation.get("emotion-cause_pairs", [])]
        rows.append(
            {
                "conversation_id": int(conversation["conversation_ID"]),
                "utterances": utterances,
                "pairs": pairs,
            }
        )
    return datasets.Dataset.from_list(rows, features=CONVERSATION_FEATURES)


_ECF1_PAIR = re.compile(r"\((\d+),(\d+)\)")


def load_ecf1(path: str | os.PathLike) -> datasets.Dataset:
    """An ECF 1.0 text file (``train.txt``, ``dev.txt``, ``test.txt``, ``all_data_pair_ECFvsMELD.txt``)."""
    path = _existing_file(path, "ECF 1.0 file")
    lines = read_text(path, "an ECF 1.0 text file").splitlines()
    rows = []
    index = 0
    while index < len(lines):
        if not lines[index].strip():
            index += 1
            continue
        header = lines[index].split()
        if len(header) != 2 or not all(part.isdigit() for part in header):
            raise ValueError(
                f"{path}:{index + 1}: expected a conversation header 'conv_id n_utts', got {lines[index]!r}"
            )
        conversation_id, count = int(header[0]), int(header[1])
        if index + 2 + count > len(lines):
            raise ValueError(
                f"{path}:{index + 1}: conversation {conversation_id} announces {count} utterances "
                f"but the file ends after {len(lines) - index - 2}"
            )
        pair_line = lines[index + 1].strip()
        pair_ids = [(int(a), int(b)) for a, b in _ECF1_PAIR.findall(pair_line)]
        if _ECF1_PAIR.sub("", pair_line).replace(",", "").strip():
            raise ValueError(f"{path}:{index + 2}: expected pairs like '(3,1),(3,3)', got {pair_line!r}")
        utterances = []
        for offset in range(count):
            number = index + 3 + offset
            fields = lines[number - 1].split(" | ")
            if len(fields) < 5 or not fields[0].strip().isdigit():
                raise ValueError(
                    f"{path}:{number}: expected 'idx | speaker | emotion | text | clip', "
                    f"got {lines[number - 1]!r}"
                )
            utterances.append(
                {
                    "utterance_id": int(fields[0]),
                    "speaker": fields[1].strip(),
                    "emotion": fields[2].strip(),
                    "text": " | ".join(fields[3:-1]).strip(),
                    "video_name": None,
                    "clip": fields[-1].strip(),
                }
            )
        emotions = {utterance["utterance_id"]: utterance["emotion"] for utterance in utterances}
        unknown = [pair for pair in pair_ids if pair[0] not in emotions or pair[1] not in emotions]
        if unknown:
            raise ValueError(
                f"{path}:{index + 2}: pairs {unknown} name utterances outside conversation "
                f"{conversation_id} (1-{count})"
            )
        pairs = [
            {"emotion_utterance_id": e, "emotion": emotions[e], "cause_utterance_id": c, "cause_span": None}
            for e, c in pair_ids
        ]
        rows.append({"conversation_id": conversation_id, "utterances": utterances, "pairs": pairs})
        index += 2 + count
    return datasets.Dataset.from_list(rows, features=CONVERSATION_FEATURES)
