"""``M2SECurriculumCallback``: the stage schedule of M2SE inside one stock ``Trainer.train()`` call.

The training dataset already holds every stage in order (``m2se.training.curriculum.build_curriculum``, read
sequentially), so switching "the training mixture" at a boundary needs no dataloader surgery: the callback
owns the boundaries (in optimizer steps) and everything that depends on them:

* the learning-rate schedule: with ``schedule_per_stage`` the Trainer's ``LambdaLR`` gets a per-stage
  warm-up + cosine multiplier (:class:`StageWarmupCosine`), i.e. each stage is scheduled as if it were its own
  run, as in the paper's two ms-swift runs;
* a checkpoint at every stage boundary;
* per-task training losses (``loss_<task>`` in the logs, from ``TaskAwareLoss``) and the current ``stage``;
* ``m2se_curriculum.json`` in the output folder: ``{"stages": [{"name", "rates", "samples"}]}``.

Its state (loss EMAs, per-task loss windows) is an ``ExportableState`` and so lands in every checkpoint's
``trainer_state.json``; :meth:`load_state` puts it back on resume.
"""

from __future__ import annotations

import bisect
import json
import math
import os
from typing import Any

import torch
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments
from transformers.trainer_callback import ExportableState

from m2se.training.curriculum import StagePlan
from m2se.training.loss import TaskAwareLoss

CURRICULUM_FILE = "m2se_curriculum.json"


class StageWarmupCosine:
    """LR multiplier restarting at every stage: linear warm-up over ``warmup`` of the stage, then cosine to 0.

    A callable object (not a closure) so that ``LambdaLR.state_dict`` can store it.

    Args:
        boundaries: the start step of every stage followed by the end step of the last one.
        warmup: fraction of each stage's steps used for warm-up (in [0, 1)).
    """

    def __init__(self, boundaries: list[int], warmup: float):
        self.boundaries = list(boundaries)
        self.warmup = warmup

    def __call__(self, step: int) -> float:
        stage = min(max(bisect.bisect_right(self.boundaries, step) - 1, 0), len(self.boundaries) - 2)
        start, end = self.boundaries[stage], self.boundaries[stage + 1]
        length = max(1, end - start)
        warmup_steps = math.ceil(self.warmup * length)
        position = step - start
        if position < warmup_steps:
            return (position + 1) / (warmup_steps + 1)
        progress = (position - warmup_steps) / max(1, length - warmup_steps)
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress))))


class M2SECurriculumCallback(TrainerCallback, ExportableState):
    """Drives the curriculum of a run whose training set was built by ``build_curriculum``.

    Args:
        stages: the plan's stages (boundaries, rates, realised sample counts).
        loss: the ``TaskAwareLoss`` passed to the Trainer as ``compute_loss_func``.
        schedule_per_stage: restart warm-up + cosine at every stage (needs the Trainer's scheduler to be a
            ``LambdaLR``, true for every ``lr_scheduler_type`` with warm-up).
        warmup: warm-up fraction of each stage when ``schedule_per_stage``.
    """

    def __init__(
        self,
        stages: list[StagePlan],
        loss: TaskAwareLoss,
        schedule_per_stage: bool = False,
        warmup: float = 0.0,
    ):
        self.stages = stages
        self.loss = loss
        self.schedule_per_stage = schedule_per_stage
        self.warmup = warmup
        self._stage_ends = {stage.end_step for stage in stages}
        self._window_loss = torch.zeros(len(loss.tasks), dtype=torch.float64)
        self._window_tokens = torch.zeros(len(loss.tasks), dtype=torch.float64)

    def stage_at(self, step: int) -> int:
        """Index of the stage that optimizer step ``step`` (0-based) belongs to."""
        for index, stage in enumerate(self.stages):
            if step < stage.end_step:
                return index
        return len(self.stages) - 1

    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs):
        if not self.schedule_per_stage:
            return
        scheduler = kwargs.get("lr_scheduler")
        if not isinstance(scheduler, torch.optim.lr_scheduler.LambdaLR):
            raise TypeError(
                "schedule_per_stage needs the Trainer's LambdaLR scheduler (e.g. "
                "lr_scheduler_type='cosine'), got "
                f"{type(scheduler).__name__}; remove the scheduler from the DeepSpeed config or set "
                "schedule_per_stage: false"
            )
        boundaries = [stage.start_step for stage in self.stages] + [self.stages[-1].end_step]
        multiplier = StageWarmupCosine(boundaries, self.warmup)
        scheduler.lr_lambdas = [multiplier] * len(scheduler.optimizer.param_groups)
        # LambdaLR applied the old multiplier for the current step when it was built (or loaded): redo it.
        for group, base_lr in zip(scheduler.optimizer.param_groups, scheduler.base_lrs, strict=True):
            group["lr"] = base_lr * multiplier(scheduler.last_epoch)
        scheduler._last_lr = [group["lr"] for group in scheduler.optimizer.param_groups]

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs):
        loss_sums, token_counts = self.loss.end_step()
        self._window_loss += loss_sums
        self._window_tokens += token_counts
        if state.global_step in self._stage_ends and state.global_step < state.max_steps:
            control.should_save = True  # a checkpoint holding the finished stage
        return control

    def on_log(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, logs=None, **kwargs
    ):
        if logs is None or "loss" not in logs:
            return
        per_task = {
            f"loss_{task}": float(self._window_loss[index] / self._window_tokens[index])
            for index, task in enumerate(self.loss.tasks)
            if self._window_tokens[index] > 0
        }
        per_task["stage"] = self.stage_at(max(0, state.global_step - 1))
        if self.loss.difficulty_weighting:
            weights = self.loss.task_weights()
            per_task.update({f"weight_{task}": float(weights[i]) for i, task in enumerate(self.loss.tasks)})
        self._window_loss.zero_()
        self._window_tokens.zero_()
        logs.update(per_task)
        if state.log_history and state.log_history[-1].get("step") == state.global_step:
            state.log_history[-1].update(per_task)

    def on_train_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs):
        if state.is_world_process_zero:
            write_curriculum_file(args.output_dir, self.stages)

    def state(self) -> dict[str, Any]:
        return {
            "args": {"schedule_per_stage": self.schedule_per_stage, "warmup": self.warmup},
            "attributes": {
                "loss_ema": dict(self.loss.loss_ema),
                "window_loss": self._window_loss.tolist(),
                "window_tokens": self._window_tokens.tolist(),
                "stages": [[stage.name, stage.start_step, stage.end_step] for stage in self.stages],
            },
        }

    def load_state(self, saved: dict[str, Any]) -> None:
        """Restore what :meth:`state` saved; refuses a state from a run with other stage boundaries."""
        attributes = saved["attributes"]
        expected = [[stage.name, stage.start_step, stage.end_step] for stage in self.stages]
        if attributes["stages"] != expected:
            raise ValueError(
                f"the checkpoint's curriculum has stages {attributes['stages']}, this run has {expected}: "
                "resume with the same recipe, seed and batch size"
            )
        self.loss.loss_ema = dict(attributes["loss_ema"])
        self._window_loss = torch.tensor(attributes["window_loss"], dtype=torch.float64)
        self._window_tokens = torch.tensor(attributes["window_tokens"], dtype=torch.float64)


def write_curriculum_file(output_dir: str | os.PathLike, stages: list[StagePlan]) -> None:
    """``m2se_curriculum.json``: every stage's name, sampling rates, realised number of samples per task,
    epochs and optimizer steps run; ``planned_steps`` and ``truncated_by_max_steps`` say whether
    ``--max_steps`` cut the stage short (a stage after the cap runs no step)."""
    os.makedirs(output_dir, exist_ok=True)
    content = {
        "stages": [
            {
                "name": stage.name,
                "rates": stage.rates,
                "samples": stage.samples,
                "epochs": stage.epochs,
                "steps": [stage.start_step, stage.end_step],
                "planned_steps": stage.planned_steps,
                "truncated_by_max_steps": stage.truncated,
            }
            for stage in stages
        ]
    }
    with open(os.path.join(output_dir, CURRICULUM_FILE), "w", encoding="utf-8") as handle:
        json.dump(content, handle, indent=2)
