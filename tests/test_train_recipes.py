"""Recipe loading, overrides and validation: every bad input is rejected with a message naming it."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO_ROOT

from m2se.emt.mix import load_stage
from m2se.emt.stage import Stage
from m2se.emt.templates import EMT_TASKS
from m2se.training.recipes import RECIPES_DIR, available_recipes, load_recipe, recipe_to_dict

BUNDLED = {
    "demo",
    "tiny_mse_adapter",
    "tiny_emoverse_m2se",
    "emoverse_m2se",
    "mse_adapter_mosei",
    "mse_adapter_simsv2",
    "mse_adapter_meld",
    "mse_adapter_cherma",
    "mse_adapter_features",
}
# Recipes whose data path has no default: the user gives it on the command line.
REQUIRED_OVERRIDES = {"mse_adapter_features": ["data.paths.dataset=features"]}


def write_recipe(tmp_path: Path, raw: dict) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


def tiny_raw() -> dict:
    with open(RECIPES_DIR / "tiny_emoverse_m2se.yaml", encoding="utf-8") as f:
        return yaml.safe_load(f)


def test_every_bundled_recipe_parses():
    assert set(available_recipes()) == BUNDLED
    for name in BUNDLED:
        recipe = load_recipe(name, REQUIRED_OVERRIDES.get(name), check_paths=False)
        assert recipe.name == name
        assert set(recipe.tasks) <= set(EMT_TASKS)


def test_paper_recipes_carry_the_released_hyper_parameters():
    mosei = load_recipe("mse_adapter_mosei", check_paths=False)
    assert mosei.training["adam_epsilon"] == 1e-4
    assert mosei.training["lr_scheduler_type"] == "cosine" and mosei.training["warmup_steps"] == 0.1
    assert (mosei.evaluation.metric, mosei.evaluation.patience, mosei.evaluation.greater_is_better) == (
        "MAE",
        10,
        False,
    )
    assert mosei.seeds == [1111, 2222, 3333, 4444, 5555]
    meld = load_recipe("mse_adapter_meld", check_paths=False)
    assert (meld.training["per_device_train_batch_size"], meld.training["learning_rate"]) == (6, 5e-4)
    assert (meld.evaluation.metric, meld.evaluation.patience) == ("weighted_f1", 8)
    m2se = load_recipe("emoverse_m2se", check_paths=False)
    assert [stage.name for stage in m2se.stages] == ["multitask_pretraining", "multitask_reasoning"]
    stage1, stage2 = m2se.stages
    # 2 epochs per stage: no stage pins its epochs, so both run training.num_train_epochs (or the flag).
    assert stage1.budget == 15000 and stage2.budget is None and m2se.training["num_train_epochs"] == 2
    assert stage1.epochs is None and stage2.epochs is None
    assert stage1.rates["msa"] > stage1.rates["er"] < stage1.rates["fer"]
    assert stage2.rates["msa"] < stage2.rates["er"] == stage2.rates["eri"] == stage2.rates["ecpe"]
    assert (m2se.model.lora["r"], m2se.model.lora["alpha"], m2se.training["learning_rate"]) == (8, 32, 1e-5)


def test_recipe_stages_and_stage_files_are_one_type():
    # The paper's curriculum as a training recipe and as the stage files of `python -m m2se.emt mix`: the same
    # type, the same rates and budgets.
    recipe_stages = load_recipe("emoverse_m2se", check_paths=False).stages
    files = [load_stage(REPO_ROOT / "m2se" / "resources" / f"stage{n}.yaml") for n in (1, 2)]
    assert all(isinstance(stage, Stage) for stage in [*recipe_stages, *files])
    assert [(s.rates, s.budget) for s in recipe_stages] == [(s.rates, s.budget) for s in files]
    # Built directly, a stage is checked as in a recipe or a file.
    with pytest.raises(ValueError, match=r"^epochs: expected a positive int or null, got int 0$"):
        Stage(name="s", rates={"msa": 1.0}, epochs=0)
    # The run file compares the recipe on resume after a JSON round trip: plain data, without file fields.
    saved = recipe_to_dict(load_recipe("tiny_emoverse_m2se"))
    assert json.loads(json.dumps(saved)) == saved
    assert saved["stages"][0] == {
        "name": "multitask_pretraining",
        "rates": {"msa": 1.0, "er": 0.2, "fer": 1.0},
        "budget": 32,
        "epochs": None,
        "description": "",
    }


def test_paper_recipes_check_their_data_paths():
    with pytest.raises(FileNotFoundError, match=r"unaligned_50\.pkl"):
        load_recipe("mse_adapter_mosei")


def test_overrides_reach_nested_values_and_parse_yaml_scalars():
    recipe = load_recipe("tiny_emoverse_m2se", ["stages.1.rates.msa=0.5", "model.lora.r=4", "seeds=[1, 2]"])
    assert recipe.stages[1].rates["msa"] == 0.5
    assert recipe.model.lora["r"] == 4
    assert recipe.seeds == [1, 2]


@pytest.mark.parametrize(
    ("override", "error", "message"),
    [
        (
            "stages.0.rates.fer=-0.1",
            ValueError,
            r"stages\.0\.rates\.fer: expected a number in \[0, 1\] \(the fraction of the task's remaining "
            r"pool\), got float -0\.1",
        ),
        (
            "stages.0.rates.fer=1.5",
            ValueError,
            r"stages\.0\.rates\.fer: expected a number in \[0, 1\].* 1\.5",
        ),
        (
            "stages.0.rates={msa: 0, er: 0}",
            ValueError,
            r"stages\.0\.rates: at least one rate must be positive",
        ),
        (
            "stages.0.rates.happiness=0.2",
            ValueError,
            r"stages\.0\.rates\.happiness: unknown task 'happiness'; expected one of \['msa', 'er'",
        ),
        ("stages.0.epochs=two", TypeError, "stages.0.epochs: expected int, got str 'two'"),
        ("stages.0.epochs=0", ValueError, r"stages\.0\.epochs: expected a positive int or null, got int 0"),
        ("stages.0.budget=true", TypeError, "expected int, got bool"),
        ("stages.1.budget=0", ValueError, r"stages\.1\.budget: expected a positive int .* got int 0"),
        # A recipe's stages draw from its `data` section with the run's seed: stage-file fields are refused.
        ("stages.1.seed=3", ValueError, r"stages\.1\.seed: a recipe stage draws from the recipe's data"),
        ("stages.0.exclude=[a.jsonl]", ValueError, r"stages\.0\.exclude: .* got \('a\.jsonl',\)"),
        ("stages.0.data={msa: 3}", ValueError, r"stages\.0\.data\.msa: expected a path or a list of paths"),
        ("model.kind=llava", ValueError, "model.kind: expected one of"),
        ("learning_rate=0.1", ValueError, r"unknown field\(s\) \['learning_rate'\]"),
        ("stages=[]", ValueError, "at least one stage"),
        ("data.paths.msa=/no/such/file.jsonl", FileNotFoundError, "/no/such/file.jsonl does not exist"),
        ("stages.7.rates.msa=1", ValueError, "expected a list index below 2"),
        ("stages.0.rates.msa", ValueError, "must look like key.path=value"),
        (
            "model.lora.rr=16",
            ValueError,
            r"model\.lora\.rr: unknown key for LoRA \(EmoVerseConfig\.lora_\*\); did you mean 'r'\? "
            r"expected one of \['alpha', 'dropout', 'r', 'target_modules'\]",
        ),
        (
            "model.config.image_tokn=x",
            ValueError,
            r"model\.config\.image_tokn: unknown key for EmoVerseConfig; did you mean 'image_token'\?",
        ),
        (
            "data.options.num_eval_per_tsk=2",
            ValueError,
            r"data\.options\.num_eval_per_tsk: unknown key for data source 'emt_synthetic'; did you mean "
            r"'num_eval_per_task'\? expected one of "
            r"\['image_size', 'num_eval_per_task', 'num_per_task', 'seed'\]",
        ),
        (
            "evaluation.metric=er_accuracy",
            ValueError,
            r"evaluation\.metric: 'er_accuracy' is not a metric of this recipe's evaluation; did you mean "
            r"'msa_accuracy'\? expected one of \['ecpe_exact_match'",
        ),
        (
            "evaluation.max_samples=0",
            ValueError,
            r"evaluation\.max_samples: expected an integer >= 1 \(or null for every row\), got 0",
        ),
    ],
)
def test_bad_recipe_values_are_rejected(override, error, message):
    with pytest.raises(error, match=message):
        load_recipe("tiny_emoverse_m2se", [override])


def test_unknown_recipe_name_lists_the_bundled_ones():
    with pytest.raises(ValueError, match=r"unknown recipe 'no_such_recipe': expected one of \['demo'"):
        load_recipe("no_such_recipe")


def test_mse_adapter_recipe_trains_one_task(tmp_path):
    raw = tiny_raw()
    raw["model"]["kind"] = "mse_adapter"
    with pytest.raises(ValueError, match="an mse_adapter recipe trains one task"):
        load_recipe(write_recipe(tmp_path, raw))


def test_missing_required_field(tmp_path):
    raw = tiny_raw()
    del raw["model"]
    with pytest.raises(ValueError, match=r"missing required field\(s\) \['model'\]"):
        load_recipe(write_recipe(tmp_path, raw))


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "model.config.num_psuedo_tokens=8",
            r"model\.config\.num_psuedo_tokens: unknown key for MSEAdapterConfig; did you mean "
            r"'num_pseudo_tokens'\?",
        ),
        (
            "data.options.num_trian=8",
            r"data\.options\.num_trian: unknown key for data source 'synthetic'; did you mean 'num_train'\?",
        ),
        ("evaluation.metric=mae", r"evaluation\.metric: 'mae' is not a metric .*did you mean 'MAE'\?"),
        ("model.lora.r=8", r"model\.lora: an mse_adapter recipe trains the adapter only \(no LoRA\)"),
    ],
)
def test_mse_adapter_recipe_keys_are_checked_against_config_loader_and_metrics(override, message):
    with pytest.raises(ValueError, match=message):
        load_recipe("tiny_mse_adapter", [override])


def test_erc_pickles_need_their_class_names_from_the_recipe_not_its_file_name(tmp_path):
    raw = yaml.safe_load((RECIPES_DIR / "mse_adapter_meld.yaml").read_text())
    raw["name"] = "my_meld_run"
    del raw["data"]["options"]["dataset"]
    with pytest.raises(
        ValueError,
        match=r"data\.options: the ERC pickles \(data\.paths\.train, .*set "
        r"data\.options\.label_names .* or data\.options\.dataset \(one of \['cherma'",
    ):
        load_recipe(write_recipe(tmp_path, raw), check_paths=False)
    raw["data"]["options"]["label_names"] = ["calm", "angry"]
    assert load_recipe(write_recipe(tmp_path, raw), check_paths=False).data.options["label_names"] == [
        "calm",
        "angry",
    ]


@pytest.mark.slow
def test_bundled_recipes_are_found_after_a_non_editable_install(tmp_path):
    """`pip install .` (not -e): the recipes ship as package data of m2se, not as files of the checkout."""
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target",
         str(target), str(REPO_ROOT)],
        check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    script = (
        "import m2se; from m2se.training.recipes import RECIPES_DIR, available_recipes, load_recipe; "
        "print(m2se.__file__); print(RECIPES_DIR); print(available_recipes()); "
        "print(load_recipe('tiny_mse_adapter').name)"
    )
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    completed = subprocess.run(
        [sys.executable, "-c", script],
        cwd=elsewhere,
        env={**env, "PYTHONPATH": str(target)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    module_file, recipes_dir, names, loaded = completed.stdout.splitlines()
    assert module_file.startswith(str(target)) and recipes_dir.startswith(str(target))
    assert set(ast.literal_eval(names)) == BUNDLED and loaded == "tiny_mse_adapter"
