"""From a recipe's ``data`` section to per-task training pools and held-out evaluation / test sets."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import datasets

from m2se.training.recipes import Recipe

# Options of the synthetic sources that split the data rather than parametrise the generator.
SPLIT_OPTIONS = ("num_train", "num_eval", "num_test", "seed", "num_per_task", "num_eval_per_task")


@dataclass
class TaskData:
    """``pools``: task -> training rows (with an ``id`` column); ``eval_rows``: monitored during training
    (early stopping); ``test_rows``: scored once before and once after training."""

    pools: dict[str, datasets.Dataset]
    eval_rows: datasets.Dataset
    test_rows: datasets.Dataset

    @property
    def label_names(self) -> list[str] | None:
        """Class names of a classification (ERC) data set, None for regression / EMT."""
        label_feature = self.eval_rows.features.get("label")
        return list(label_feature.names) if isinstance(label_feature, datasets.ClassLabel) else None


def load_task_data(recipe: Recipe, work_dir: Path) -> TaskData:
    """Load or generate the data of ``recipe``; ``work_dir`` receives generated media (synthetic EMT
    images)."""
    source, options, paths = recipe.data.source, dict(recipe.data.options), recipe.data.paths
    task = recipe.tasks[0]
    if source == "synthetic":
        return _synthetic_multimodal(task, options)
    if source == "mmsa":
        from m2se.data.pickles import load_mmsa_pickle

        splits = load_mmsa_pickle(paths["pickle"], allow_pickle=options.get("allow_pickle", False))
        return TaskData({task: splits["train"]}, splits["validation"], splits["test"])
    if source == "erc":
        from m2se.data.pickles import load_erc_pickle

        dataset_name = options.get("dataset", recipe.name.rsplit("_", 1)[-1])
        splits = {
            split: load_erc_pickle(
                paths[split], dataset_name, allow_pickle=options.get("allow_pickle", False)
            )
            for split in ("train", "valid", "test")
        }
        return TaskData({task: splits["train"]}, splits["valid"], splits["test"])
    if source == "emt_synthetic":
        from m2se.emt.synthetic import make_emt_dataset

        num_eval = options.get("num_eval_per_task", 0)
        records = make_emt_dataset(
            work_dir / "synthetic_emt",
            num_per_task=options.get("num_per_task", 20) + 2 * num_eval,
            image_size=options.get("image_size", 32),
            seed=options.get("seed", 0),
        )
        return _hold_out_per_task(records, num_eval)
    from m2se.data.emt import load_emt

    records = datasets.concatenate_datasets([load_emt(paths[task]) for task in recipe.tasks])
    return _hold_out_per_task(records, options.get("num_eval_per_task", 0))


def _synthetic_multimodal(task: str, options: dict) -> TaskData:
    from m2se.data.synthetic import make_multimodal_dataset

    generator_options = {key: value for key, value in options.items() if key not in SPLIT_OPTIONS}
    if "value_range" in generator_options:
        generator_options["value_range"] = tuple(generator_options["value_range"])
    kind = "regression" if task == "msa" else "classification"
    seed = options.get("seed", 0)
    # Three seeds give three disjoint draws from the same labelling function.
    train, eval_rows, test_rows = (
        make_multimodal_dataset(options.get(size_key, default), kind, seed=seed + offset, **generator_options)
        for offset, (size_key, default) in enumerate((("num_train", 256), ("num_eval", 32), ("num_test", 64)))
    )
    return TaskData({task: train}, eval_rows, test_rows)


def _hold_out_per_task(records: datasets.Dataset, num_eval: int) -> TaskData:
    """Keep the last ``num_eval`` records of each task for evaluation and the ``num_eval`` before for
    testing."""
    pools, eval_parts, test_parts = {}, [], []
    tasks = records["task"]
    for task in dict.fromkeys(tasks):
        indices = [index for index, name in enumerate(tasks) if name == task]
        if len(indices) <= 2 * num_eval:
            raise ValueError(
                f"task {task!r} has {len(indices)} records, too few to hold out 2 x {num_eval} for evaluation"
            )
        cut = len(indices) - 2 * num_eval
        pools[task] = records.select(indices[:cut])
        test_parts.append(records.select(indices[cut : cut + num_eval]))
        eval_parts.append(records.select(indices[cut + num_eval :]))
    return TaskData(
        pools, datasets.concatenate_datasets(eval_parts), datasets.concatenate_datasets(test_parts)
    )
