"""EMT / ms-swift instruction records: the one validator of a record, and the loader of JSON / JSONL files.

A record is ``{"query": str, "response": str, "images": [path] | "videos": [path], "system": str?,
"task": str?, "id": str?}``; a single path may be given as a string. ``validate_emt_record`` turns a
record into a row of ``EMT_FEATURES``: missing ``images``/``videos`` become empty lists, a missing
``system``/``task`` becomes None and a missing ``id`` the given default. Media paths are kept as written.
``load_emt`` and ``m2se.collators.EmoVerseCollator`` both validate through it, so a record is accepted or
refused the same way on disk and in a batch.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import datasets

from m2se.data.schema import EMT_FEATURES, emt_dataset
from m2se.data.tables import read_text

_KNOWN_KEYS = set(EMT_FEATURES)


def _raw_records(path: Path) -> Iterator[tuple[str, Any]]:
    text = read_text(path, "a JSON / JSONL file of EMT records")
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


def _describe(value: Any) -> str:
    return f"{type(value).__name__} {value!r:.200}"


def _media_list(value: Any, key: str, where: str) -> list[str]:
    if value is None:
        return []
    paths = [value] if isinstance(value, str) else value
    if not isinstance(paths, list) or not all(isinstance(item, str) and item.strip() for item in paths):
        raise ValueError(
            f"{where}: {key!r} must be a path or a list of paths (non-empty strings), got {_describe(value)}"
        )
    return paths


def validate_emt_record(
    record: Any, where: str, *, default_id: str | None = None, require_response: bool = True
) -> dict[str, Any]:
    """Check one EMT record and return it as a row of ``EMT_FEATURES`` (format in the module docstring).

    Args:
        record: the record (a dict).
        where: how the messages name the record, e.g. ``"emt/a.jsonl:3"``.
        default_id: the ``id`` of a record without one.
        require_response: False for prompt-only records (generation), whose ``response`` may be absent.

    Raises:
        ValueError: naming ``where``, the field, what was expected and what was received.
    """
    if not isinstance(record, dict):
        raise ValueError(f"{where}: expected an EMT record (a JSON object / dict), got {_describe(record)}")
    for key in ("query", "response"):
        if key not in record or record[key] is None:
            if key == "response" and not require_response:
                continue
            raise ValueError(f"{where}: {key!r} must be a string, got {_describe(record.get(key))}")
        if not isinstance(record[key], str):
            raise ValueError(f"{where}: {key!r} must be a string, got {_describe(record[key])}")
    for key in ("task", "system"):
        if record.get(key) is not None and not isinstance(record[key], str):
            raise ValueError(f"{where}: {key!r} must be a string when given, got {_describe(record[key])}")
    record_id = record.get("id", default_id)
    if record_id is not None and (isinstance(record_id, bool) or not isinstance(record_id, (str, int))):
        raise ValueError(f"{where}: 'id' must be a string or an integer, got {_describe(record_id)}")
    images = _media_list(record.get("images"), "images", where)
    videos = _media_list(record.get("videos"), "videos", where)
    if images and videos:
        raise ValueError(f"{where}: has both 'images' and 'videos'; expected one of them")
    return {
        "id": None if record_id is None else str(record_id),
        "task": record.get("task"),
        "query": record["query"],
        "response": record.get("response"),
        "images": images,
        "videos": videos,
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
            unknown = sorted(set(record) - _KNOWN_KEYS) if isinstance(record, dict) else []
            if unknown:
                raise ValueError(
                    f"{where}: unknown keys {unknown}; expected a subset of {sorted(_KNOWN_KEYS)}"
                )
            rows.append(validate_emt_record(record, where, default_id=f"{path.stem}-{index}"))
        if len(rows) == before:
            raise ValueError(f"{path} holds no EMT record")
    return emt_dataset(rows)
