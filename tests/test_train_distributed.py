"""Real multi-process runs on CPU (gloo) and crash recovery.

* DDP, DeepSpeed ZeRO-2 and ZeRO-3 with 2 processes give the same losses as 1 process with the same global
  batch.
* A tiny M2SE run killed with SIGKILL in the middle of stage 2 and resumed ends with the same weights and the
  same m2se_curriculum.json as an uninterrupted run.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import REPO_ROOT
from safetensors.torch import load_file

SCRIPT = str(REPO_ROOT / "train_m2se.py")
SHORT_TINY = [
    "--recipe",
    "tiny_mse_adapter",
    "--set",
    "stages.0.epochs=1",
    "data.options.num_train=32",
    "--use_cpu",
    "--logging_steps",
    "1",
]


def environment(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "HF_HOME": str(tmp_path / "hf"),
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": str(REPO_ROOT),
    }


def train_losses(output_dir: Path) -> list[float]:
    history = json.loads((output_dir / "trainer_state.json").read_text())["log_history"]
    return [entry["loss"] for entry in history if "loss" in entry]


def run(command: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    result = subprocess.run(
        command, capture_output=True, text=True, env=environment(tmp_path), timeout=900, cwd=REPO_ROOT
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return result


def rows_scored_per_rank(stderr: str) -> dict[int, list[int]]:
    """Rank -> the held-out rows it generated for in each scoring loop (untrained, trained), from its log."""
    counts: dict[int, list[int]] = {}
    for match in re.finditer(r"Prediction: rank (\d+) of \d+ scored (\d+) held-out rows", stderr):
        counts.setdefault(int(match[1]), []).append(int(match[2]))
    return counts


def untrained_metrics(stdout: str) -> dict[str, float]:
    """The 'untrained' column of the held-out comparison table that train_m2se.py prints."""
    table = stdout.split("Held-out test metrics\n")[1].splitlines()
    assert table[0].split() == ["metric", "untrained", "trained"], table[0]
    return {row.split()[0]: float(row.split()[1]) for row in table[1:] if len(row.split()) == 3}


@pytest.fixture(scope="module")
def single_process_run(tmp_path_factory) -> tuple[list[float], dict[str, float], dict[int, list[int]]]:
    tmp_path = tmp_path_factory.mktemp("single")
    result = run(
        [
            sys.executable,
            SCRIPT,
            *SHORT_TINY,
            "--per_device_train_batch_size",
            "8",
            "--output_dir",
            str(tmp_path / "out"),
        ],
        tmp_path,
    )
    losses = train_losses(tmp_path / "out")
    assert len(losses) == 4
    return losses, untrained_metrics(result.stdout), rows_scored_per_rank(result.stderr)


@pytest.mark.slow
@pytest.mark.parametrize(
    "deepspeed_config", [None, "zero2.json", "zero3.json"], ids=["ddp", "zero2", "zero3"]
)
def test_two_processes_match_one_process(deepspeed_config, single_process_run, tmp_path):
    # The untrained model is scored too (under ZeRO-3 only through the engine the Trainer builds in train()).
    single_process_losses, single_process_untrained, single_process_rows = single_process_run
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        SCRIPT,
        *SHORT_TINY,
        "--per_device_train_batch_size",
        "4",
        "--output_dir",
        str(tmp_path / "out"),
    ]
    if deepspeed_config is not None:
        command += ["--deepspeed", str(REPO_ROOT / "configs" / "deepspeed" / deepspeed_config)]
    result = run(command, tmp_path)
    assert train_losses(tmp_path / "out") == pytest.approx(single_process_losses, rel=1e-4)
    # Each rank generates for its own shard of the held-out rows (the untrained and the trained scoring),
    # and together they cover them: the gathered metrics equal one process's.
    held_out_rows = single_process_rows[0][0]
    assert single_process_rows == {0: [held_out_rows, held_out_rows]}
    per_rank = rows_scored_per_rank(result.stderr)
    assert set(per_rank) == {0, 1} and all(len(counts) == 2 for counts in per_rank.values()), per_rank
    assert all(0 < count < held_out_rows for counts in per_rank.values() for count in counts), per_rank
    assert all(first + second >= held_out_rows for first, second in zip(*per_rank.values(), strict=True)), (
        per_rank
    )
    untrained = untrained_metrics(result.stdout)
    assert {"MAE", "Corr", "Has0_acc_2"} <= set(untrained)
    assert untrained == pytest.approx(single_process_untrained, rel=1e-4, abs=1e-6)
    assert (tmp_path / "out" / "model.safetensors").is_file()


@pytest.mark.slow
def test_emoverse_under_zero3_scores_the_untrained_and_the_trained_model(tmp_path):
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        SCRIPT,
        "--recipe",
        "tiny_emoverse_m2se",
        "--use_cpu",
        "--deepspeed",
        str(REPO_ROOT / "configs" / "deepspeed" / "zero3.json"),
        "--output_dir",
        str(tmp_path / "out"),
    ]
    untrained = untrained_metrics(run(command, tmp_path).stdout)
    # MSA and ER are generated under their answer constraint: nothing unparsable, even untrained.
    assert untrained["msa_unparsable"] == 0 and untrained["er_unparsable"] == 0
    assert {"msa_accuracy", "er_weighted_f1", "fer_exact_match"} <= set(untrained)
    assert (tmp_path / "out" / "model.safetensors").is_file()


M2SE_ARGS = [
    "--recipe",
    "tiny_emoverse_m2se",
    "--save_strategy",
    "steps",
    "--save_steps",
    "1",
    "--logging_steps",
    "1",
    "--seed",
    "7",
]


@pytest.mark.slow
def test_sigkill_in_stage_two_then_resume_equals_an_uninterrupted_run(tmp_path):
    reference = tmp_path / "reference"
    run([sys.executable, SCRIPT, *M2SE_ARGS, "--output_dir", str(reference)], tmp_path)
    curriculum = json.loads((reference / "m2se_curriculum.json").read_text())
    stage_two_start, stage_two_end = curriculum["stages"][1]["steps"]
    kill_after = (stage_two_start + stage_two_end) // 2  # a checkpoint in the middle of stage 2

    crashed = tmp_path / "crashed"
    # SIGKILL at a fixed point instead of racing a timer: after checkpoint-{kill_after} is complete, the
    # process kills itself while writing checkpoint-{kill_after + 1} (weights written, optimizer and
    # scheduler not), as a power cut in the middle of a save would leave it.
    crash_launcher = tmp_path / "crash_during_save.py"
    crash_launcher.write_text(
        "import os, runpy, signal, sys\n"
        "import transformers\n"
        "save_optimizer_and_scheduler = transformers.Trainer._save_optimizer_and_scheduler\n"
        "def crash_at_step(self, output_dir):\n"
        f"    if self.state.global_step == {kill_after + 1}:\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "    save_optimizer_and_scheduler(self, output_dir)\n"
        "transformers.Trainer._save_optimizer_and_scheduler = crash_at_step\n"
        "sys.argv = sys.argv[1:]\n"
        "runpy.run_path(sys.argv[0], run_name='__main__')\n"
    )
    process = subprocess.run(
        [sys.executable, str(crash_launcher), SCRIPT, *M2SE_ARGS, "--output_dir", str(crashed)],
        env=environment(tmp_path),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert process.returncode == -signal.SIGKILL, process.stderr[-4000:]
    assert not (crashed / "m2se_curriculum.json").exists()
    half_written = crashed / f"checkpoint-{kill_after + 1}"
    assert (half_written / "model.safetensors").is_file() and not (half_written / "scheduler.pt").exists()
    checkpoints = sorted(crashed.glob("checkpoint-*"), key=lambda path: int(path.name.split("-")[1]))
    last_complete = next(
        path
        for path in reversed(checkpoints)
        if (path / "trainer_state.json").is_file()
        and (path / "model.safetensors").is_file()
        and (path / "scheduler.pt").is_file()
    )
    assert last_complete.name == f"checkpoint-{kill_after}"
    assert stage_two_start < kill_after < stage_two_end

    run(
        [
            sys.executable,
            SCRIPT,
            *M2SE_ARGS,
            "--output_dir",
            str(crashed),
            "--resume_from_checkpoint",
            str(last_complete),
        ],
        tmp_path,
    )
    assert json.loads((crashed / "m2se_curriculum.json").read_text()) == curriculum
    expected, resumed = load_file(reference / "model.safetensors"), load_file(crashed / "model.safetensors")
    assert expected.keys() == resumed.keys()
    for name in expected:
        torch.testing.assert_close(resumed[name], expected[name], rtol=0, atol=0, msg=name)
    assert train_losses(crashed)[-3:] == train_losses(reference)[-3:]
