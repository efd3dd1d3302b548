"""Stage mixing: rates x remaining pool, budget scaling, exclusion, determinism, stage YAML, `mix` CLI."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import datasets
import pytest
import yaml

import m2se
from m2se.data import emt_dataset, load_emt
from m2se.emt.__main__ import main as emt_cli
from m2se.emt.mix import build_stage, load_stage, mix_stage
from m2se.emt.stage import Stage

RESOURCES = Path(m2se.__file__).parent / "resources"


def _pool(task: str, size: int, prefix: str | None = None) -> datasets.Dataset:
    rows = [
        {
            "id": f"{prefix or task}/{i}",
            "task": None,
            "query": f"q{i}",
            "response": "r",
            "images": [],
            "videos": [],
            "system": None,
        }
        for i in range(size)
    ]
    return emt_dataset(rows)


@pytest.fixture
def pools():
    return {"msa": _pool("msa", 100), "er": _pool("er", 50), "fer": _pool("fer", 40)}


def test_rates_are_fractions_of_each_pool(pools):
    mixture, counts = mix_stage(pools, {"msa": 1.0, "er": 0.5, "fer": 0.1}, None, seed=0)
    assert counts == {"msa": 100, "er": 25, "fer": 4}
    assert len(mixture) == 129 and len(set(mixture["id"])) == 129
    assert {task: mixture["task"].count(task) for task in counts} == counts
    assert all(
        sample_id.startswith(task) for sample_id, task in zip(mixture["id"], mixture["task"], strict=True)
    )


def test_budget_scales_counts_by_one_factor(pools):
    _, counts = mix_stage(pools, {"msa": 1.0, "er": 0.5, "fer": 0.1}, 50, seed=0)
    # quotas 38.76 / 9.69 / 1.55 -> floors 38 / 9 / 1, the two largest remainders get the 2 left over
    assert counts == {"msa": 39, "er": 10, "fer": 1}


def test_budget_not_reached_warns(pools, caplog):
    with caplog.at_level(logging.WARNING, logger="m2se.emt.mix"):
        mixture, counts = mix_stage(pools, {"msa": 0.1, "er": 0.1, "fer": 0.0}, 1000, seed=0)
    assert counts == {"msa": 10, "er": 5, "fer": 0} and len(mixture) == 15
    assert "budget 1000 not reached: the rates give only 15 samples" in caplog.text


def test_deterministic_per_seed_and_independent_per_task(pools):
    rates = {"msa": 0.3, "er": 0.3, "fer": 0.3}
    first, _ = mix_stage(pools, rates, None, seed=7)
    again, _ = mix_stage(pools, rates, None, seed=7)
    other, _ = mix_stage(pools, rates, None, seed=8)
    assert first["id"] == again["id"] and first["id"] != other["id"]
    bigger = dict(pools, msa=_pool("msa", 300))
    changed, _ = mix_stage(bigger, rates, None, seed=7)
    er_ids = sorted(i for i in first["id"] if i.startswith("er/"))
    assert er_ids == sorted(i for i in changed["id"] if i.startswith("er/"))


def test_exclude_ids_draw_from_remaining_samples(pools):
    stage1, _ = mix_stage(pools, {"msa": 0.6, "er": 0.2, "fer": 1.0}, None, seed=0)
    stage2, counts = mix_stage(
        pools, {"msa": 1.0, "er": 1.0, "fer": 1.0}, None, seed=0, exclude_ids=stage1["id"]
    )
    assert counts == {"msa": 40, "er": 40, "fer": 0}
    assert not set(stage1["id"]) & set(stage2["id"])
    assert set(stage1["id"]) | set(stage2["id"]) == {i for p in pools.values() for i in p["id"]}


def test_task_column_is_set_from_the_pool():
    pool = _pool("x", 4).map(lambda row: {"task": "er"})
    mixture, _ = mix_stage({"msa": pool}, {"msa": 1.0}, None, seed=0)
    assert set(mixture["task"]) == {"msa"}


@pytest.mark.parametrize(
    ("rates", "budget", "message"),
    [
        (
            {"msa": 1.5, "er": 1, "fer": 1},
            None,
            r"rates\.msa: expected a number in \[0, 1\] \(the fraction of the task's remaining pool\), got "
            r"float 1\.5",
        ),
        ({"msa": "high", "er": 1, "fer": 1}, None, r"rates\.msa: expected a number in .* got str 'high'"),
        (
            {"msa": 1, "er": 1, "sarcasm": 1},
            None,
            r"rates\.sarcasm: unknown task 'sarcasm'; expected one of \['msa', 'er', 'fer', 'eri', 'ecpe'\]",
        ),
        ({"msa": 1, "er": 1}, None, "must name the same tasks"),
        ({"msa": 0, "er": 0, "fer": 0}, None, "rates: at least one rate must be positive"),
        (
            {"msa": 1, "er": 1, "fer": 1},
            0,
            r"budget: expected a positive int \(a number of samples\) or null, got int 0",
        ),
        ({}, None, r"rates: expected a non-empty mapping EMT task -> rate, got dict \{\}"),
    ],
)
def test_mix_stage_bad_arguments(pools, rates, budget, message):
    with pytest.raises(ValueError, match=message):
        mix_stage(pools, rates, budget, seed=0)


def test_mix_stage_needs_ids_and_matching_features():
    no_id = datasets.Dataset.from_dict({"query": ["q"], "response": ["r"]})
    with pytest.raises(ValueError, match="the 'msa' pool needs an 'id' column"):
        mix_stage({"msa": no_id}, {"msa": 1.0}, None, 0)
    other = datasets.Dataset.from_dict({"id": ["a"], "text": ["t"]})
    with pytest.raises(ValueError, match="the pools have different columns/features"):
        mix_stage({"msa": _pool("msa", 2), "er": other}, {"msa": 1.0, "er": 1.0}, None, 0)


def test_shipped_stages_match_the_paper():
    stage1, stage2 = load_stage(RESOURCES / "stage1.yaml"), load_stage(RESOURCES / "stage2.yaml")
    assert stage1.budget == 15000 and set(stage1.rates) == {"msa", "fer", "er"}
    assert stage1.rates["msa"] > stage1.rates["er"] and stage1.rates["fer"] > stage1.rates["er"]
    assert stage2.budget is None and set(stage2.rates) == {"msa", "er", "eri", "ecpe"}
    assert stage2.rates["er"] == stage2.rates["eri"] == stage2.rates["ecpe"] > stage2.rates["msa"] > 0
    assert stage2.exclude  # stage 2 draws from the samples stage 1 did not use
    assert set(stage1.data) == set(stage1.rates) and set(stage2.data) == set(stage2.rates)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"name": "s", "rates": {"msa": 1.0}, "budgett": 3}, r"unknown keys \['budgett'\]"),
        ({"name": "s"}, "a stage needs 'rates'"),
        (
            {"rates": {"msa": -0.1}},
            r"stage\.yaml: rates\.msa: expected a number in \[0, 1\].* got float -0\.1",
        ),
        (
            {"rates": {"msa": 1.0}, "data": {"er": "er.jsonl"}},
            r"stage\.yaml: data: given for tasks \['er'\] that have no rate",
        ),
        (
            {"rates": {"msa": 1.0}, "budget": "many"},
            r"stage\.yaml: budget: expected a positive int \(a number of samples\) or null, got str 'many'",
        ),
        (
            {"rates": {"msa": 1.0}, "data": {"msa": [1]}},
            r"stage\.yaml: data\.msa: expected a path or a list of paths, got list \[1\]",
        ),
        ({"rates": {"msa": 1.0}, "seed": 1.5}, r"stage\.yaml: seed: expected an int or null, got float 1\.5"),
        ({"rates": {"msa": 1.0}, "name": 3}, r"stage\.yaml: name: expected a string, got int 3"),
        # The number of epochs is a training setting (a recipe's stages.N.epochs); `mix` draws one set.
        ({"rates": {"msa": 1.0}, "epochs": 2}, r"unknown keys \['epochs'\]"),
        (["rates"], "must be a YAML mapping, got list"),
    ],
)
def test_load_stage_bad_files(tmp_path, content, message):
    path = tmp_path / "stage.yaml"
    path.write_text(yaml.safe_dump(content), encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        load_stage(path)


def test_load_stage_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="stage file not found"):
        load_stage(tmp_path / "none.yaml")


def _write_records(path: Path, task: str | None, size: int, prefix: str) -> Path:
    with open(path, "w", encoding="utf-8") as handle:
        for i in range(size):
            record = {"id": f"{prefix}/{i}", "query": "q", "response": "r", "videos": [f"{i}.mp4"]}
            if task:
                record["task"] = task
            handle.write(json.dumps(record) + "\n")
    return path


def test_build_stage_filters_tasks_and_cli_chains_two_stages(tmp_path, capsys):
    meld = tmp_path / "meld.jsonl"
    with open(meld, "w", encoding="utf-8") as handle:  # one file, two tasks (as `m2se.emt meld` writes it)
        for i in range(30):
            for task in ("er", "msa"):
                handle.write(
                    json.dumps({"id": f"{task}/m/{i}", "task": task, "query": "q", "response": "r"}) + "\n"
                )
    fer = _write_records(tmp_path / "fer.jsonl", None, 20, "fer/x")
    spec = Stage(
        name="s1",
        rates={"er": 0.5, "msa": 1.0, "fer": 1.0},
        budget=40,
        seed=3,
        data={"er": (str(meld),), "msa": (str(meld),), "fer": (str(fer),)},
    )
    mixture, counts = build_stage(spec)
    assert sum(counts.values()) == 40 and counts["msa"] > counts["er"]
    assert all(i.startswith(t) for i, t in zip(mixture["id"], mixture["task"], strict=True))

    stage1 = tmp_path / "stage1.yaml"
    stage1.write_text(
        yaml.safe_dump(
            {
                "name": "s1",
                "seed": 3,
                "budget": 40,
                "rates": {"er": 0.5, "msa": 1.0, "fer": 1.0},
                "data": {"er": str(meld), "msa": str(meld), "fer": str(fer)},
            },
            sort_keys=False,
        ),
        encoding="utf-8",
    )
    out1 = tmp_path / "mix1.jsonl"
    assert emt_cli(["mix", "--stage", str(stage1), "--out", str(out1)]) == 0
    printed = capsys.readouterr().out
    assert (
        f"s1: wrote 40 samples to {out1} (er {counts['er']}, msa {counts['msa']}, fer {counts['fer']})"
        in printed
    )
    assert load_emt(out1)["id"] == mixture["id"]

    stage2 = tmp_path / "stage2.yaml"
    stage2.write_text(
        yaml.safe_dump({"name": "s2", "rates": {"er": 1.0, "msa": 0.0}, "data": {"er": "x.jsonl"}}),
        encoding="utf-8",
    )
    out2 = tmp_path / "mix2.jsonl"
    assert (
        emt_cli(
            [
                "mix",
                "--stage",
                str(stage2),
                "--data",
                f"er={meld}",
                f"msa={meld}",
                "--exclude",
                str(out1),
                "--out",
                str(out2),
            ]
        )
        == 0
    )
    second = load_emt(out2)
    assert len(second) == 30 - counts["er"] and not set(second["id"]) & set(load_emt(out1)["id"])


def test_cli_mix_errors(tmp_path, capsys):
    stage = tmp_path / "stage.yaml"
    stage.write_text(yaml.safe_dump({"rates": {"er": 1.0}}), encoding="utf-8")
    with pytest.raises(SystemExit):
        emt_cli(["mix", "--stage", str(stage), "--out", str(tmp_path / "o.jsonl")])
    assert "no data files for tasks ['er']" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        emt_cli(["mix", "--stage", str(stage), "--data", "er", "--out", str(tmp_path / "o.jsonl")])
    assert "--data expects TASK=PATH, got 'er'" in capsys.readouterr().err
    empty = _write_records(tmp_path / "msa_only.jsonl", "msa", 3, "msa/x")
    with pytest.raises(SystemExit):
        emt_cli(["mix", "--stage", str(stage), "--data", f"er={empty}", "--out", str(tmp_path / "o.jsonl")])
    assert "no 'er' record in" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        emt_cli(["mix", "--stage", str(stage), "--budget", "0", "--out", str(tmp_path / "o.jsonl")])
    assert (
        "stage 'stage' with overrides: budget: expected a positive int (a number of samples) or null, got "
        "int 0" in capsys.readouterr().err
    )
    assert not (tmp_path / "o.jsonl").exists()
