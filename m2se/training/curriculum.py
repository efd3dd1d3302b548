"""The whole curriculum as one map-style dataset, so that one ``Trainer.train()`` covers every stage.

Each stage draws its mixture once (``m2se.emt.mix.mix_stage``: task sampling rates, a budget of distinct
samples, samples used by earlier stages excluded). Every epoch of a stage is a fresh seeded permutation of
that mixture, padded by wrapping around to a whole number of global batches, so no optimizer step mixes two
stages or two epochs. The epochs of stage 1, then those of stage 2 ... are laid end to end and read with
``train_sampling_strategy="sequential"``; the order is a pure function of the seed, so
``resume_from_checkpoint`` replays exactly the batches an uninterrupted run would have seen. The rows are
selected through one index mapping on the concatenated mixtures: nothing is copied, however many epochs.

A ``max_steps`` cap (the Trainer's ``--max_steps``) cuts the curriculum in order: the stage it falls in ends
there and later stages get no step; every stage keeps its planned length (``planned_steps``) so the plan says
what was cut.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import datasets
import numpy as np

from m2se.emt.mix import mix_stage
from m2se.emt.stage import Stage


@dataclass
class StagePlan:
    """One stage as laid out in the training dataset; steps are optimizer steps (global batches).

    ``planned_steps`` is the stage's length without a ``max_steps`` cap; ``end_step - start_step`` what runs.
    """

    name: str
    rates: dict[str, float]
    samples: dict[str, int]
    epochs: int
    start_step: int
    end_step: int
    planned_steps: int

    @property
    def steps_per_epoch(self) -> int:
        return self.planned_steps // self.epochs

    @property
    def truncated(self) -> bool:
        return self.end_step - self.start_step < self.planned_steps


@dataclass
class CurriculumPlan:
    dataset: datasets.Dataset
    stages: list[StagePlan]

    @property
    def total_steps(self) -> int:
        return self.stages[-1].end_step


def build_curriculum(
    pools: dict[str, datasets.Dataset],
    stages: list[Stage],
    global_batch_size: int,
    seed: int,
    *,
    epochs: int = 1,
    max_steps: int | None = None,
) -> CurriculumPlan:
    """Draw every stage's mixture from ``pools`` (task -> dataset with an ``id`` column) and lay out the
    epochs.

    Args:
        epochs: the number of epochs of a stage that does not pin its own (``Stage.epochs`` None).
        max_steps: cap on the optimizer steps of the whole curriculum (None: no cap).

    Raises ValueError when a stage samples a task that has no pool, or when a stage ends up with no samples.
    """
    if global_batch_size < 1:
        raise ValueError(f"global_batch_size must be >= 1, got {global_batch_size}")
    if max_steps is not None and max_steps < 1:
        raise ValueError(f"max_steps must be >= 1 or None, got {max_steps}")
    mixtures: list[datasets.Dataset] = []
    plans: list[StagePlan] = []
    used_ids: set[str] = set()
    order: list[np.ndarray] = []
    offset = step = 0
    for stage_index, stage in enumerate(stages):
        active = {task: rate for task, rate in stage.rates.items() if rate > 0}
        missing = sorted(set(active) - set(pools))
        if missing:
            raise ValueError(
                f"stage {stage.name!r} samples task(s) {missing} but the data has none; available: "
                f"{sorted(pools)}"
            )
        mixture, counts = mix_stage(
            {task: pools[task] for task in active}, active, stage.budget, seed + stage_index, used_ids
        )
        if len(mixture) == 0:
            raise ValueError(
                f"stage {stage.name!r} has no data: the pools of {sorted(active)} are empty or used up by "
                "earlier stages"
            )
        used_ids.update(mixture["id"])
        rng = np.random.default_rng([seed, stage_index])
        stage_epochs = epochs if stage.epochs is None else stage.epochs
        steps_per_epoch = math.ceil(len(mixture) / global_batch_size)
        padded = steps_per_epoch * global_batch_size
        for _ in range(stage_epochs):
            permutation = rng.permutation(len(mixture))
            order.append(offset + np.resize(permutation, padded))  # np.resize repeats from the start
        planned = stage_epochs * steps_per_epoch
        end = step + planned if max_steps is None else min(step + planned, max_steps)
        plans.append(
            StagePlan(
                name=stage.name,
                rates=dict(stage.rates),
                samples={task: int(counts.get(task, 0)) for task in stage.rates},
                epochs=stage_epochs,
                start_step=step,
                end_step=end,
                planned_steps=planned,
            )
        )
        mixtures.append(mixture)
        offset += len(mixture)
        step = end
    combined = mixtures[0] if len(mixtures) == 1 else datasets.concatenate_datasets(mixtures)
    rows = np.concatenate(order)[: step * global_batch_size]
    return CurriculumPlan(dataset=combined.select(rows), stages=plans)
