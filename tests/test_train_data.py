"""The paper recipes' data sections on pickles written in the released layouts (the real data is not here)."""

from __future__ import annotations

import json
import pickle

import pytest
from test_data_pickles import _erc_records, _mmsa_split

from m2se.training.data import load_task_data
from m2se.training.recipes import load_recipe


def test_mosei_recipe_loads_an_mmsa_pickle(tmp_path):
    path = tmp_path / "unaligned_50.pkl"
    path.write_bytes(
        pickle.dumps({"train": _mmsa_split(3, 0), "valid": _mmsa_split(2, 10), "test": _mmsa_split(3, 20)})
    )
    recipe = load_recipe(
        "mse_adapter_mosei", overrides=[f"data.paths.pickle={path}", "data.options.allow_pickle=true"]
    )
    data = load_task_data(recipe, tmp_path)
    assert {task: len(rows) for task, rows in data.pools.items()} == {"msa": 3}
    assert len(data.eval_rows) == 2 and data.eval_rows[0]["id"] == "video10_0"
    assert len(data.test_rows) == 3 and data.test_rows[0]["id"] == "video20_0"
    assert data.label_names is None


def test_meld_recipe_loads_erc_pickles(tmp_path):
    overrides = ["data.options.allow_pickle=true"]
    for split, labels in {
        "train": ["joy", "anger", "6"],
        "valid": ["neutral"],
        "test": ["fear", "joy"],
    }.items():
        path = tmp_path / f"meld_{split}.pkl"
        path.write_bytes(pickle.dumps(_erc_records(labels)))
        overrides.append(f"data.paths.{split}={path}")
    data = load_task_data(load_recipe("mse_adapter_meld", overrides=overrides), tmp_path)
    assert len(data.pools["er"]) == 3 and len(data.eval_rows) == 1 and len(data.test_rows) == 2
    assert data.label_names == ["neutral", "surprise", "fear", "sadness", "joy", "disgust", "anger"]
    assert data.test_rows.features["label"].int2str(data.test_rows["label"]) == ["fear", "joy"]


def test_pickle_recipe_without_allow_pickle_refuses(tmp_path):
    path = tmp_path / "unaligned_50.pkl"
    path.write_bytes(pickle.dumps({"train": _mmsa_split(1, 0)}))
    recipe = load_recipe("mse_adapter_mosei", overrides=[f"data.paths.pickle={path}"])
    with pytest.raises(ValueError, match="allow_pickle"):
        load_task_data(recipe, tmp_path)


def test_converted_arrow_folders_are_read_where_the_pickles_were(tmp_path):
    from m2se.data.__main__ import convert

    pickle_path = tmp_path / "unaligned_50.pkl"
    pickle_path.write_bytes(
        pickle.dumps({"train": _mmsa_split(3, 0), "valid": _mmsa_split(2, 10), "test": _mmsa_split(3, 20)})
    )
    convert(pickle_path, tmp_path / "mosei", allow_pickle=True)
    recipe = load_recipe("mse_adapter_mosei", overrides=[f"data.paths.pickle={tmp_path / 'mosei'}"])
    data = load_task_data(recipe, tmp_path)
    assert len(data.pools["msa"]) == 3 and len(data.eval_rows) == 2 and len(data.test_rows) == 3
    overrides = []
    for split, labels in {"train": ["joy", "anger"], "valid": ["neutral"], "test": ["fear"]}.items():
        path = tmp_path / f"meld_{split}.pkl"
        path.write_bytes(pickle.dumps(_erc_records(labels)))
        convert(path, tmp_path / f"meld_{split}", allow_pickle=True)
        overrides.append(f"data.paths.{split}={tmp_path / f'meld_{split}'}")
    data = load_task_data(load_recipe("mse_adapter_meld", overrides=overrides), tmp_path)
    assert data.label_names == ["neutral", "surprise", "fear", "sadness", "joy", "disgust", "anger"]
    with pytest.raises(
        ValueError, match=r"data\.paths\.train: .*meld_train has the classes .* the recipe names"
    ):
        load_task_data(load_recipe("mse_adapter_meld", [*overrides, "data.options.dataset=cherma"]), tmp_path)


def test_missing_media_of_any_emt_record_is_found_before_a_model_is_built(tmp_path):
    records = tmp_path / "msa.jsonl"
    (tmp_path / "a.png").write_bytes(b"")
    rows = [
        {"query": "q", "response": "Positive.", "images": [str(tmp_path / "a.png")], "task": "msa"},
        {"query": "q", "response": "Negative.", "images": [str(tmp_path / "gone.png")], "task": "msa"},
    ]
    records.write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    recipe = load_recipe(
        "tiny_emoverse_m2se",
        [
            "data.source=emt",
            "data.options={}",
            f"data.paths={{msa: {records}}}",
            "stages=[{name: one, rates: {msa: 1.0}}]",
        ],
    )
    with pytest.raises(FileNotFoundError, match=rf"{records} record 1: image file not found: .*gone\.png"):
        load_task_data(recipe, tmp_path)


def test_feature_widths_come_from_the_schema_when_the_first_held_out_row_has_no_frames():
    from m2se.data import make_multimodal_dataset
    from m2se.training.data import TaskData
    from m2se.training.models import build_mse_adapter

    rows = make_multimodal_dataset(4, "regression", audio_dim=6, video_dim=5)
    silent_first = rows.map(
        lambda row, index: {"audio": [] if index == 0 else row["audio"]}, with_indices=True
    )
    assert len(silent_first[0]["audio"]) == 0
    recipe = load_recipe("tiny_mse_adapter")
    model, _ = build_mse_adapter(recipe, TaskData({"msa": rows}, silent_first, rows))
    assert (model.config.audio_feature_dim, model.config.video_feature_dim) == (6, 5)


def write_feature_folder(folder, label_names, audio_dim=25):
    """A feature folder as ``python -m m2se.features extract`` writes it (audio only, video dropped): a
    DatasetDict and the audio extractor's preprocessor_config.json."""
    import datasets
    import numpy as np

    from feature_extraction_mse_adapter import MSEAdapterAudioFeatureExtractor
    from m2se.data.schema import multimodal_features

    generator = np.random.default_rng(0)

    def split(size):
        labels = [index % 2 if label_names else float(index % 3) - 1.0 for index in range(size)]
        return datasets.Dataset.from_dict(
            {
                "id": [f"clip{index}" for index in range(size)],
                "source": ["clips"] * size,
                "text": [""] * size,
                "audio": [generator.normal(size=(4, audio_dim)).astype(np.float32) for _ in range(size)],
                "video": [np.zeros((0, 1), np.float32)] * size,
                "audio_length": [4] * size,
                "video_length": [0] * size,
                "label": labels,
            },
            features=multimodal_features(audio_dim, 1, label_names),
        )

    datasets.DatasetDict({"train": split(6), "validation": split(2), "test": split(2)}).save_to_disk(folder)
    extractor = MSEAdapterAudioFeatureExtractor("egemaps", pool_windows=4)
    extractor.save_pretrained(folder)
    return extractor


@pytest.mark.parametrize(("label_names", "task"), [(["high", "low"], "er"), (None, "msa")])
def test_features_recipe_takes_its_task_widths_and_extractors_from_the_folder(tmp_path, label_names, task):
    from m2se.training.models import build_mse_adapter

    extractor = write_feature_folder(tmp_path / "features", label_names)
    recipe = load_recipe(
        "mse_adapter_features",
        overrides=[f"data.paths.dataset={tmp_path / 'features'}", "model.backbone=tiny-llama"],
    )
    assert recipe.tasks == [task]
    data = load_task_data(recipe, tmp_path)
    assert data.label_names == label_names
    model, processor = build_mse_adapter(recipe, data)
    assert processor.task == ("classification" if label_names else "regression")
    assert processor.label_names == label_names
    assert (model.config.audio_feature_dim, model.config.video_feature_dim) == (25, 1)
    assert processor.feature_extractor.to_dict() == extractor.to_dict() and processor.video_processor is None
    processor.save_pretrained(tmp_path / "out")
    assert (
        json.loads((tmp_path / "out" / "processor_config.json").read_text())["feature_extractor"]["backend"]
        == "egemaps"
    )


def test_features_recipe_without_a_folder_stops_before_any_model(tmp_path):
    with pytest.raises(ValueError, match=r"missing \['dataset'\].*--set data\.paths\.dataset=DIR"):
        load_recipe("mse_adapter_features")
    (tmp_path / "not_features").mkdir()
    with pytest.raises(ValueError, match=r"not_features is not a saved Arrow DatasetDict folder"):
        load_recipe("mse_adapter_features", overrides=[f"data.paths.dataset={tmp_path / 'not_features'}"])
    with pytest.raises(FileNotFoundError, match=r"data\.paths\.dataset: .*gone does not exist"):
        load_recipe("mse_adapter_features", overrides=[f"data.paths.dataset={tmp_path / 'gone'}"])
