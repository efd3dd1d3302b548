"""m2se.data.synthetic: deterministic, schema-conforming, labels learnable from the features alone."""

from __future__ import annotations

import json

import datasets
import numpy as np
import pytest
from PIL import Image

from m2se.data.conversations import MELD_EMOTIONS as MELD_LABEL_NAMES
from m2se.data.synthetic import make_multimodal_dataset
from m2se.emt import templates
from m2se.emt.synthetic import make_emt_dataset
from m2se.facial import action_unit_table


def _pooled(ds: datasets.Dataset) -> np.ndarray:
    rows = ds.with_format("numpy")
    pairs = zip(rows["audio"], rows["video"], strict=True)
    return np.stack([np.concatenate([a.mean(axis=0), v.mean(axis=0)]) for a, v in pairs])


def test_regression_schema_and_lengths():
    ds = make_multimodal_dataset(40, audio_dim=6, video_dim=3, max_audio_len=7, max_video_len=5, seed=3)
    assert ds.features["label"] == datasets.Value("float32")
    assert ds.features["audio"] == datasets.Array2D(shape=(None, 6), dtype="float32")
    rows = ds.with_format("numpy")
    for audio, video, audio_length, video_length in zip(
        rows["audio"], rows["video"], rows["audio_length"], rows["video_length"], strict=True
    ):
        assert audio.shape == (audio_length, 6) and 1 <= audio_length <= 7
        assert video.shape == (video_length, 3) and 1 <= video_length <= 5
    labels = np.array(ds["label"])
    assert labels.min() >= -3.0 and labels.max() <= 3.0
    np.testing.assert_allclose(labels, np.round(labels, 1), atol=1e-6)
    assert len(set(labels.tolist())) > 10
    assert set(ds["source"]) == {"synthetic"}


def test_deterministic_per_seed():
    first, second = make_multimodal_dataset(30, seed=5), make_multimodal_dataset(30, seed=5)
    assert first["label"] == second["label"] and first["text"] == second["text"]
    first_audio = first.with_format("numpy")[7]["audio"]
    second_audio = second.with_format("numpy")[7]["audio"]
    np.testing.assert_array_equal(first_audio, second_audio)
    assert make_multimodal_dataset(30, seed=6)["label"] != first["label"]


def test_value_range_respected():
    labels = np.array(make_multimodal_dataset(200, value_range=(-1.0, 1.0), seed=1)["label"])
    assert labels.min() >= -1.0 and labels.max() <= 1.0 and labels.min() < -0.5 and labels.max() > 0.5


def test_regression_labelling_function_is_shared_across_seeds():
    """A linear fit on one seed's pooled features predicts another seed's labels (same labelling function)."""
    train, test = make_multimodal_dataset(400, seed=0), make_multimodal_dataset(200, seed=1)
    design = np.c_[_pooled(train), np.ones(len(train))]
    target = np.arctanh(np.clip(np.array(train["label"]) / 3.0, -0.999, 0.999))
    weights, *_ = np.linalg.lstsq(design, target, rcond=None)
    predictions = 3.0 * np.tanh(np.c_[_pooled(test), np.ones(len(test))] @ weights)
    assert np.corrcoef(predictions, test["label"])[0, 1] > 0.95


def test_classification_labels_are_nearest_prototype_and_learnable():
    train = make_multimodal_dataset(500, "classification", seed=0)
    test = make_multimodal_dataset(200, "classification", seed=1)
    assert train.features["label"].names == list(MELD_LABEL_NAMES)
    features, labels = _pooled(train), np.array(train["label"])
    centroids = np.stack([features[labels == k].mean(axis=0) for k in range(len(MELD_LABEL_NAMES))])
    predicted = ((_pooled(test)[:, None] - centroids[None]) ** 2).sum(-1).argmin(1)
    assert (predicted == np.array(test["label"])).mean() > 0.95
    assert len(set(train["label"])) == len(MELD_LABEL_NAMES)


def test_text_carries_no_label_information():
    ds = make_multimodal_dataset(300, "classification", label_names=["a", "b"], seed=2)
    by_text: dict[str, set[int]] = {}
    for text, label in zip(ds["text"], ds["label"], strict=True):
        by_text.setdefault(text, set()).add(label)
    repeated = [labels for text, labels in by_text.items() if len(labels) > 1]
    assert repeated, "the same template sentence must occur with different labels"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(num_samples=0), "num_samples"),
        (dict(num_samples=5, task="ranking"), "task must be"),
        (dict(num_samples=5, audio_dim=0), "audio_dim"),
        (dict(num_samples=5, max_video_len=0), "max_video_len"),
        (dict(num_samples=5, value_range=(1.0, -1.0)), "value_range"),
        (dict(num_samples=5, label_names=["a", "b"]), "label_names is for classification"),
        (dict(num_samples=5, task="classification", label_names=["a", "a"]), "distinct"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_multimodal_dataset(**kwargs)


def test_emt_dataset_records_templates_and_images(tmp_path):
    ds = make_emt_dataset(tmp_path / "emt", num_per_task=12, seed=4)
    assert len(ds) == 60 and set(ds["task"]) == set(templates.EMT_TASKS)
    again = make_emt_dataset(tmp_path / "again", num_per_task=12, seed=4)
    assert ds["response"] == again["response"] and ds["query"] == again["query"]
    table = action_unit_table()
    for row in ds:
        image = np.asarray(Image.open(row["images"][0]))
        assert image.shape == (32, 32, 3)
        colour = image[:16].reshape(-1, 3).mean(axis=0)
        if row["task"] == "msa":
            assert row["query"] == templates.msa_query(row["query"][18:].split("' <sentiment>")[0])
            assert (colour[0] > colour[2]) == (row["response"] == "Positive.")
        elif row["task"] == "er":
            assert row["response"][:-1].lower() in templates.ER_EMOTIONS and row["response"].endswith(".")
        elif row["task"] == "fer":
            assert row["query"] == templates.FER_QUERY
            names = row["response"].split("; ")
            stripes = image[31, :, :].min(axis=1) == 255
            slot_of = {table.au_names[au]: slot for slot, au in enumerate(table.au_names)}
            for name in names:
                assert stripes[slot_of[name] * 32 // len(slot_of)]
        elif row["task"] == "ecpe":
            target = row["query"].split("Target utterance:")[1].split(".")[0]
            assert all(pair.startswith(target + ",") for pair in row["response"].split(";"))
    lines = (tmp_path / "emt" / "emt.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["id"] for line in lines] == ds["id"]


def test_emt_dataset_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="num_per_task"):
        make_emt_dataset(tmp_path, num_per_task=0)
    with pytest.raises(ValueError, match="image_size"):
        make_emt_dataset(tmp_path, image_size=8)
