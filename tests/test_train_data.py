"""The paper recipes' data sections on pickles written in the released layouts (the real data is not here)."""

from __future__ import annotations

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
