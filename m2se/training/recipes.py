"""Training recipes: one YAML file per experiment (model, data, curriculum stages, hyper-parameters).

A recipe is loaded into the :class:`Recipe` dataclass tree and validated before anything is built: unknown
keys, values of the wrong type, unknown task names, negative or all-zero sampling rates and missing data paths
raise a ``ValueError`` / ``TypeError`` / ``FileNotFoundError`` that names the field, what was expected and
what was given.

Any value can be overridden with ``key.path=value`` strings (``stages.1.rates.msa=0.05``,
``model.lora.r=16``); the value is parsed as YAML, so numbers, booleans, lists and mappings work.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from m2se.emt.stage import FILE_ONLY_FIELDS, Stage
from m2se.emt.templates import EMT_TASKS

RECIPES_DIR = Path(__file__).resolve().parents[1] / "recipes"  # package data: found after `pip install .`
DEFAULT_RECIPE = "demo"

# MSE-Adapter trains one of the EMT tasks "msa" (regression) or "er" (classification); EmoVerse all five.
MODEL_KINDS = ("mse_adapter", "emoverse")
DATA_SOURCES = ("synthetic", "mmsa", "erc", "arrow", "emt_synthetic", "emt")


@dataclass
class ModelRecipe:
    """Which model to build.

    ``backbone`` is ``"smollm2"`` (the offline SmolLM2-135M-Instruct), ``"tiny-llama"`` (a seeded 2-layer LM
    built from a config, for tests), a local folder or a Hub id. ``config`` holds extra keyword arguments of
    the model's configuration class (``MSEAdapterConfig`` / ``EmoVerseConfig``); ``lora`` the LoRA settings of
    EmoVerse (``r``, ``alpha``, ``dropout``, ``target_modules``; the ``EmoVerseConfig`` ``lora_*`` fields).
    """

    kind: str
    backbone: str
    config: dict[str, Any] = field(default_factory=dict)
    lora: dict[str, Any] = field(default_factory=dict)
    vision_backbone: str | None = None


@dataclass
class DataRecipe:
    """Where the samples come from.

    ``source``: ``synthetic`` (``m2se.data.synthetic.make_multimodal_dataset``), ``mmsa`` (an MMSA pickle or
    its converted Arrow folder), ``erc`` (MELD/CHERMA pickles or their Arrow folders), ``arrow`` (one Arrow
    ``DatasetDict`` folder), ``emt_synthetic`` (``m2se.emt.synthetic.make_emt_dataset``) or ``emt`` (EMT JSON
    files per task). ``paths`` maps a split (MSE-Adapter) or a task (EMT) to a file or folder; ``options``
    holds the generator / loader keyword arguments (e.g. ``num_train``, ``num_eval``, ``audio_dim``,
    ``label_names``). Details per source: ``m2se.training.data``.
    """

    source: str
    paths: dict[str, str] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class EvaluationRecipe:
    """Held-out evaluation and early stopping.

    ``metric`` is a key of the task's ``m2se.metrics`` result (``MAE``, ``weighted_f1`` ...); ``patience``
    None disables early stopping. ``max_samples`` caps the evaluation set (generation is the slow part).
    """

    metric: str | None = None
    greater_is_better: bool = False
    patience: int | None = None
    max_samples: int | None = None
    max_new_tokens: int = 16


@dataclass
class Recipe:
    """A whole experiment. ``training`` holds ``TrainingArguments`` values (command-line flags win)."""

    name: str
    model: ModelRecipe
    data: DataRecipe
    stages: list[Stage]  # name, rates, epochs, budget (m2se.emt.stage)
    description: str = ""
    training: dict[str, Any] = field(default_factory=dict)
    evaluation: EvaluationRecipe = field(default_factory=EvaluationRecipe)
    seeds: list[int] = field(default_factory=list)
    # Re-start warm-up + cosine decay at every stage boundary, as two separate runs of the paper would.
    schedule_per_stage: bool = True
    # Off by default: the paper mentions difficulty weighting but gives no formula (see trainer_callbacks).
    task_difficulty_weighting: bool = False
    difficulty_temperature: float = 1.0

    @property
    def tasks(self) -> list[str]:
        """Every task that any stage samples with a positive rate, in ``EMT_TASKS`` order."""
        used = {task for stage in self.stages for task, rate in stage.rates.items() if rate > 0}
        return [task for task in EMT_TASKS if task in used]


def resolve_recipe_path(name_or_path: str | Path) -> Path:
    """A bundled recipe name (``demo``, ``tiny_mse_adapter`` ...) or a path to a YAML file."""
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml"):
        if not candidate.is_file():
            raise FileNotFoundError(f"recipe file {candidate} does not exist")
        return candidate
    bundled = RECIPES_DIR / f"{name_or_path}.yaml"
    if not bundled.is_file():
        raise ValueError(
            f"unknown recipe {str(name_or_path)!r}: expected one of {available_recipes()} or a path to a "
            ".yaml file"
        )
    return bundled


def available_recipes() -> list[str]:
    return sorted(path.stem for path in RECIPES_DIR.glob("*.yaml"))


def load_recipe(
    name_or_path: str | Path, overrides: list[str] | None = None, check_paths: bool = True
) -> Recipe:
    """Read, override (``key.path=value``) and validate a recipe.

    ``check_paths=False`` skips the existence check of ``data.paths`` (to inspect a recipe whose data lives on
    another machine).
    """
    path = resolve_recipe_path(name_or_path)
    with open(path, encoding="utf-8") as handle:
        raw = yaml.safe_load(handle)
    if not isinstance(raw, dict):
        raise TypeError(f"recipe {path} must be a YAML mapping, got {type(raw).__name__}")
    for override in overrides or []:
        apply_override(raw, override)
    recipe = _build(Recipe, raw, "")
    validate_recipe(recipe, check_paths=check_paths)
    return recipe


def apply_override(raw: dict[str, Any], override: str) -> None:
    """Set ``raw[a][b][c] = value`` for ``"a.b.c=value"``; list items are addressed by index
    (``stages.1``)."""
    key_path, sep, value_text = override.partition("=")
    if not sep or not key_path:
        raise ValueError(f"a recipe override must look like key.path=value, got {override!r}")
    keys = key_path.split(".")
    node: Any = raw
    for depth, key in enumerate(keys[:-1]):
        node = _child(node, key, ".".join(keys[: depth + 1]))
    last = keys[-1]
    try:
        value = yaml.safe_load(value_text)
    except yaml.YAMLError as error:
        problem = " ".join(str(getattr(error, "problem", None) or error).split())
        raise ValueError(
            f"override {key_path}: {value_text!r} is not a valid YAML value ({problem}); quote strings and "
            "close brackets, e.g. key=[1, 2]"
        ) from error
    if isinstance(node, list):
        node[_list_index(node, last, key_path)] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise TypeError(f"cannot override {key_path!r}: its parent is a {type(node).__name__}, not a mapping")


def _child(node: Any, key: str, where: str) -> Any:
    if isinstance(node, list):
        return node[_list_index(node, key, where)]
    if isinstance(node, dict):
        return node.setdefault(key, {})
    raise TypeError(f"cannot override below {where!r}: it is a {type(node).__name__}, not a mapping or list")


def _list_index(node: list, key: str, where: str) -> int:
    if not key.isdigit() or int(key) >= len(node):
        raise ValueError(f"override {where!r}: expected a list index below {len(node)}, got {key!r}")
    return int(key)


def _build(cls: type, raw: Any, where: str) -> Any:
    """Build dataclass ``cls`` from a mapping, checking every key and the type of every value."""
    if not isinstance(raw, dict):
        raise TypeError(f"{where or 'recipe'} must be a mapping, got {type(raw).__name__}: {raw!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ValueError(
            f"{where or 'recipe'}: unknown field(s) {unknown}; expected some of {sorted(fields)}"
        )
    missing = [
        name
        for name, f in fields.items()
        if name not in raw and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ValueError(f"{where or 'recipe'}: missing required field(s) {missing}")
    prefix = f"{where}." if where else ""
    values = {name: _convert(hints[name], value, prefix + name) for name, value in raw.items()}
    try:
        return cls(**values)
    except ValueError as error:  # a dataclass that checks itself (Stage) names the field relative to itself
        raise ValueError(f"{prefix}{error}") from None


def _convert(annotation: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        non_none = [arg for arg in args if arg is not type(None)]
        return _convert(non_none[0], value, where)
    if dataclasses.is_dataclass(annotation):
        return _build(annotation, value, where)
    if origin is list:
        if not isinstance(value, list):
            raise TypeError(f"{where}: expected a list, got {type(value).__name__} {value!r}")
        return [_convert(args[0], item, f"{where}.{index}") for index, item in enumerate(value)]
    if origin is tuple:  # a Stage's paths: one path or a list, checked by the Stage
        return value
    if origin is dict:
        if not isinstance(value, dict):
            raise TypeError(f"{where}: expected a mapping, got {type(value).__name__} {value!r}")
        return {str(key): _convert(args[1], item, f"{where}.{key}") for key, item in value.items()}
    if annotation is Any:
        return value
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    # bool is an int subclass: a `true` where a number is expected is a mistake, not a 1.
    if not isinstance(value, annotation) or (annotation in (int, float) and isinstance(value, bool)):
        raise TypeError(f"{where}: expected {annotation.__name__}, got {type(value).__name__} {value!r}")
    return value


def validate_recipe(recipe: Recipe, check_paths: bool = True) -> None:
    """Semantic checks that the type checks cannot express; raises before any data or model is built."""
    from m2se.training.data import check_data_recipe
    from m2se.training.models import check_model_recipe

    if recipe.model.kind not in MODEL_KINDS:
        raise ValueError(f"model.kind: expected one of {MODEL_KINDS}, got {recipe.model.kind!r}")
    if recipe.data.source not in DATA_SOURCES:
        raise ValueError(f"data.source: expected one of {DATA_SOURCES}, got {recipe.data.source!r}")
    if not recipe.stages:
        raise ValueError("stages: expected at least one stage, got none")
    for index, stage in enumerate(recipe.stages):
        for name in FILE_ONLY_FIELDS:
            if getattr(stage, name) not in (None, {}, ()):
                raise ValueError(
                    f"stages.{index}.{name}: a recipe stage draws from the recipe's data section with the "
                    f"run's seed, leaving out the samples of earlier stages; {list(FILE_ONLY_FIELDS)} are "
                    f"fields of a stage file (python -m m2se.emt mix); got {getattr(stage, name)!r}"
                )
    if recipe.model.kind == "mse_adapter":
        tasks = recipe.tasks
        if len(recipe.stages) != 1 or len(tasks) != 1 or tasks[0] not in ("msa", "er"):
            raise ValueError(
                "an mse_adapter recipe trains one task (msa or er) in one stage; got "
                f"{len(recipe.stages)} stage(s) with tasks {tasks}"
            )
    max_samples = recipe.evaluation.max_samples
    if max_samples is not None and max_samples < 1:
        raise ValueError(
            f"evaluation.max_samples: expected an integer >= 1 (or null for every row), got {max_samples}"
        )
    if recipe.evaluation.patience is not None and recipe.evaluation.metric is None:
        raise ValueError(
            "evaluation.patience is set but evaluation.metric is not: early stopping needs a metric"
        )
    check_model_recipe(recipe)
    check_data_recipe(recipe)
    metric = recipe.evaluation.metric
    if metric is not None:
        from m2se.training.evaluation import metric_names

        names = metric_names(recipe.model.kind, recipe.tasks, recipe.model.config.get("metric_set"))
        if metric not in names:
            close = difflib.get_close_matches(metric, names, n=1, cutoff=0.5) or [
                name for name in names if name.casefold() == metric.casefold()
            ]
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ValueError(
                f"evaluation.metric: {metric!r} is not a metric of this recipe's evaluation; {hint}"
                f"expected one of {names}"
            )
    for key, data_path in recipe.data.paths.items() if check_paths else ():
        resolved = Path(data_path).expanduser()
        if not resolved.exists():
            raise FileNotFoundError(f"data.paths.{key}: {data_path} does not exist (resolved to {resolved})")


def check_known_keys(given: Iterable[str], valid: Iterable[str], where: str, owner: str) -> None:
    """Raise a ``ValueError`` for the first key of ``given`` not in ``valid``, naming ``where.key``, the
    closest valid key and every valid key (``owner`` says whose keys they are)."""
    valid = sorted(valid)
    for key in given:
        if key not in valid:
            close = difflib.get_close_matches(key, valid, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ValueError(f"{where}.{key}: unknown key for {owner}; {hint}expected one of {valid}")


def recipe_to_dict(recipe: Recipe) -> dict[str, Any]:
    """The resolved recipe as plain data (saved next to checkpoints to recognise the run on resume)."""
    content = dataclasses.asdict(recipe)
    for stage in content["stages"]:  # never set in a recipe (validate_recipe), as in the recipe file
        for name in FILE_ONLY_FIELDS:
            del stage[name]
    return content
