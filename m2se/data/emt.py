"""Loader for EMT / ms-swift instruction records (JSON list or JSON Lines).

A record is ``{"query": str, "response": str, "images": [path] | "videos": [path], "system": str?,
"task": str?, "id": str?}``. The returned rows follow ``EMT_FEATURES``: missing ``images``/``videos`` become
empty lists, a missing ``system``/``task`` becomes None and a missing ``id`` becomes ``<file stem>-<index>``.
Media paths are kept as written.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import datasets

from m2se.data.schema import EMT_FEATURES, emt_dataset

_KNOWN_KEYS = set(EMT_FEATURES)


def _raw_records(path: Path) -> Iterator[tuple[str, Any]]:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        try:
            records = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path} is not valid JSON: {error}") from error
        if not isinstance(records, list):
            raise ValueError(f"{path}: expected a JSON list of records, got {type(records).__name__}")
        for index, record in enumerate(records):
            yield f"{path} record {index}", record
        return
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield f"{path}:{number}", json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}:{number} is not a JSON object: {error}") from error


def _media_list(value: Any, key: str, where: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return value
    raise ValueError(f"{where}: {key!r} must be a path or a list of paths, got {value!r:.200}")


def normalize_emt_record(record: Any, where: str, default_id: str) -> dict[str, Any]:
    """One raw EMT record -> a row of ``EMT_FEATURES`` (validated)."""
    if not isinstance(record, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(record).__name__}")
    for key in ("query", "response"):
        if not isinstance(record.get(key), str):
            raise ValueError(f"{where}: {key!r} must be a string, got {record.get(key)!r:.200}")
    for key in ("task", "system"):
        if record.get(key) is not None and not isinstance(record[key], str):
            raise ValueError(f"{where}: {key!r} must be a string when given, got {record[key]!r:.200}")
    unknown = sorted(set(record) - _KNOWN_KEYS)
    if unknown:
        raise ValueError(f"{where}: unknown keys {unknown}; expected a subset of {sorted(_KNOWN_KEYS)}")
    return {
        "id": str(record.get("id", default_id)),
        "task": record.get("task"),
        "query": record["query"],
        "response": record["response"],
        "images": _media_list(record.get("images"), "images", where),
        "videos": _media_list(record.get("videos"), "videos", where),
        "system": record.get("system"),
    }


def load_emt(path_or_paths: str | os.PathLike | Sequence[str | os.PathLike]) -> datasets.Dataset:
    """EMT / ms-swift records from one or more ``.json`` / ``.jsonl`` files, in file order."""
    paths = [path_or_paths] if isinstance(path_or_paths, (str, os.PathLike)) else list(path_or_paths)
    if not paths:
        raise ValueError("load_emt needs at least one .json or .jsonl path, got none")
    rows: list[dict[str, Any]] = []
    for path in map(Path, paths):
        if path.suffix not in (".json", ".jsonl"):
            raise ValueError(f"EMT files must end in .json or .jsonl, got {path}")
        if not path.is_file():
            raise FileNotFoundError(f"EMT file not found: {path}")
        before = len(rows)
        for index, (where, record) in enumerate(_raw_records(path)):
            rows.append(normalize_emt_record(record, where, f"{path.stem}-{index}"))
        if len(rows) == before:
            raise ValueError(f"{path} holds no EMT record")
    return emt_dataset(rows)
