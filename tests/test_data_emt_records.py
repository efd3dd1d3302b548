"""One EMT record validator: `load_emt` (records on disk) and `EmoVerseCollator` (records in a batch) accept
and refuse the same records, with messages naming the record, the field, what was expected and what was
received."""

from __future__ import annotations

import json

import pytest
from test_emoverse_common import emoverse_parts, emoverse_processor, solid_image_path  # noqa: F401

from m2se.collators import EmoVerseCollator
from m2se.data import load_emt, validate_emt_record
from m2se.emt.templates import EMT_TASKS

BAD_RECORDS = [
    ({"query": "q", "response": None}, "'response' must be a string, got NoneType None"),
    ({"query": 5, "response": "r"}, "'query' must be a string, got int 5"),
    ({"response": "r"}, "'query' must be a string, got NoneType None"),
    ({"query": "q", "response": "r", "videos": 5}, "'videos' must be a path or a list of paths"),
    (
        {"query": "q", "response": "r", "videos": [""]},
        r"'videos' must be a path or a list of paths .* \[''\]",
    ),
    (
        {"query": "q", "response": "r", "videos": ["a.mp4"], "images": ["a.png"]},
        "has both 'images' and 'videos'; expected one of them",
    ),
    ({"query": "q", "response": "r", "id": ["x"]}, "'id' must be a string or an integer, got list"),
    ("just text", "expected an EMT record \\(a JSON object / dict\\), got str 'just text'"),
]


@pytest.mark.parametrize(("record", "message"), BAD_RECORDS)
def test_loader_refuses_bad_records_naming_file_and_line(tmp_path, record, message):
    path = tmp_path / "records.jsonl"
    path.write_text(
        json.dumps({"query": "fine", "response": "Joy."}) + "\n" + json.dumps(record) + "\n", "utf-8"
    )
    with pytest.raises(ValueError, match=f"^{path}:2: {message}"):
        load_emt(path)


def test_a_single_path_string_is_one_path_not_a_list_of_characters(tmp_path):
    path = tmp_path / "records.jsonl"
    path.write_text(json.dumps({"query": "q", "response": "r", "videos": "dia1.mp4"}) + "\n", "utf-8")
    assert load_emt(path)["videos"] == [["dia1.mp4"]]
    assert validate_emt_record({"query": "q", "response": "r", "videos": "dia1.mp4"}, "r")["videos"] == [
        "dia1.mp4"
    ]


def test_empty_record_lists_and_non_utf8_files_name_the_file(tmp_path):
    listing = tmp_path / "records.json"
    listing.write_text("[]", encoding="utf-8")
    with pytest.raises(ValueError, match=f"^{listing} holds no EMT record$"):
        load_emt(listing)
    latin = tmp_path / "latin.jsonl"
    latin.write_bytes(json.dumps({"query": "caf\xe9", "response": "r"}, ensure_ascii=False).encode("cp1252"))
    with pytest.raises(
        ValueError, match=f"^{latin} is not UTF-8 text \\(byte 0xe9 on line 1\\); expected a JSON"
    ):
        load_emt(latin)


@pytest.fixture
def collator(emoverse_processor):  # noqa: F811
    return EmoVerseCollator(emoverse_processor, tasks=EMT_TASKS)


@pytest.mark.parametrize(("record", "message"), BAD_RECORDS)
def test_collator_refuses_the_same_records_before_the_processor(collator, record, message):
    row = {"id": "er/x/1", "task": "er", **record} if isinstance(record, dict) else record
    where = "EMT record 'er/x/1'" if isinstance(row, dict) and isinstance(row["id"], str) else "EMT record 0"
    with pytest.raises(ValueError, match=f"^{where}: {message}"):
        collator([row])


def test_collator_empty_batch_and_string_video_path(collator, tmp_path):
    with pytest.raises(
        ValueError, match=r"^EmoVerseCollator got an empty list of records; expected at least one"
    ):
        collator([])
    # A string is one path (the processor once read "dia1.mp4" as the files "d", "i", "a" ...).
    missing = str(tmp_path / "dia1.mp4")
    with pytest.raises(FileNotFoundError, match=f"^video file not found: {missing}$"):
        collator([{"task": "er", "query": "q", "response": "Joy.", "videos": missing}])


def test_collator_builds_a_batch_from_valid_rows_as_datasets_gives_them(collator, tmp_path):
    image = solid_image_path(tmp_path, "a.png", (200, 30, 30))
    rows = [
        {
            "id": "er/x/1",
            "task": "er",
            "query": "What is the emotion?",
            "response": "Anger.",
            "images": [image],
            "videos": [],
            "system": None,
        }
    ]
    batch = collator(rows)
    assert batch["task_ids"].tolist() == [EMT_TASKS.index("er")]
    assert batch["labels"].shape == batch["input_ids"].shape and (batch["labels"] != -100).any()
    prompts = EmoVerseCollator(collator.processor, tasks=EMT_TASKS, with_labels=False)
    assert "labels" not in prompts([{key: value for key, value in rows[0].items() if key != "response"}])
