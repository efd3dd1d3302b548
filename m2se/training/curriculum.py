"""The whole curriculum as one map-style dataset, so that one ``Trainer.train()`` covers every stage.

Each stage draws its mixture once (``m2se.emt.mix.mix_stage``: task sampling rates, a budget of distinct
samples, samples used by earlier stages excluded). Every epoch of a stage is a fresh seeded permutation of
that mixture, padded by wrapping around to a whole number of global batches, so no optimizer step mixes two
stages or two epochs. The epochs of stage 1, then those of stage 2 ... are laid end to end and read with
``train_sampling_strategy="sequential"``; the order is a pure function of the seed, so
``resume_from_checkpoint`` replays exactly the batches an uninterrupted run would have seen. The rows are
selected through one index
mapping on the concatenated mixtures: nothing is copied, however many epochs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import datasets
import numpy as np

from m2se.training.recipes import StageRecipe


@dataclass
class StagePlan:
    """One stage as laid out in the training dataset; steps are optimizer steps (global batches)."""

    name: str
    rates: dict[str, float]
    samples: dict[str, int]
    epochs: int
    start_step: int
    end_step: int

    @property
    def steps_per_epoch(self) -> int:
        return (self.end_step - self.start_step) // self.epochs


@dataclass
class CurriculumPlan:
    dataset: datasets.Dataset
    stages: list[StagePlan]

    @property
    def total_steps(self) -> int:
        return self.stages[-1].end_step


def build_curriculum(
    pools: dict[str, datasets.Dataset],
    stages: list[StageRecipe],
    global_batch_size: int,
    seed: int,
) -> CurriculumPlan:
    """Draw every stage's mixture from ``pools`` (task -> dataset with an ``id`` column) and lay out the
    epochs.

    Raises ValueError when a stage samples a task that has no pool, or when a stage ends up with no samples.
    """
    from m2se.emt.mix import mix_stage

    if global_batch_size < 1:
        raise ValueError(f"global_batch_size must be >= 1, got {global_batch_size}")
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
        steps_per_epoch = math.ceil(len(mixture) / global_batch_size)
        padded = steps_per_epoch * global_batch_size
        for _ in range(stage.epochs):
            permutation = rng.permutation(len(mixture))
            order.append(offset + np.resize(permutation, padded))  # np.resize repeats from the start
        plans.append(
            StagePlan(
                name=stage.name,
                rates=dict(stage.rates),
                samples={task: int(counts.get(task, 0)) for task in stage.rates},
                epochs=stage.epochs,
                start_step=step,
                end_step=step + stage.epochs * steps_per_epoch,
            )
        )
        mixtures.append(mixture)
        offset += len(mixture)
        step = plans[-1].end_step
    combined = mixtures[0] if len(mixtures) == 1 else datasets.concatenate_datasets(mixtures)
    return CurriculumPlan(dataset=combined.select(np.concatenate(order)), stages=plans)
