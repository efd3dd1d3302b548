"""MELD CSV, ECF 2.0 JSON, ECF 1.0 text and EMT loaders: fixtures in each layout, then the real files."""

from __future__ import annotations

import json

import pytest

from m2se.data import load_ecf1, load_ecf2, load_emt, load_meld, load_meld_csv

MELD_HEADER = (
    "Sr No.,Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,Utterance_ID,Season,Episode,StartTime,EndTime"
)


def _write_meld(path, rows):
    path.write_bytes(("\r\n".join([MELD_HEADER, *rows]) + "\r\n").encode("utf-8"))
    return path


@pytest.fixture
def meld_csv(tmp_path):
    return _write_meld(
        tmp_path / "test_sent_emo.csv",
        [
            '1,"Oh. That\u2019s so Monica, \u2018Where\u2019s 27?!\u2019",Rachel,anger,negative,0,1,3,19,'
            '"00:14:40,629","00:14:47,385"',
            '2,Y\'know what?,Rachel,Neutral,neutral,0,2,3,19,"00:14:56,353","00:14:57,520"',
            '3,Great!,Joey,joy,positive,12,0,1,23,"0:10:44,769","0:10:46,146"',
        ],
    )


def test_meld_csv_schema_and_text(meld_csv):
    ds = load_meld_csv(meld_csv)
    assert ds["id"] == ["dia0_utt1", "dia0_utt2", "dia12_utt0"]
    assert ds[0]["text"] == "Oh. That\u2019s so Monica, \u2018Where\u2019s 27?!\u2019"
    assert [ds.features["emotion"].names[i] for i in ds["emotion"]] == ["anger", "neutral", "joy"]
    assert [ds.features["sentiment"].names[i] for i in ds["sentiment"]] == ["negative", "neutral", "positive"]
    assert ds[2]["start_time"] == "0:10:44,769" and ds[2]["season"] == 1 and ds[1]["speaker"] == "Rachel"
    assert not any(text.endswith("\r") for text in ds["text"]) and not ds[0]["end_time"].endswith("\r")


def test_meld_bad_inputs(tmp_path):
    with pytest.raises(FileNotFoundError, match="MELD CSV not found"):
        load_meld_csv(tmp_path / "missing.csv")
    bad_columns = tmp_path / "cols.csv"
    bad_columns.write_text("Sr No.,Utterance,Speaker\n1,hi,Joey\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"missing columns \['Emotion', 'Sentiment'"):
        load_meld_csv(bad_columns)
    bad_label = _write_meld(tmp_path / "label.csv", ['1,hi,Joey,happy,positive,0,0,1,1,"a","b"'])
    with pytest.raises(ValueError, match=r"unknown Emotion values \['happy'\]"):
        load_meld_csv(bad_label)
    bad_id = _write_meld(tmp_path / "id.csv", ['1,hi,Joey,joy,positive,x,0,1,1,"a","b"'])
    with pytest.raises(ValueError, match="Dialogue_ID must be a non-negative integer, got 'x'"):
        load_meld_csv(bad_id)
    with pytest.raises(FileNotFoundError, match="no MELD CSV"):
        load_meld(tmp_path / "nowhere")


ECF2_RECORD = {
    "conversation_ID": 7,
    "conversation": [
        {
            "utterance_ID": 1,
            "text": "It is Paul .",
            "speaker": "Monica",
            "emotion": "neutral",
            "video_name": "dia7utt1.mp4",
        },
        {
            "utterance_ID": 2,
            "text": "Paul ?",
            "speaker": "Ross",
            "emotion": "surprise",
            "video_name": "dia7utt2.mp4",
        },
    ],
    "emotion-cause_pairs": [["2_surprise", "1"], ["2_surprise", "2"]],
}


def test_ecf2_subtask2_and_subtask1(tmp_path):
    path = tmp_path / "Subtask_2_test.json"
    path.write_text(json.dumps([ECF2_RECORD]), encoding="utf-8")
    row = load_ecf2(path)[0]
    assert row["conversation_id"] == 7 and row["utterances"][1]["video_name"] == "dia7utt2.mp4"
    assert [
        (p["emotion_utterance_id"], p["emotion"], p["cause_utterance_id"], p["cause_span"])
        for p in row["pairs"]
    ] == [(2, "surprise", 1, None), (2, "surprise", 2, None)]
    span = dict(ECF2_RECORD, **{"emotion-cause_pairs": [["2_surprise", "1_It is Paul ."]]})
    path.write_text(json.dumps([span]), encoding="utf-8")
    pair = load_ecf2(path)[0]["pairs"][0]
    assert pair["cause_utterance_id"] == 1 and pair["cause_span"] == "It is Paul ."


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        (json.dumps({"conversation_ID": 1}), "expected a list of conversations, got dict"),
        (json.dumps([{"conversation": []}]), "expected keys conversation_ID, conversation"),
        (
            json.dumps([{"conversation_ID": 1, "conversation": [{"utterance_ID": 1, "text": "x"}]}]),
            r"utterance lacks \['emotion', 'speaker'\]",
        ),
        (json.dumps([dict(ECF2_RECORD, **{"emotion-cause_pairs": [["surprise", "1"]]})]), "expected a pair"),
    ],
)
def test_ecf2_bad_inputs(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        load_ecf2(path)


ECF1_TEXT = (
    "3 3\n(2,1),(3,3)\n"
    "1 | Chandler | neutral | Alright , so I am back . | Friends_S1E1: 00:01:19.037 - 00:01:25.417\n"
    "2 | Joey | surprise | A | B ? | Friends_S1E1: 00:01:25.627 - 00:01:27.169\n"
    "3 | Joey | anger | That is right . | Friends_S1E1: 00:01:27.378 - 00:01:33.343\n"
    "5 1\n\n1 | Phoebe | joy | Yes ! | train_dia559_utt0\n"
)


def test_ecf1_layout(tmp_path):
    path = tmp_path / "dev.txt"
    path.write_text(ECF1_TEXT, encoding="utf-8")
    ds = load_ecf1(path)
    assert ds["conversation_id"] == [3, 5]
    first = ds[0]
    assert first["utterances"][1]["text"] == "A | B ?"  # a ' | ' inside the text survives
    assert first["utterances"][0]["clip"] == "Friends_S1E1: 00:01:19.037 - 00:01:25.417"
    assert [(p["emotion_utterance_id"], p["emotion"], p["cause_utterance_id"]) for p in first["pairs"]] == [
        (2, "surprise", 1),
        (3, "anger", 3),
    ]
    assert ds[1]["pairs"] == [] and ds[1]["utterances"][0]["clip"] == "train_dia559_utt0"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("three 3\n", "expected a conversation header"),
        ("1 2\n(1,1)\n1 | A | joy | hi | clip\n", "announces 2 utterances but the file ends after 1"),
        ("1 1\n(1,1) junk\n1 | A | joy | hi | clip\n", "expected pairs like"),
        ("1 1\n(1,1)\n1 | A | joy\n", "expected 'idx | speaker | emotion | text | clip'"),
        (
            "1 1\n(1,4)\n1 | A | joy | hi | clip\n",
            r"pairs \[\(1, 4\)\] name utterances outside conversation 1",
        ),
    ],
)
def test_ecf1_bad_inputs(tmp_path, content, message):
    path = tmp_path / "bad.txt"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        load_ecf1(path)


def test_load_emt_json_and_jsonl(tmp_path):
    jsonl = tmp_path / "er.jsonl"
    jsonl.write_text(
        json.dumps({"id": "er/1", "task": "er", "query": "q", "response": "Joy.", "videos": ["a.mp4"]})
        + "\n\n"
        + json.dumps({"query": "q2", "response": "r2", "images": "x.png", "system": "You are ..."})
        + "\n",
        encoding="utf-8",
    )
    listing = tmp_path / "swift.json"
    listing.write_text(json.dumps([{"query": "q3", "response": "r3"}]), encoding="utf-8")
    ds = load_emt([jsonl, listing])
    assert ds["id"] == ["er/1", "er-1", "swift-0"]
    assert ds["task"] == ["er", None, None]
    assert ds["videos"] == [["a.mp4"], [], []] and ds["images"] == [[], ["x.png"], []]
    assert ds["system"] == [None, "You are ...", None]


@pytest.mark.parametrize(
    ("name", "content", "error", "message"),
    [
        ("a.jsonl", '{"query": "q"}\n', ValueError, "'response' must be a string"),
        (
            "a.jsonl",
            '{"query": "q", "response": "r", "audio": []}\n',
            ValueError,
            r"unknown keys \['audio'\]",
        ),
        (
            "a.jsonl",
            '{"query": "q", "response": "r"}\n{oops\n',
            ValueError,
            r"a\.jsonl:2 is not a JSON object",
        ),
        (
            "a.jsonl",
            '{"query": "q", "response": "r", "images": [1]}\n',
            ValueError,
            "must be a path or a list",
        ),
        ("a.json", '{"query": "q"}', ValueError, "expected a JSON list of records"),
        ("a.jsonl", "\n", ValueError, "holds no EMT record"),
        (
            "a.jsonl",
            '{"query": "q", "response": "r", "task": 3}\n',
            ValueError,
            "'task' must be a string when given",
        ),
        ("a.txt", "", ValueError, "must end in .json or .jsonl"),
    ],
)
def test_load_emt_bad_inputs(tmp_path, name, content, error, message):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(error, match=message):
        load_emt(path)


def test_load_emt_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="EMT file not found"):
        load_emt(tmp_path / "none.jsonl")
    with pytest.raises(ValueError, match="at least one"):
        load_emt([])


@pytest.mark.shared_data
def test_real_meld_splits(shared_data):
    splits = load_meld(shared_data / "meld")
    assert {name: len(ds) for name, ds in splits.items()} == {"train": 9989, "validation": 1109, "test": 2610}
    assert {name: len(set(ds["dialogue_id"])) for name, ds in splits.items()} == {
        "train": 1038,
        "validation": 114,
        "test": 280,
    }
    assert any("\u2019" in text for text in splits["test"]["text"])


@pytest.mark.shared_data
def test_real_ecf(shared_data):
    test = load_ecf2(shared_data / "ecf2" / "Subtask_2_test.json")
    assert len(test) == 341 and sum(len(u) for u in test["utterances"]) == 3101
    assert all(
        u["video_name"] == f"dia{c}utt{u['utterance_id']}.mp4"
        for c, utterances in zip(test["conversation_id"], test["utterances"], strict=True)
        for u in utterances
    )
    train = load_ecf2(shared_data / "ecf2" / "Subtask_1_train.json")
    assert len(train) == 1374 and sum(len(u) for u in train["utterances"]) == 13619
    splits = {name: load_ecf1(shared_data / "ecf1" / f"{name}.txt") for name in ("train", "dev", "test")}
    assert {name: len(ds) for name, ds in splits.items()} == {"train": 1001, "dev": 112, "test": 261}
    utterances = {name: sum(len(u) for u in ds["utterances"]) for name, ds in splits.items()}
    assert utterances == {"train": 9966, "dev": 1087, "test": 2566}  # 13,619 together, as ECF 2.0 train
    # ECF 1.0's three splits together are the ECF 2.0 training set; ECF 2.0 keeps the pairs with a cause span,
    # a subset of ECF 1.0's utterance-level pairs (9,256 of 9,794).
    ecf1_ids = sorted(i for ds in splits.values() for i in ds["conversation_id"])
    assert ecf1_ids == sorted(train["conversation_id"])
    ecf1_pairs = {
        (c, p["emotion_utterance_id"], p["cause_utterance_id"])
        for ds in splits.values()
        for c, pairs in zip(ds["conversation_id"], ds["pairs"], strict=True)
        for p in pairs
    }
    ecf2_pairs = {
        (c, p["emotion_utterance_id"], p["cause_utterance_id"])
        for c, pairs in zip(train["conversation_id"], train["pairs"], strict=True)
        for p in pairs
    }
    assert ecf2_pairs < ecf1_pairs and (len(ecf1_pairs), len(ecf2_pairs)) == (9794, 9256)
    meld_ids = load_ecf1(shared_data / "ecf1" / "all_data_pair_ECFvsMELD.txt")
    assert len(meld_ids) == 1374 and meld_ids[0]["utterances"][0]["clip"] == "train_dia559_utt0"
