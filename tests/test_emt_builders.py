"""EMT builders and `python -m m2se.emt`: exact M2SE templates, media paths, counts, bad inputs, real data."""

from __future__ import annotations

import json

import pytest
from test_data_conversations import ECF2_RECORD, _write_meld
from test_facial import write_openface

from m2se.data import load_ecf2, load_emt, load_meld_csv
from m2se.data.tables import read_table
from m2se.emt import builders, templates
from m2se.emt.__main__ import main as emt_cli

# The templates typed out independently of m2se.emt.templates (character by character from PAPER_FACTS.md).
MSA_EXPECTED = (
    "The person says: 'Great!' <sentiment> Please determine which sentiment label in the video represents: "
    "positive or negative."
)
ER_EXPECTED = (
    "The person says: 'Great!' <emotion> Please determine which emotion label in the video represents: "
    "anger, sadness, surprise, disgust, joy, neutral or fear."
)
ECPE_EXPECTED_TARGET_2 = (
    "Below is a conversation containing multiple utterances from different speakers, \n"
    "along with the corresponding emotion label for each utterance. \n"
    "Your task is to identify the indices of the candidate utterances that elicited the emotion in the "
    "target utterance.\n"
    "Input conversation:1_neutral. Monica: It is Paul .\n2_surprise. Ross: Paul ?\n3_joy. Monica: Yes .\n"
    "Candidate utterances:1_neutral. Monica: It is Paul .\n"
    "Target utterance:2_surprise. Ross: Paul ?\n"
    'You need to return the answer as, for example, "3_surprise,1", \n'
    "which means that the emotion of surprise in the third sentence is related to the first sentence, \n"
    "and if the emotion is related to more than one sentence, separate the sentences with \u201c;\u201d.\n"
    "The emotion-cause indices of the target utterance are:"
)


@pytest.fixture
def meld(tmp_path):
    path = _write_meld(
        tmp_path / "dev_sent_emo.csv",
        [
            '1,Great!,Joey,joy,positive,12,0,1,23,"a","b"',
            '2,Fine.,Ross,neutral,neutral,12,1,1,23,"a","b"',
            '3,"No, no!",Rachel,anger,negative,13,4,1,23,"a","b"',
        ],
    )
    return load_meld_csv(path)


def test_meld_er_and_msa_records(meld):
    result = builders.meld_records(meld, "MELD/dev/", tasks=["er", "msa"], source="meld-dev")
    er = [r for r in result.records if r["task"] == "er"]
    msa = [r for r in result.records if r["task"] == "msa"]
    assert er[0] == {
        "id": "er/meld-dev/dia12_utt0",
        "task": "er",
        "query": ER_EXPECTED,
        "response": "Joy.",
        "videos": ["MELD/dev/dia12_utt0.mp4"],
    }
    assert [r["response"] for r in er] == ["Joy.", "Neutral.", "Anger."]
    assert msa[0]["query"] == MSA_EXPECTED and [r["response"] for r in msa] == ["Positive.", "Negative."]
    assert msa[1]["videos"] == ["MELD/dev/dia13_utt4.mp4"]
    assert result.skipped == {"neutral-sentiment utterances (msa)": 1}
    with pytest.raises(ValueError, match="MELD yields the tasks 'er' and 'msa'"):
        builders.meld_records(meld, "x", tasks=["ecpe"])


def test_ecpe_records_exact_query_and_response(tmp_path):
    conversation = dict(
        ECF2_RECORD,
        conversation=[
            *ECF2_RECORD["conversation"],
            {"utterance_ID": 3, "text": "Yes .", "speaker": "Monica", "emotion": "joy"},
        ],
        **{"emotion-cause_pairs": [["2_surprise", "1"], ["2_surprise", "2"], ["3_joy", "2"]]},
    )
    path = tmp_path / "Subtask_2_test.json"
    path.write_text(json.dumps([conversation]), encoding="utf-8")
    result = builders.ecpe_records(load_ecf2(path), "ECF2/test", source="test")
    assert [r["id"] for r in result.records] == ["ecpe/test/dia7utt2", "ecpe/test/dia7utt3"]
    first = result.records[0]
    assert first["query"] == ECPE_EXPECTED_TARGET_2
    assert first["response"] == "2_surprise,1;2_surprise,2" and first["videos"] == ["ECF2/test/dia7utt2.mp4"]
    assert result.records[1]["response"] == "3_joy,2"


def test_ecpe_first_utterance_has_lone_newline_candidates_and_empty_response(tmp_path):
    conversation = {
        "conversation_ID": 2,
        "conversation": [{"utterance_ID": 1, "text": "Hi !", "speaker": "A", "emotion": "joy"}],
        "emotion-cause_pairs": [],
    }
    path = tmp_path / "c.json"
    path.write_text(json.dumps([conversation]), encoding="utf-8")
    (record,) = builders.ecpe_records(load_ecf2(path), "r").records
    assert "Candidate utterances:\nTarget utterance:1_joy. A: Hi !\nYou need" in record["query"]
    assert record["response"] == ""


def test_ecpe_pair_emotion_mismatch(tmp_path):
    bad = dict(ECF2_RECORD, **{"emotion-cause_pairs": [["2_joy", "1"]]})
    path = tmp_path / "bad.json"
    path.write_text(json.dumps([bad]), encoding="utf-8")
    with pytest.raises(ValueError, match="pair 2_joy disagrees with the emotion 'surprise' of utterance 2"):
        builders.ecpe_records(load_ecf2(path), "r")


def test_mosei_msa_and_nn_variant(tmp_path):
    table_path = tmp_path / "mosei.csv"
    table_path.write_text("id,text,score\n0001_a,good,1.2\n0002_b,meh,0\n0003_c,bad,-0.4\n", encoding="utf-8")
    table = read_table(table_path, ("id", "text", "score"))
    result = builders.msa_records(table, "MOSEI", source="mosei")
    assert [(r["id"], r["response"]) for r in result.records] == [
        ("msa/mosei/0001_a", "Positive."),
        ("msa/mosei/0003_c", "Negative."),
    ]
    assert result.records[0]["videos"] == ["MOSEI/0001_a.mp4"] and result.skipped == {"zero scores": 1}
    nn = builders.msa_records(table, "MOSEI", non_negative_is_positive=True)
    assert [r["response"] for r in nn.records] == ["Positive.", "Positive.", "Negative."]
    table_path.write_text("id,text,score\n1,x,high\n", encoding="utf-8")
    with pytest.raises(ValueError, match="id 1: score must be a number, got 'high'"):
        builders.msa_records(read_table(table_path, ("id", "text", "score")), "m")
    table_path.write_text("id,text,score\n1,x,nan\n", encoding="utf-8")
    with pytest.raises(ValueError, match="score must be finite"):
        builders.msa_records(read_table(table_path, ("id", "text", "score")), "m")


def test_eri_records_and_tables(tmp_path):
    table_path = tmp_path / "reasons.jsonl"
    table_path.write_text(
        json.dumps({"id": "v1", "reason": " She smiles because she won. "}) + "\n", encoding="utf-8"
    )
    (record,) = builders.eri_records(read_table(table_path, ("id", "reason")), "V").records
    assert record["query"] == (
        "<reason> What is the emotional state of the person in the video? Please tell me the reason."
    )
    assert record["response"] == "She smiles because she won." and record["id"] == "eri/mosei/v1"
    table_path.write_text(json.dumps({"id": "v2", "reason": "  "}) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match="id v2: the reason text is empty"):
        builders.eri_records(read_table(table_path, ("id", "reason")), "V")
    with pytest.raises(ValueError, match=r"missing columns \['text'\]"):
        read_table(table_path, ("id", "text"))
    with pytest.raises(ValueError, match=r"tables must be \.csv, \.tsv, \.json or \.jsonl"):
        (tmp_path / "t.xlsx").write_text("", encoding="utf-8")
        read_table(tmp_path / "t.xlsx", ("id",))
    with pytest.raises(FileNotFoundError, match="table not found"):
        read_table(tmp_path / "none.csv", ("id",))


def test_fer_records_from_openface(tmp_path):
    openface = tmp_path / "openface"
    openface.mkdir()
    write_openface(
        openface / "clip1.csv", [{"frame": 1, "AU06_r": 0.2}, {"frame": 7, "AU06_r": 1.5, "AU12_c": 1}]
    )
    write_openface(openface / "clip2.csv", [{"frame": 1, "AU26_r": 2.0}])
    table_path = tmp_path / "fer.csv"
    table_path.write_text("id,emotion\nclip1,happy\nclip2,sadness\n", encoding="utf-8")
    table = read_table(table_path, ("id", "emotion"))
    result = builders.fer_records(table, openface, "frames", source="fer")
    (record,) = result.records
    assert record == {
        "id": "fer/fer/clip1",
        "task": "fer",
        "query": "Detail the facial expressions used in the image.",
        "response": "Cheeks raised; Lip corners pulled up",
        "images": ["frames/clip1_aligned/frame_det_00_000007.bmp"],
    }
    assert result.skipped == {"empty captions": 1}
    pattern = builders.fer_records(table, openface, "f", image_pattern="{id}/{frame}.png").records[0][
        "images"
    ]
    assert pattern == ["f/clip1/7.png"]
    table_path.write_text("id,emotion\nclip1,joy\nclip2,bored\n", encoding="utf-8")
    with pytest.raises(ValueError, match="id clip2: unknown emotion 'bored'; known emotions: anger"):
        builders.fer_records(read_table(table_path, ("id", "emotion")), openface, "f")
    table_path.write_text("id,emotion\nclip3,joy\n", encoding="utf-8")
    with pytest.raises(FileNotFoundError, match=r"1 OpenFace CSVs missing .* e\.g\. clip3\.csv"):
        builders.fer_records(read_table(table_path, ("id", "emotion")), openface, "f")


def test_cli_meld_writes_jsonl_loadable_by_load_emt(tmp_path, capsys):
    csv_path = _write_meld(tmp_path / "test_sent_emo.csv", ['1,Great!,Joey,joy,positive,0,0,1,1,"a","b"'])
    out = tmp_path / "out" / "er.jsonl"
    assert (
        emt_cli(["meld", "--csv", str(csv_path), "--media-root", "M", "--tasks", "er,msa", "--out", str(out)])
        == 0
    )
    assert "2 records (er 1, msa 1)" in capsys.readouterr().out
    ds = load_emt(out)
    assert ds["id"] == ["er/test_sent_emo/dia0_utt0", "msa/test_sent_emo/dia0_utt0"]
    assert ds["videos"] == [["M/dia0_utt0.mp4"]] * 2
    assert set(json.loads(out.read_text(encoding="utf-8").splitlines()[0])) == {
        "id",
        "task",
        "query",
        "response",
        "videos",
    }


def test_cli_errors_exit_with_message(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        emt_cli(
            [
                "ecf",
                "--json",
                str(tmp_path / "none.json"),
                "--media-root",
                "r",
                "--out",
                str(tmp_path / "o.jsonl"),
            ]
        )
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == (
        f"python -m m2se.emt: error: ECF 2.0 JSON not found: {tmp_path / 'none.json'}\n"
    )
    with pytest.raises(SystemExit) as exit_info:
        emt_cli(["ecf", "--media-root", "r", "--out", str(tmp_path / "o.jsonl")])  # --json or --ecf1 required
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == (
        "python -m m2se.emt ecf: error: one of the arguments --json --ecf1 is required\n"
    )


@pytest.mark.shared_data
def test_real_meld_test_and_ecf2_subtask2(shared_data, tmp_path):
    meld_out, ecf_out = tmp_path / "meld.jsonl", tmp_path / "ecpe.jsonl"
    meld_csv = shared_data / "meld" / "test_sent_emo.csv"
    emt_cli(
        [
            "meld",
            "--csv",
            str(meld_csv),
            "--media-root",
            "MELD/test",
            "--tasks",
            "er",
            "msa",
            "--out",
            str(meld_out),
        ]
    )
    ecf_json = shared_data / "ecf2" / "Subtask_2_test.json"
    emt_cli(["ecf", "--json", str(ecf_json), "--media-root", "ECF2/test", "--out", str(ecf_out)])
    meld = load_meld_csv(meld_csv)
    records = load_emt(meld_out)
    er = records.filter(lambda r: r["task"] == "er")
    msa = records.filter(lambda r: r["task"] == "msa")
    sentiments = [meld.features["sentiment"].names[i] for i in meld["sentiment"]]
    assert len(er) == len(meld) == 2610
    assert len(msa) == sum(s != "neutral" for s in sentiments) == 1354
    for row, record in zip(meld, er, strict=True):
        assert record["query"] == templates.er_query(row["text"])
        assert record["query"].startswith(f"The person says: '{row['text']}' <emotion> Please determine")
        assert record["response"] == meld.features["emotion"].names[row["emotion"]].capitalize() + "."
        assert record["videos"] == [f"MELD/test/dia{row['dialogue_id']}_utt{row['utterance_id']}.mp4"]
    assert set(er["response"]) == {"Neutral.", "Joy.", "Surprise.", "Anger.", "Sadness.", "Disgust.", "Fear."}

    conversations = load_ecf2(ecf_json)
    ecpe = load_emt(ecf_out)
    non_neutral = [u for us in conversations["utterances"] for u in us if u["emotion"] != "neutral"]
    assert len(ecpe) == len(non_neutral) == 1821
    assert ecpe["videos"] == [[f"ECF2/test/{u['video_name']}"] for u in non_neutral]
    assert all(q.startswith(templates.ECPE_HEADER + "Input conversation:") for q in ecpe["query"])
    assert all(
        q.endswith("\u201c;\u201d.\nThe emotion-cause indices of the target utterance are:")
        for q in ecpe["query"]
    )
    gold_pairs = sum(len(p) for p in conversations["pairs"])
    assert sum(len(r.split(";")) for r in ecpe["response"] if r) == gold_pairs
    by_id = dict(zip(ecpe["id"], ecpe["response"], strict=True))
    assert by_id["ecpe/Subtask_2_test/dia1375utt5"] == "5_surprise,2;5_surprise,5"
    assert by_id["ecpe/Subtask_2_test/dia1375utt1"] == "1_disgust,1"
