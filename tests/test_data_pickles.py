"""Pickle loaders (MMSA, MSE-Adapter ERC) and `python -m m2se.data convert` on fixtures written here."""

from __future__ import annotations

import logging
import pickle
import subprocess
import sys

import datasets
import numpy as np
import pytest
from conftest import REPO_ROOT

from m2se.data import ERC_LABEL_NAMES, load_erc_pickle, load_mmsa_pickle
from m2se.data.__main__ import main as data_cli


def _mmsa_split(count: int, offset: int) -> dict:
    rng = np.random.default_rng(offset)
    audio = rng.standard_normal((count, 6, 3)).astype(np.float32)
    vision = rng.standard_normal((count, 4, 2)).astype(np.float32)
    audio[0, 1, 0] = -np.inf
    vision[0, 0, 1] = np.nan
    audio_lengths = np.array([3, 6, 0][:count])
    vision_lengths = np.array([4, 2, 1][:count])
    audio[np.arange(6)[None, :] >= audio_lengths[:, None]] = 0.0  # MMSA pads at the end
    return {
        "raw_text": np.array([f"utterance {offset + i}" for i in range(count)], dtype=object),
        "audio": audio,
        "vision": vision,
        "audio_lengths": audio_lengths,
        "vision_lengths": vision_lengths,
        "regression_labels": np.array([-1.4, 0.0, 2.6][:count], dtype=np.float32),
        "id": np.array([f"video{offset}_{i}" for i in range(count)], dtype=object),
        "classification_labels": np.zeros(count),
    }


@pytest.fixture
def mmsa_pickle(tmp_path):
    data = {"train": _mmsa_split(3, 0), "valid": _mmsa_split(2, 10), "test": _mmsa_split(3, 20)}
    path = tmp_path / "unaligned_50.pkl"
    path.write_bytes(pickle.dumps(data))
    return path, data


def _erc_records(labels):
    rng = np.random.default_rng(0)
    records = []
    for i, label in enumerate(labels):
        audio = rng.standard_normal((5, 4)).astype(np.float32)
        audio[0, 0] = -np.inf
        records.append(
            {
                "features": {
                    "text": f"line {i}",
                    "audio": audio,
                    "video": rng.standard_normal((3, 2)),
                    "audio_len": 5 - i % 3,
                    "video_len": 3,
                },
                "label": label,
            }
        )
    return records


@pytest.fixture
def meld_pickle(tmp_path):
    path = tmp_path / "meld_train.pkl"
    path.write_bytes(pickle.dumps(_erc_records(["joy", "Neutral", "6", "disgust"])))
    return path


def test_mmsa_requires_allow_pickle(mmsa_pickle):
    path, _ = mmsa_pickle
    with pytest.raises(ValueError, match=r"execute arbitrary code.*allow_pickle=True"):
        load_mmsa_pickle(path)


def test_mmsa_schema_lengths_and_non_finite(mmsa_pickle, caplog):
    path, data = mmsa_pickle
    with caplog.at_level(logging.INFO, logger="m2se.data.pickles"):
        splits = load_mmsa_pickle(path, allow_pickle=True, source="mosei")
    assert list(splits) == ["train", "validation", "test"]
    train = splits["train"].with_format("numpy")[:]
    assert splits["train"].features["label"] == datasets.Value("float32")
    assert train["audio_length"].tolist() == [3, 6, 0] and train["video_length"].tolist() == [4, 2, 1]
    assert [a.shape for a in train["audio"]] == [(3, 3), (6, 3), (0, 3)]
    expected = np.nan_to_num(data["train"]["audio"][1], nan=0.0, neginf=0.0)
    np.testing.assert_array_equal(train["audio"][1], expected)
    assert train["audio"][0][1, 0] == 0.0 and train["video"][0][0, 1] == 0.0
    np.testing.assert_allclose(train["label"], [-1.4, 0.0, 2.6], rtol=1e-6)
    assert splits["test"]["id"] == ["video20_0", "video20_1", "video20_2"]
    assert set(splits["train"]["source"]) == {"mosei"}
    # 3 splits, each with one -inf in audio and one NaN in vision (all inside the true lengths).
    assert "replaced 6 non-finite feature values by 0 (audio 3, video 3)" in caplog.text


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d["train"].pop("vision_lengths"), "lacks keys \\['vision_lengths'\\]"),
        (lambda d: d["train"].__setitem__("audio_lengths", np.array([3, 9, 0])), "audio_lengths\\[1\\] is 9"),
        (
            lambda d: d["train"].__setitem__("regression_labels", np.zeros(2)),
            "regression_labels has 2 entries",
        ),
        (lambda d: d["train"].__setitem__("audio", np.zeros((3, 6))), "must be \\(N, T, D\\) arrays"),
    ],
)
def test_mmsa_bad_layouts(tmp_path, mutate, message):
    data = {"train": _mmsa_split(3, 0)}
    mutate(data)
    path = tmp_path / "bad.pkl"
    path.write_bytes(pickle.dumps(data))
    with pytest.raises(ValueError, match=message):
        load_mmsa_pickle(path, allow_pickle=True)


def test_mmsa_not_a_dict_and_missing_file(tmp_path):
    path = tmp_path / "list.pkl"
    path.write_bytes(pickle.dumps([1, 2]))
    with pytest.raises(ValueError, match="expected a dict with keys train/valid/test, got list"):
        load_mmsa_pickle(path, allow_pickle=True)
    with pytest.raises(FileNotFoundError, match=r"nothing\.pkl"):
        load_mmsa_pickle(tmp_path / "nothing.pkl", allow_pickle=True)


def test_erc_pickle_labels_and_lengths(meld_pickle):
    with pytest.raises(ValueError, match="allow_pickle=True"):
        load_erc_pickle(meld_pickle, "meld")
    ds = load_erc_pickle(meld_pickle, "meld", allow_pickle=True)
    assert ds.features["label"].names == list(ERC_LABEL_NAMES["meld"])
    assert ds["label"] == [4, 0, 6, 5]
    assert ds["audio_length"] == [5, 4, 3, 5] and ds["id"][2] == "meld_train-2"
    first = ds.with_format("numpy")[0]["audio"]
    assert first.shape == (5, 4) and first[0, 0] == 0.0
    assert ERC_LABEL_NAMES["cherma"] == ("愤怒", "厌恶", "恐惧", "高兴", "平静", "悲伤", "惊奇")


@pytest.mark.parametrize(
    ("records", "message"),
    [
        (_erc_records(["happy"]), "unknown label 'happy'; expected one of \\['neutral'"),
        (_erc_records(["7"]), "unknown label '7'"),
        ([{"label": "joy"}], "expected \\{'features'"),
        ([{"features": {"text": "x"}, "label": "joy"}], "features lack \\['audio', 'video', 'audio_len'"),
        ([], "expected a non-empty list"),
    ],
)
def test_erc_bad_records(tmp_path, records, message):
    path = tmp_path / "meld_bad.pkl"
    path.write_bytes(pickle.dumps(records))
    with pytest.raises(ValueError, match=message):
        load_erc_pickle(path, "meld", allow_pickle=True)


def test_erc_mixed_dimensions_and_unknown_dataset(tmp_path):
    records = _erc_records(["joy", "joy"])
    records[1]["features"]["video"] = np.zeros((3, 5))
    path = tmp_path / "meld_dims.pkl"
    path.write_bytes(pickle.dumps(records))
    with pytest.raises(ValueError, match="different \\(audio, video\\) feature dimensions"):
        load_erc_pickle(path, "meld", allow_pickle=True)
    with pytest.raises(ValueError, match="unknown ERC dataset 'dailydialog'"):
        load_erc_pickle(path, "dailydialog", allow_pickle=True)


def test_convert_cli_mmsa_roundtrip_without_pickle(mmsa_pickle, tmp_path, capsys):
    path, _ = mmsa_pickle
    out = tmp_path / "mosei_arrow"
    with pytest.raises(SystemExit) as refused:
        data_cli(["convert", str(path), "--out", str(out)])
    assert refused.value.code == 2 and "execute arbitrary code" in capsys.readouterr().err
    assert not out.exists()
    assert data_cli(["convert", "--allow-pickle", str(path), "--out", str(out), "--source", "mosei"]) == 0
    reloaded = datasets.load_from_disk(str(out))
    direct = load_mmsa_pickle(path, allow_pickle=True, source="mosei")
    assert reloaded["validation"]["id"] == direct["validation"]["id"]
    np.testing.assert_array_equal(
        reloaded["train"].with_format("numpy")[1]["audio"], direct["train"].with_format("numpy")[1]["audio"]
    )
    assert not list(out.rglob("*.pkl"))


def test_convert_cli_erc_dataset_from_name(meld_pickle, tmp_path):
    out = tmp_path / "meld_arrow"
    assert data_cli(["convert", "--allow-pickle", str(meld_pickle), "--out", str(out)]) == 0
    assert datasets.load_from_disk(str(out)).features["label"].names == list(ERC_LABEL_NAMES["meld"])
    unnamed = tmp_path / "features.pkl"
    unnamed.write_bytes(meld_pickle.read_bytes())
    with pytest.raises(SystemExit):
        data_cli(["convert", "--allow-pickle", str(unnamed), "--out", str(tmp_path / "x")])
    assert (
        data_cli(
            ["convert", "--allow-pickle", str(unnamed), "--out", str(tmp_path / "y"), "--dataset", "meld"]
        )
        == 0
    )


@pytest.mark.slow
def test_convert_cli_subprocess_logs_non_finite(mmsa_pickle, tmp_path):
    path, _ = mmsa_pickle
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "m2se.data",
            "convert",
            "--allow-pickle",
            str(path),
            "--out",
            str(tmp_path / "o"),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "replaced 6 non-finite feature values by 0" in result.stdout + result.stderr
