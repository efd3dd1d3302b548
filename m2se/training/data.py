"""From a recipe's ``data`` section to per-task training pools and held-out evaluation / test sets.

Sources (``data.source``) and what their ``paths`` and ``options`` hold:

* ``synthetic``: no paths; ``options`` are ``make_multimodal_dataset`` keyword arguments plus the split sizes
  ``num_train`` / ``num_eval`` / ``num_test`` and ``seed``.
* ``mmsa``: ``paths.pickle`` is an MMSA pickle (``options.allow_pickle: true``) or the Arrow folder that
  ``python -m m2se.data convert`` writes from it (a ``DatasetDict`` train / validation / test).
* ``erc``: ``paths.train`` / ``valid`` / ``test`` are MSE-Adapter ERC pickles or their converted Arrow
  folders. The class names come from the Arrow folders (``ClassLabel``) or, for pickles, which do not
  store them, from ``options.label_names`` (in index order) or ``options.dataset`` (``meld``, ``cherma``,
  ``iemocap``).
* ``arrow``: ``paths.dataset`` is one Arrow ``DatasetDict`` folder (train / validation / test) in the standard
  multimodal schema, e.g. from ``python -m m2se.features extract``. The folder's labels set the task: a
  ``ClassLabel`` label trains ER (classification over its names), a numeric label MSA (regression); the
  recipe's one stage names its rate under either task and is moved to the folder's.
* ``emt_synthetic``: no paths; ``options`` are ``make_emt_dataset`` keyword arguments plus
  ``num_eval_per_task``.
* ``emt``: ``paths.<task>`` is an EMT JSON / JSONL file per task; ``options.num_eval_per_task``. Every
  record's image / video path is checked when the data is loaded (relative to the working directory).
"""

from __future__ import annotations

import inspect
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import datasets

if TYPE_CHECKING:
    from m2se.training.recipes import Recipe

# Options that split the data rather than parametrise the generator / loader, per source.
SPLIT_OPTIONS = {
    "synthetic": ("num_train", "num_eval", "num_test"),
    "emt_synthetic": ("num_eval_per_task",),
    "emt": ("num_eval_per_task",),
}
ARROW_SPLITS = ("train", "validation", "test")


def _loader(source: str):
    """The function that generates or reads the rows of ``source`` (its keyword arguments are options)."""
    if source == "synthetic":
        from m2se.data.synthetic import make_multimodal_dataset

        return make_multimodal_dataset
    if source == "mmsa":
        from m2se.data.pickles import load_mmsa_pickle

        return load_mmsa_pickle
    if source == "erc":
        from m2se.data.pickles import load_erc_pickle

        return load_erc_pickle
    if source == "emt_synthetic":
        from m2se.emt.synthetic import make_emt_dataset

        return make_emt_dataset
    return None  # emt, arrow: nothing to parametrise beyond the split options


# What to add to the message of a missing data path, per source.
PATH_HINTS = {
    "arrow": "; give the folder with --set data.paths.dataset=DIR (e.g. written by python -m m2se.features "
    "extract)"
}

# Arguments the training script fills itself (the rows to make, the task, where the files are).
_FILLED_ARGUMENTS = ("num_samples", "task", "path", "out_dir")


def data_options(source: str) -> list[str]:
    """Every key ``data.options`` may hold for ``source``: the loader's keyword arguments and the split
    options."""
    loader = _loader(source)
    names = set(SPLIT_OPTIONS.get(source, ()))
    if loader is not None:
        names |= {name for name in inspect.signature(loader).parameters if name not in _FILLED_ARGUMENTS}
    return sorted(names)


def required_paths(recipe: Recipe) -> list[str]:
    """The ``data.paths`` keys the recipe's source needs."""
    source = recipe.data.source
    if source == "mmsa":
        return ["pickle"]
    if source == "erc":
        return ["train", "valid", "test"]
    if source == "arrow":
        return ["dataset"]
    if source == "emt":
        return list(recipe.tasks)
    return []


def check_data_recipe(recipe: Recipe) -> None:
    """The ``data`` section against its source: option names, data paths, where ERC class names come from;
    an ``arrow`` recipe's task is set from its folder's labels (when the folder is here).

    Raises ``ValueError`` naming the key path and the valid keys (with the closest match) before any data is
    read (an arrow folder's schema only).
    """
    from m2se.training.recipes import check_known_keys

    data = recipe.data
    check_known_keys(data.options, data_options(data.source), "data.options", f"data source {data.source!r}")
    for key in SPLIT_OPTIONS.get(data.source, ()):
        value, least = data.options.get(key, 1), 0 if key == "num_eval_per_task" else 1
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ValueError(f"data.options.{key}: expected an integer >= {least}, got {value!r}")
    needed = required_paths(recipe)
    missing = [key for key in needed if key not in data.paths]
    if missing:
        raise ValueError(
            f"data.paths: data source {data.source!r} needs {needed}; missing {missing} "
            f"(got {sorted(data.paths)}){PATH_HINTS.get(data.source, '')}"
        )
    if data.source == "arrow":
        _take_task_from_folder(recipe)
    if data.source == "erc":
        pickles = [key for key in needed if not Path(data.paths[key]).expanduser().is_dir()]
        if pickles and not {"dataset", "label_names"} & set(data.options):
            from m2se.data.pickles import ERC_LABEL_NAMES

            raise ValueError(
                f"data.options: the ERC pickles ({', '.join(f'data.paths.{key}' for key in pickles)}) do not "
                "store their class names; set data.options.label_names (the names in index order) or "
                f"data.options.dataset (one of {sorted(ERC_LABEL_NAMES)})"
            )


def _take_task_from_folder(recipe: Recipe) -> None:
    """Move the rate of an arrow recipe's one task to the task its folder's labels give (``label_task``)."""
    path = Path(recipe.data.paths["dataset"]).expanduser()
    if not path.exists() or len(recipe.tasks) != 1:
        return  # validate_recipe names a missing folder; only a one-task (MSE-Adapter) recipe reads arrow
    label = _arrow_splits(path, "data.paths.dataset")["train"].features.get("label")
    task = label_task(label, f"data.paths.dataset: {path}")
    (declared,) = recipe.tasks
    for stage in recipe.stages:
        stage.rates = {task: stage.rates[declared]}


def label_task(label: datasets.features.FeatureType | None, where: str) -> str:
    """``er`` for a ``ClassLabel`` label (classification over its names), ``msa`` for a numeric one."""
    if isinstance(label, datasets.ClassLabel):
        return "er"
    if isinstance(label, datasets.Value) and (
        label.dtype.startswith(("float", "int", "uint")) or label.dtype == "double"
    ):
        return "msa"
    raise ValueError(
        f"{where}: the 'label' column is {label}; expected a ClassLabel (classification) or a number "
        "(regression)"
    )


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
        label_feature = next(iter(self.pools.values())).features.get("label")
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

        path = Path(paths["pickle"]).expanduser()
        if path.is_dir():
            splits = _arrow_splits(path, "data.paths.pickle")
        else:
            splits = load_mmsa_pickle(path, **options)
        return _multimodal_task_data(task, splits, "data.paths.pickle")
    if source == "erc":
        return _erc(task, paths, options)
    if source == "arrow":
        return _multimodal_task_data(
            task, _arrow_splits(Path(paths["dataset"]), "data.paths.dataset"), "data"
        )
    if source == "emt_synthetic":
        from m2se.emt.synthetic import make_emt_dataset

        num_eval = options.pop("num_eval_per_task", 0)
        records = make_emt_dataset(
            work_dir / "synthetic_emt", num_per_task=options.pop("num_per_task", 20) + 2 * num_eval, **options
        )
        return _hold_out_per_task(records, num_eval)
    from m2se.data.emt import load_emt

    parts = []
    for task_name in recipe.tasks:
        records = load_emt(paths[task_name])
        _check_media(records, paths[task_name])
        parts.append(records)
    return _hold_out_per_task(datasets.concatenate_datasets(parts), options.get("num_eval_per_task", 0))


def _arrow_splits(path: Path, where: str) -> dict[str, datasets.Dataset]:
    """The train / validation / test splits of an Arrow ``DatasetDict`` folder (``valid`` counts as
    validation)."""
    try:
        loaded = datasets.load_from_disk(str(path))
    except FileNotFoundError as error:
        raise ValueError(
            f"{where}: {path} is not a saved Arrow DatasetDict folder ({error}); expected the output of "
            "python -m m2se.features extract or python -m m2se.data convert"
        ) from error
    if not isinstance(loaded, datasets.DatasetDict):
        raise ValueError(
            f"{where}: {path} holds one Arrow dataset; expected a DatasetDict folder with splits "
            f"{list(ARROW_SPLITS)}"
        )
    splits = {("validation" if name == "valid" else name): rows for name, rows in loaded.items()}
    missing = [name for name in ARROW_SPLITS if name not in splits]
    if missing:
        raise ValueError(f"{where}: {path} lacks the split(s) {missing}; it has {sorted(loaded)}")
    return splits


def _multimodal_task_data(task: str, splits: dict[str, datasets.Dataset], where: str) -> TaskData:
    """Train / validation / test rows of the standard multimodal schema, checked against ``task``."""
    label = splits["train"].features.get("label")
    is_classification = isinstance(label, datasets.ClassLabel)
    if is_classification != (task == "er"):
        kind = "class labels (ClassLabel)" if is_classification else f"labels of type {label}"
        expected = "ER (rates {er: ...})" if is_classification else "MSA (rates {msa: ...})"
        raise ValueError(
            f"{where}: the rows have {kind}, which is an {expected} data set; the recipe trains {task!r}"
        )
    return TaskData({task: splits["train"]}, splits["validation"], splits["test"])


def _erc(task: str, paths: dict[str, str], options: dict) -> TaskData:
    """ERC pickles or converted Arrow folders, one per split, all with the same class names."""
    from m2se.data.pickles import ERC_LABEL_NAMES, load_erc_pickle

    requested = options.get("label_names")
    if requested is None and "dataset" in options:
        if options["dataset"].lower() not in ERC_LABEL_NAMES:
            raise ValueError(
                f"data.options.dataset: expected one of {sorted(ERC_LABEL_NAMES)}, got {options['dataset']!r}"
            )
        requested = ERC_LABEL_NAMES[options["dataset"].lower()]
    splits = {}
    for split in ("train", "valid", "test"):
        path = Path(paths[split]).expanduser()
        if path.is_dir():
            rows = datasets.load_from_disk(str(path))
            label = rows.features.get("label") if isinstance(rows, datasets.Dataset) else None
            if not isinstance(label, datasets.ClassLabel):
                raise ValueError(
                    f"data.paths.{split}: {path} is not a converted ERC dataset (one Arrow dataset whose "
                    f"'label' is a ClassLabel); got {type(rows).__name__} with label {label}"
                )
            if requested is not None and list(label.names) != list(requested):
                raise ValueError(
                    f"data.paths.{split}: {path} has the classes {label.names}, the recipe names "
                    f"{list(requested)} (data.options); remove data.options.label_names / dataset or make "
                    "them agree"
                )
        else:
            rows = load_erc_pickle(
                path,
                options.get("dataset", path.stem),
                allow_pickle=options.get("allow_pickle", False),
                label_names=requested,
            )
        splits[split] = rows
    names = {split: rows.features["label"].names for split, rows in splits.items()}
    if len({tuple(value) for value in names.values()}) != 1:
        raise ValueError(f"data.paths: the ERC splits have different classes: {names}")
    return TaskData({task: splits["train"]}, splits["valid"], splits["test"])


def _check_media(records: datasets.Dataset, path: str | os.PathLike) -> None:
    """Every image / video a record names exists, so a missing file is found before any model is built."""
    for index, (images, videos) in enumerate(zip(records["images"], records["videos"], strict=True)):
        for kind, media in (("image", images), ("video", videos)):
            for media_path in media:
                if not os.path.isfile(media_path):
                    raise FileNotFoundError(
                        f"{path} record {index}: {kind} file not found: {media_path} (relative paths are "
                        f"read from the working directory {os.getcwd()})"
                    )


def _synthetic_multimodal(task: str, options: dict) -> TaskData:
    from m2se.data.synthetic import make_multimodal_dataset

    generator_options = {
        key: value for key, value in options.items() if key not in SPLIT_OPTIONS["synthetic"]
    }
    if "value_range" in generator_options:
        generator_options["value_range"] = tuple(generator_options["value_range"])
    kind = "regression" if task == "msa" else "classification"
    seed = generator_options.pop("seed", 0)
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
