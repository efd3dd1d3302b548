"""train_m2se.py end to end on the tiny recipes, its output folder, and every bad input it must refuse."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import REPO_ROOT, run_in_fresh_process
from safetensors.torch import load_file

import train_m2se


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    output_dir = tmp_path_factory.mktemp("tiny-mse-adapter") / "run"
    train_m2se.main(["--recipe", "tiny_mse_adapter", "--output_dir", str(output_dir)])
    return output_dir


@pytest.mark.slow
def test_tiny_run_writes_a_complete_output_folder(tiny_run):
    names = {path.name for path in tiny_run.iterdir()}
    expected = {
        "config.json",
        "model.safetensors",
        "processor_config.json",
        "README.md",
        "eval_results.json",
        "training_curves.png",
        "m2se_curriculum.json",
        "modeling_mse_adapter.py",
    }
    assert expected <= names
    weights = load_file(tiny_run / "model.safetensors")
    assert weights and all(name.startswith("adapter.") for name in weights)  # adapter only by default
    results = json.loads((tiny_run / "eval_results.json").read_text())
    assert {"test_MAE", "test_Corr", "test_Has0_acc_2"} <= set(results)
    curriculum = json.loads((tiny_run / "m2se_curriculum.json").read_text())
    assert curriculum["stages"][0]["name"] == "msa" and curriculum["stages"][0]["samples"] == {"msa": 128}
    card = (tiny_run / "README.md").read_text()
    assert "model-index" in card and "tiny_mse_adapter" in card and "MAE" in card


@pytest.mark.slow
def test_output_folder_loads_with_auto_classes_in_a_fresh_process(tiny_run, tmp_path):
    script = (
        "import sys, torch\n"
        "from transformers import AutoModel, AutoProcessor\n"
        "model = AutoModel.from_pretrained(sys.argv[1], trust_remote_code=True)\n"
        "processor = AutoProcessor.from_pretrained(sys.argv[1], trust_remote_code=True)\n"
        "batch = processor(text=['The train arrives.'], audio=[torch.ones(3, 16).numpy()],\n"
        "                  video=[torch.ones(2, 8).numpy()], return_tensors='pt')\n"
        "constraint = processor.answer_logits_processor()\n"
        "print(type(model).__name__, model.predict(**batch, answer_constraint=constraint)[0])\n"
    )
    stdout = run_in_fresh_process(["-c", script, str(tiny_run)], tmp_path)
    name, value = stdout.split()[-2:]
    assert name == "MSEAdapterForCausalLM" and -3.0 <= float(value) <= 3.0
    trained = load_file(tiny_run / "model.safetensors")
    assert any(tensor.abs().sum() > 0 for tensor in trained.values())


@pytest.mark.slow
def test_training_arguments_follow_the_curriculum(tiny_run):
    args = torch.load(tiny_run / "training_args.bin", weights_only=False)
    assert args.train_sampling_strategy == "sequential" and not args.remove_unused_columns
    assert args.max_steps == 4 * 128 // 8  # 4 epochs of 128 samples in batches of 8


def test_existing_run_is_refused_without_overwrite(tiny_run):
    with pytest.raises(FileExistsError, match="already holds a run"):
        train_m2se.main(["--recipe", "tiny_mse_adapter", "--output_dir", str(tiny_run)])


def test_resume_from_a_checkpoint_of_another_recipe_is_refused(tiny_run, tmp_path):
    checkpoint = tiny_run / "checkpoint-9"
    checkpoint.mkdir(exist_ok=True)
    (checkpoint / "trainer_state.json").write_text("{}")
    with pytest.raises(ValueError, match="belongs to recipe tiny_mse_adapter"):
        train_m2se.main(
            [
                "--recipe",
                "tiny_mse_adapter",
                "--set",
                "data.options.num_train=64",
                "--output_dir",
                str(tiny_run),
                "--resume_from_checkpoint",
                str(checkpoint),
            ]
        )
    with pytest.raises(FileNotFoundError, match=r"no trainer_state\.json"):
        train_m2se.main(
            [
                "--recipe",
                "tiny_mse_adapter",
                "--output_dir",
                str(tmp_path / "x"),
                "--resume_from_checkpoint",
                str(tmp_path),
            ]
        )


@pytest.mark.parametrize(
    ("argv", "error", "message"),
    [
        (["--recipe", "no_such_recipe"], ValueError, "unknown recipe 'no_such_recipe'"),
        (
            ["--set", "stages.0.rates={msa: 1.0, laughter: 0.5}"],
            ValueError,
            r"stages\.0\.rates\.laughter: unknown task 'laughter'; expected one of \['msa'",
        ),
        (
            ["--set", "stages.0.rates.msa=-1"],
            ValueError,
            r"stages\.0\.rates\.msa: expected a number in \[0, 1\] .*got float -1\.0",
        ),
        (["--set", "stages.0.rates.msa=0"], ValueError, "at least one rate must be positive"),
        (["--set", "stages.0.epochs=[1]"], TypeError, "stages.0.epochs: expected int, got list"),
        (["--recipe", "mse_adapter_mosei"], FileNotFoundError, "unaligned_50.pkl does not exist"),
        (
            ["--set", "training.learning_rat=0.1"],
            ValueError,
            "training.learning_rat is not a TrainingArguments",
        ),
    ],
)
def test_bad_input_is_refused_before_training(argv, error, message, tmp_path):
    with pytest.raises(error, match=message):
        train_m2se.main(["--recipe", "tiny_mse_adapter", *argv, "--output_dir", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()


def test_a_stage_left_without_data_is_refused(tmp_path):
    # Stage 1 takes every FER sample (rate 1, no budget), so stage 2 has no FER sample left.
    argv = [
        "--recipe",
        "tiny_emoverse_m2se",
        "--set",
        "stages.0.budget=null",
        "stages.1.rates={fer: 1.0}",
        "--output_dir",
        str(tmp_path / "out"),
    ]
    with pytest.raises(ValueError, match="stage 'multitask_reasoning' has no data"):
        train_m2se.main(argv)


@pytest.mark.slow
def test_push_to_hub_offline_ends_with_one_line_and_a_saved_folder(tmp_path):
    output_dir = tmp_path / "pushed"
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO_ROOT)}
    command = [
        sys.executable,
        str(REPO_ROOT / "train_m2se.py"),
        "--recipe",
        "tiny_mse_adapter",
        "--output_dir",
        str(output_dir),
        "--push_to_hub",
        "--hub_model_id",
        "someone/tiny",
        "--set",
        "stages.0.epochs=1",
    ]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    failure_lines = [line for line in result.stdout.splitlines() if line.startswith("push_to_hub failed")]
    assert len(failure_lines) == 1 and str(output_dir) in failure_lines[0]
    assert (output_dir / "model.safetensors").is_file() and (output_dir / "README.md").is_file()


@pytest.mark.slow
def test_seeds_run_one_after_another_and_are_summarised(tmp_path):
    output_dir = tmp_path / "seeds"
    results = train_m2se.main(
        [
            "--recipe",
            "tiny_mse_adapter",
            "--output_dir",
            str(output_dir),
            "--seeds",
            "1,2",
            "--set",
            "stages.0.epochs=1",
        ]
    )
    assert set(results) == {1, 2}
    assert (output_dir / "seed_1" / "model.safetensors").is_file()
    summary = json.loads((output_dir / "seeds_summary.json").read_text())
    assert summary["MAE"]["mean"] == pytest.approx((results[1]["MAE"] + results[2]["MAE"]) / 2)
    assert "MAE" in (output_dir / "seeds_summary.md").read_text()


@pytest.mark.slow
def test_tiny_m2se_run_covers_both_stages(tmp_path):
    output_dir = tmp_path / "m2se"
    results = train_m2se.main(["--recipe", "tiny_emoverse_m2se", "--output_dir", str(output_dir)])
    metrics = results[next(iter(results))]
    assert {"msa_accuracy", "msa_unparsable", "er_weighted_f1", "ecpe_f1", "fer_exact_match"} <= set(metrics)
    curriculum = json.loads((output_dir / "m2se_curriculum.json").read_text())
    first, second = curriculum["stages"]
    assert set(first["samples"]) == {"msa", "er", "fer"} and sum(first["samples"].values()) == 32
    assert (
        set(second["samples"]) == {"msa", "er", "eri", "ecpe"}
        and second["samples"]["msa"] < second["samples"]["er"]
    )
    assert (output_dir / "training_curves.png").is_file()
    weights = load_file(output_dir / "model.safetensors")
    assert any("lora_" in name for name in weights) and any(
        "multi_modal_projector" in name for name in weights
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    ("eval_flags", "steps_between_evaluations"),
    [([], 128 // 8), (["--eval_strategy", "steps", "--eval_steps", "4"], 4)],
    ids=["every-epoch", "eval-steps-flag"],
)
def test_early_stopping_ends_the_run_when_the_metric_stops_improving(
    eval_flags, steps_between_evaluations, tmp_path
):
    # With a learning rate of 0 the MAE never improves: patience 1 stops after the second evaluation, which
    # comes one epoch (128 rows in batches of 8) apart by default, or at the --eval_steps given.
    output_dir = tmp_path / "early"
    train_m2se.main(
        [
            "--recipe",
            "tiny_mse_adapter",
            "--output_dir",
            str(output_dir),
            "--learning_rate",
            "0",
            *eval_flags,
            "--set",
            "evaluation.patience=1",
        ]
    )
    state = json.loads((output_dir / "trainer_state.json").read_text())
    evaluations = [entry for entry in state["log_history"] if "eval_MAE" in entry]
    assert (
        len(evaluations) == 2 and state["global_step"] == 2 * steps_between_evaluations < state["max_steps"]
    )
    assert state["best_metric"] == evaluations[0]["eval_MAE"]


@pytest.mark.slow
def test_classification_run_writes_a_confusion_matrix(tmp_path):
    output_dir = tmp_path / "erc"
    results = train_m2se.main(
        [
            "--recipe",
            "tiny_mse_adapter",
            "--output_dir",
            str(output_dir),
            "--set",
            "stages.0.rates={er: 1.0}",
            "stages.0.epochs=1",
            "evaluation.metric=acc",
            "evaluation.greater_is_better=true",
        ]
    )
    metrics = next(iter(results.values()))
    assert {"acc", "weighted_f1", "unparsable"} <= set(metrics) and metrics["unparsable"] == 0
    assert (output_dir / "confusion_matrix.png").stat().st_size > 1000
    # The task is the processor's (config.json holds only the architecture).
    task = json.loads((output_dir / "processor_config.json").read_text())
    assert task["task"] == "classification" and len(task["label_names"]) == 7 and task["metric_set"] == "erc"
    assert "task" not in json.loads((output_dir / "config.json").read_text())


def test_a_multi_seed_run_refuses_a_folder_of_the_users_files(tmp_path):
    output_dir = tmp_path / "mine"
    output_dir.mkdir()
    (output_dir / "seeds_notes.txt").write_text("my notes")
    with pytest.raises(
        FileExistsError, match=r"holds files that train_m2se\.py did not write \(seeds_notes\.txt\)"
    ):
        train_m2se.main(["--recipe", "tiny_mse_adapter", "--seeds", "1,2", "--output_dir", str(output_dir)])
    assert [path.name for path in output_dir.iterdir()] == ["seeds_notes.txt"]


def test_a_folder_of_the_users_own_files_is_refused_and_left_alone(tmp_path):
    output_dir = tmp_path / "mine"
    output_dir.mkdir()
    (output_dir / "README.md").write_text("my notes")
    (output_dir / "config.json").write_text('{"mine": true}')
    with pytest.raises(
        FileExistsError,
        match=r"holds files that train_m2se\.py did not write \(README\.md, config\.json\); "
        "refusing to write over them",
    ):
        train_m2se.main(
            ["--recipe", "tiny_mse_adapter", "--output_dir", str(output_dir), "--overwrite_output_dir"]
        )
    assert sorted(path.name for path in output_dir.iterdir()) == ["README.md", "config.json"]
    assert (output_dir / "README.md").read_text() == "my notes"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--num_train_epochs", "1", "--set", "stages.0.epochs=4"],
            r"--num_train_epochs 1 cannot take effect: every stage of recipe 'tiny_mse_adapter' pins its "
            r"epochs \(stages\.0\.epochs=4\)",
        ),
        (
            ["--num_train_epochs", "1.5"],
            r"--num_train_epochs: the curriculum runs whole epochs per stage; .*1\.5",
        ),
        (["--save_strategy", "epoch"], "--save_strategy epoch: one Trainer epoch is the whole curriculum"),
        (["--train_sampling_strategy", "random"], "must be read with train_sampling_strategy sequential"),
        (["--learning_rate", "-1"], r"--learning_rate: expected a number >= 0, got -1\.0"),
        (
            ["--save_strategy", "no", "--set", "evaluation.patience=2"],
            r"--save_strategy no conflicts with evaluation\.patience 2",
        ),
        (
            ["--save_steps", "7", "--set", "evaluation.metric=MAE", "evaluation.patience=2"],
            r"--save_steps 7 conflicts with evaluation\.patience 2: early stopping saves a checkpoint at "
            "every evaluation",
        ),
        (["--batch_eval_metrics"], "--batch_eval_metrics True: not supported here, the held-out metrics"),
        (["--eval_do_concat_batches", "false"], "--eval_do_concat_batches False: not supported here"),
        (["--dataloader_drop_last"], "--dataloader_drop_last True: .* held-out rows unscored"),
        (
            ["--set", "training.learning_rate=[1,"],
            r"override training\.learning_rate: '\[1,' is not a valid YAML",
        ),
        (
            ["--set", "model.config.num_pseudo_tokens=0"],
            "model.config: num_pseudo_tokens must be a positive",
        ),
        (
            ["--set", "data.options.num_train=-5"],
            r"data\.options\.num_train: expected an integer >= 1, got -5",
        ),
        (
            ["--set", "model.backbone=/no/such/llm"],
            r"model\.backbone: '/no/such/llm' is neither an existing folder nor a Hub model id",
        ),
        (
            ["--set", "evaluation.metric=Mult_acc_3"],  # a SIMS metric; tiny_mse_adapter is scored as MOSEI
            r"evaluation\.metric: 'Mult_acc_3' is not a metric of this recipe's evaluation",
        ),
    ],
)
def test_flags_the_curriculum_cannot_honour_are_refused_before_work(argv, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        train_m2se.main(["--recipe", "tiny_mse_adapter", *argv, "--output_dir", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()


def test_repeated_set_flags_add_up():
    argv = [
        "--recipe",
        "tiny_mse_adapter",
        "--set",
        "stages.0.epochs=3",
        "--set",
        "data.options.num_train=16",
    ]
    script_args, _, recipe = train_m2se.parse_arguments([*argv, "evaluation.max_samples=4"])
    assert script_args.set == ["stages.0.epochs=3", "data.options.num_train=16", "evaluation.max_samples=4"]
    assert recipe.stages[0].epochs == 3 and recipe.data.options["num_train"] == 16
    assert recipe.evaluation.max_samples == 4


def test_flags_keep_the_trainers_defaults_and_explicit_ones_win():
    _, args, _ = train_m2se.parse_arguments(["--recipe", "tiny_emoverse_m2se", "--save_steps", "3"])
    assert (args.save_strategy, args.save_steps) == ("steps", 3)  # the Trainer's default strategy
    _, args, _ = train_m2se.parse_arguments(["--recipe", "tiny_mse_adapter"])
    assert (args.save_strategy, args.num_train_epochs, args.max_steps) == ("steps", 4, -1)  # recipe value
    _, args, _ = train_m2se.parse_arguments(["--recipe", "tiny_mse_adapter", "--num_train_epochs", "4"])
    assert args.num_train_epochs == 4


def test_command_line_bad_input_is_one_line_and_exit_2(tmp_path):
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO_ROOT)}
    command = [
        sys.executable,
        str(REPO_ROOT / "train_m2se.py"),
        "--recipe",
        "tiny_mse_adapter",
        "--output_dir",
        str(tmp_path / "out"),
        "--set",
        "model.config.num_psuedo_tokens=8",
    ]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "train_m2se.py: error: model.config.num_psuedo_tokens: unknown key for MSEAdapterConfig; did you "
        "mean 'num_pseudo_tokens'? expected one of ['audio_feature_dim', 'audio_hidden_size', 'fusion_size', "
        "'language', 'metric_set', 'msf_ratios', 'num_pseudo_tokens', 'pseudo_token', 'task_prompt', "
        "'value_range', 'video_feature_dim', 'video_hidden_size']"
    ]
    flag = subprocess.run(
        [*command[:-2], "--learning_rate", "abc"], capture_output=True, text=True, env=env, timeout=300
    )
    assert flag.returncode == 2 and len(flag.stderr.strip().splitlines()) == 1
    assert (
        flag.stderr
        == "train_m2se.py: error: argument --learning_rate/--learning-rate: invalid float value: 'abc'\n"
    )
    for override, message in (
        ("training.learning_rate=[1,", "override training.learning_rate: '[1,' is not a valid YAML value"),
        ("model.config.num_pseudo_tokens=four", "model.config: num_pseudo_tokens must be a positive integer"),
    ):
        bad = subprocess.run([*command[:-1], override], capture_output=True, text=True, env=env, timeout=300)
        assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr[-2000:]
        assert bad.stderr.startswith(f"train_m2se.py: error: {message}")
    debug = subprocess.run([*command, "--debug"], capture_output=True, text=True, env=env, timeout=300)
    assert debug.returncode == 1 and "Traceback" in debug.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_max_steps_caps_the_curriculum_and_num_train_epochs_sets_the_stage_epochs(tmp_path):
    output_dir = tmp_path / "capped"
    train_m2se.main(
        [
            "--recipe",
            "tiny_mse_adapter",
            "--output_dir",
            str(output_dir),
            "--num_train_epochs",
            "1",
            "--max_steps",
            "3",
        ]
    )
    state = json.loads((output_dir / "trainer_state.json").read_text())
    assert state["global_step"] == state["max_steps"] == 3
    (stage,) = json.loads((output_dir / "m2se_curriculum.json").read_text())["stages"]
    assert stage["epochs"] == 1 and stage["steps"] == [0, 3]
    assert stage["planned_steps"] == 128 // 8 and stage["truncated_by_max_steps"] is True


@pytest.mark.slow
def test_a_recipe_without_held_out_rows_finishes_with_a_card_saying_so(tmp_path):
    # As the shipped emoverse_m2se recipe: no data.options.num_eval_per_task, so no held-out rows.
    output_dir = tmp_path / "no-held-out"
    results = train_m2se.main(
        [
            "--recipe",
            "tiny_emoverse_m2se",
            "--output_dir",
            str(output_dir),
            "--set",
            "data.options={num_per_task: 24, image_size: 32}",
            "--max_steps",
            "2",
        ]
    )
    assert results == {42: {}}
    assert json.loads((output_dir / "eval_results.json").read_text()) == {
        "test_samples": 0,
        "note": train_m2se.NO_HELD_OUT,
    }
    card = (output_dir / "README.md").read_text()
    assert "No held-out metrics" in card and "tiny_emoverse_m2se" in card


@pytest.mark.slow
def test_a_failed_run_leaves_a_failed_record_and_a_rerun_is_not_blocked(tmp_path, monkeypatch):
    output_dir = tmp_path / "run"
    argv = ["--recipe", "tiny_mse_adapter", "--output_dir", str(output_dir), "--max_steps", "2"]

    def broken_step(self, args, state, control, **kwargs):
        raise RuntimeError("the disk is full")

    with monkeypatch.context() as patch:
        patch.setattr(train_m2se.M2SECurriculumCallback, "on_step_end", broken_step)
        with pytest.raises(RuntimeError, match="the disk is full"):
            train_m2se.main(argv)
    record = json.loads((output_dir / "m2se_run.json").read_text())
    assert record["status"] == "failed" and record["error"] == "RuntimeError: the disk is full"
    assert record["recipe"]["name"] == "tiny_mse_adapter"
    train_m2se.main(argv)  # the same command again: not refused
    finished = json.loads((output_dir / "m2se_run.json").read_text())
    assert finished["status"] == "finished" and "error" not in finished
    # A bad setting on a finished run, even with --overwrite_output_dir, leaves the folder as it was.
    before = {path.name: path.stat().st_mtime_ns for path in output_dir.iterdir()}
    with pytest.raises(ValueError, match="--learning_rate: expected a number >= 0"):
        train_m2se.main([*argv, "--overwrite_output_dir", "--learning_rate", "-1"])
    assert {path.name: path.stat().st_mtime_ns for path in output_dir.iterdir()} == before
    with pytest.raises(FileExistsError, match="already holds a run"):
        train_m2se.main(argv)


@pytest.mark.slow
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_a_run_stopped_by_a_signal_does_not_block_the_same_command(stop, tmp_path):
    output_dir = tmp_path / "run"
    argv = ["--recipe", "tiny_mse_adapter", "--output_dir", str(output_dir)]
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO_ROOT)}
    process = subprocess.Popen(
        [sys.executable, str(REPO_ROOT / "train_m2se.py"), *argv, "--num_train_epochs", "50"],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    record_file = output_dir / "m2se_run.json"
    deadline = time.monotonic() + 600
    while not (record_file.is_file() and json.loads(record_file.read_text())["status"] == "running"):
        assert process.poll() is None and time.monotonic() < deadline, "the run never started"
        time.sleep(0.2)
    process.send_signal(stop)
    assert process.wait(timeout=120) == (128 + stop if stop == signal.SIGTERM else -stop)
    record = json.loads(record_file.read_text())
    if stop == signal.SIGTERM:  # caught: the record says so
        assert record["status"] == "failed" and record["error"] == "StoppedBySignal: stopped by SIGTERM"
    else:  # uncatchable: the record still says running, but its process has ended
        assert record["status"] == "running" and record["pid"] == process.pid
    train_m2se.main([*argv, "--max_steps", "2"])  # the same command again: not refused
    assert json.loads(record_file.read_text())["status"] == "finished"


def test_a_run_still_running_blocks_a_second_one_in_its_folder(tmp_path):
    output_dir = tmp_path / "run"
    output_dir.mkdir()
    record = {"status": "running", "pid": os.getpid(), "host": socket.gethostname(), "recipe": {}}
    (output_dir / "m2se_run.json").write_text(json.dumps(record))
    with pytest.raises(FileExistsError, match=r"already holds a run \(m2se_run\.json\)"):
        train_m2se.main(["--recipe", "tiny_mse_adapter", "--output_dir", str(output_dir)])


@pytest.mark.parametrize("recipe", ["tiny_mse_adapter", "tiny_emoverse_m2se"])  # the second writes images
def test_a_failed_start_leaves_no_folder_behind(recipe, tmp_path, monkeypatch):
    def no_optimizer(self, *args, **kwargs):
        raise ValueError("Invalid learning rate")

    monkeypatch.setattr(train_m2se.Trainer, "create_optimizer", no_optimizer)
    with pytest.raises(ValueError, match="Invalid learning rate"):
        train_m2se.main(["--recipe", recipe, "--output_dir", str(tmp_path / "new")])
    assert not (tmp_path / "new").exists()
