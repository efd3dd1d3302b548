"""M2SE stage mixtures: per-task sampling rates, an optional sample budget and "remaining samples".

How a stage is drawn (``mix_stage``), in this order:

1. **Remaining samples.** Every record whose ``id`` is in ``exclude_ids`` is removed from its pool. Stage 2
   passes the ids of the stage-1 mixture, so it draws only from samples stage 1 did not use.
2. **Rates.** ``rates[task]`` in [0, 1] is the fraction of the task's remaining pool to draw:
   ``n_task = round(rate * remaining)``. Rate 1.0 takes every remaining sample, 0 none. Every pool needs a
   rate and every rate a pool.
3. **Budget.** With ``budget=None`` the counts of step 2 stand. When they add up to more than ``budget``,
   all counts are scaled by the same factor (largest remainders get the leftover samples, ties in rate
   order), which keeps the mixture's composition and gives exactly ``budget`` samples. When they add up to
   less, every sample of step 2 is used and a warning says the budget was not reached.
4. **Draw.** Each task draws its samples without replacement from its own generator, seeded by
   ``(seed, task name)``: changing one task's pool never changes another task's draw. The mixture is then
   shuffled with ``seed``.

A stage file (YAML) is a ``m2se.emt.stage.Stage`` (the type of a recipe's stages too) as data, e.g.
``m2se/resources/stage1.yaml``::

    name: stage1               # default: the file name without .yaml
    budget: 15000              # or null: no cap
    seed: 42                   # default 0
    rates: {msa: 1.0, fer: 1.0, er: 0.2}
    data:                      # task -> EMT files (JSON/JSONL); relative paths are from the working directory
      msa: [emt/mosei_msa_train.jsonl]
    exclude: []                # EMT files (e.g. the stage-1 mixture) whose ids are not drawn again

A data file may hold several tasks: each pool keeps the records of its own task (records without a
``task`` field count as that task).
"""

from __future__ import annotations

import logging
import math
import os
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import fields
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
import yaml
from datasets.table import InMemoryTable

from m2se.data.emt import load_emt
from m2se.emt.stage import RECIPE_ONLY_FIELDS, Stage, check_budget, check_rates

logger = logging.getLogger(__name__)


def load_stage(path: str | os.PathLike) -> Stage:
    """Read a stage YAML file (format in the module docstring) into a checked ``Stage``; errors name the
    file and the field."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"stage file not found: {path}")
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: a stage file must be a YAML mapping, got {type(raw).__name__}")
    keys = sorted({f.name for f in fields(Stage)} - set(RECIPE_ONLY_FIELDS))
    unknown = sorted(set(raw) - set(keys))
    if unknown:
        raise ValueError(f"{path}: unknown keys {unknown}; expected some of {keys}")
    if "rates" not in raw:
        raise ValueError(f"{path}: a stage needs 'rates' (task -> fraction of its pool)")
    raw = {"name": path.stem, **raw}
    try:
        return Stage(**{key: value for key, value in raw.items() if value is not None})
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None


def _task_generator(seed: int, task: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(task.encode("utf-8"))])


def _fit_budget(requested: dict[str, int], budget: int) -> dict[str, int]:
    total = sum(requested.values())
    if total <= budget:
        return requested
    quotas = {task: count * budget / total for task, count in requested.items()}
    counts = {task: math.floor(quota) for task, quota in quotas.items()}
    order = sorted(quotas, key=lambda task: -(quotas[task] - counts[task]))
    for task in order[: budget - sum(counts.values())]:
        counts[task] += 1
    return counts


def mix_stage(
    pools: Mapping[str, datasets.Dataset],
    rates: Mapping[str, float],
    budget: int | None,
    seed: int,
    exclude_ids: Iterable[str] | None = None,
) -> tuple[datasets.Dataset, dict[str, int]]:
    """Draw a stage mixture (rules in the module docstring); returns it with a ``task`` column and the
    realised count per task."""
    rates = check_rates(rates)
    budget = check_budget(budget)
    if set(pools) != set(rates):
        raise ValueError(
            f"mix_stage: pools {sorted(pools)} and rates {sorted(rates)} must name the same tasks"
        )
    for task, pool in pools.items():
        if "id" not in pool.column_names:
            raise ValueError(f"mix_stage: the {task!r} pool needs an 'id' column; it has {pool.column_names}")
    excluded = set(exclude_ids or ())
    remaining = {
        task: [index for index, sample_id in enumerate(pools[task][:]["id"]) if sample_id not in excluded]
        for task in rates
    }
    requested = {task: math.floor(rates[task] * len(remaining[task]) + 0.5) for task in rates}
    counts = requested if budget is None else _fit_budget(requested, budget)
    if budget is not None and sum(counts.values()) < budget:
        logger.warning(
            "budget %d not reached: the rates give only %d samples (%s)", budget, sum(counts.values()), counts
        )
    features = {
        task: datasets.Features({k: v for k, v in pool.features.items() if k != "task"})
        for task, pool in pools.items()
    }
    if len({repr(f) for f in features.values()}) > 1:
        raise ValueError(f"mix_stage: the pools have different columns/features: {features}")
    # Arrow tables rather than Dataset.select/add_column, which would rewrite every selected row.
    tables = []
    for task in rates:
        chosen = _task_generator(seed, task).choice(len(remaining[task]), size=counts[task], replace=False)
        rows = pools[task].with_format("arrow")[[remaining[task][i] for i in sorted(chosen)]]
        if "task" in rows.column_names:
            rows = rows.drop_columns(["task"])
        tables.append(rows.append_column("task", pa.array([task] * rows.num_rows, pa.string())))
    mixed = pa.concat_tables(tables)
    mixed = mixed.take(np.random.default_rng(seed).permutation(mixed.num_rows))
    mixture_features = datasets.Features({**next(iter(features.values())), "task": datasets.Value("string")})
    mixture = datasets.Dataset(InMemoryTable(mixed), info=datasets.DatasetInfo(features=mixture_features))
    return mixture, dict(counts)


def build_stage(spec: Stage) -> tuple[datasets.Dataset, dict[str, int]]:
    """Load the stage's EMT files (each pool filtered to its task), the excluded ids, and ``mix_stage``."""
    missing = [task for task in spec.rates if not spec.data.get(task)]
    if missing:
        raise ValueError(f"stage {spec.name!r}: no data files for tasks {missing}")
    pools = {}
    for task in spec.rates:
        records = load_emt(list(spec.data[task]))
        pool = records.select([i for i, name in enumerate(records[:]["task"]) if name in (None, task)])
        if len(pool) == 0:
            raise ValueError(f"stage {spec.name!r}: no {task!r} record in {list(spec.data[task])}")
        pools[task] = pool
    exclude_ids = set(load_emt(list(spec.exclude))[:]["id"]) if spec.exclude else set()
    return mix_stage(pools, spec.rates, spec.budget, 0 if spec.seed is None else spec.seed, exclude_ids)
