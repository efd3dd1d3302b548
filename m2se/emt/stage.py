"""The curriculum stage: one type for a training recipe's ``stages`` and for the stage files of
``python -m m2se.emt mix``, checked in one place.

What a stage draws (both uses):

* ``rates``: EMT task -> the fraction in [0, 1] of the task's remaining pool (samples no earlier stage
  used) to draw; at least one rate is positive.
* ``budget``: the number of distinct samples; every count is scaled by one factor down to it (null: no cap).
  The drawing rules are ``m2se.emt.mix``'s.

A recipe stage also says how long it trains, and draws from the recipe's ``data`` with the run's seed:

* ``epochs``: the stage's number of epochs (null: the run's ``num_train_epochs``).

A stage file also says where its samples come from (``m2se/resources/stage*.yaml``):

* ``data``: task -> EMT file(s); ``exclude``: EMT files whose ids are not drawn again (e.g. stage 1's
  mixture); ``seed``: the draw's seed (null: 0).

Every error names the field (``rates.msa``, ``budget`` ...), what was expected and what was received; the
recipe loader puts the stage's place in front (``stages.1.rates.msa``), the stage-file loader the file.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from m2se.emt.templates import EMT_TASKS

# The fields only a stage file uses, and the one only a recipe uses (see the module docstring).
FILE_ONLY_FIELDS = ("seed", "data", "exclude")
RECIPE_ONLY_FIELDS = ("epochs",)


def _describe(value: Any) -> str:
    return f"{type(value).__name__} {value!r:.200}"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_rates(rates: Any) -> dict[str, float]:
    """``rates`` as task -> float, or a ValueError naming ``rates.<task>``."""
    if not isinstance(rates, Mapping) or not rates:
        raise ValueError(f"rates: expected a non-empty mapping EMT task -> rate, got {_describe(rates)}")
    checked = {}
    for task, rate in rates.items():
        if task not in EMT_TASKS:
            raise ValueError(f"rates.{task}: unknown task {task!r}; expected one of {list(EMT_TASKS)}")
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 <= rate <= 1.0:
            raise ValueError(
                f"rates.{task}: expected a number in [0, 1] (the fraction of the task's remaining pool), "
                f"got {_describe(rate)}"
            )
        checked[task] = float(rate)
    if not any(checked.values()):
        raise ValueError(f"rates: at least one rate must be positive, got {checked}")
    return checked


def check_budget(budget: Any) -> int | None:
    """``budget`` unchanged, or a ValueError naming ``budget``."""
    if budget is not None and (not _is_int(budget) or budget < 1):
        raise ValueError(
            f"budget: expected a positive int (a number of samples) or null, got {_describe(budget)}"
        )
    return budget


def _path_list(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, (list, tuple)) and all(isinstance(item, str) for item in value):
        return tuple(value)
    raise ValueError(f"{where}: expected a path or a list of paths, got {_describe(value)}")


@dataclass
class Stage:
    """One curriculum stage (fields in the module docstring); checked when built."""

    name: str
    rates: dict[str, float]
    budget: int | None = None
    epochs: int | None = None
    seed: int | None = None
    data: dict[str, tuple[str, ...]] = field(default_factory=dict)
    exclude: tuple[str, ...] = ()
    description: str = ""

    def __post_init__(self) -> None:
        for name in ("name", "description"):
            if not isinstance(getattr(self, name), str):
                raise ValueError(f"{name}: expected a string, got {_describe(getattr(self, name))}")
        self.rates = check_rates(self.rates)
        self.budget = check_budget(self.budget)
        if self.epochs is not None and (not _is_int(self.epochs) or self.epochs < 1):
            raise ValueError(f"epochs: expected a positive int or null, got {_describe(self.epochs)}")
        if self.seed is not None and not _is_int(self.seed):
            raise ValueError(f"seed: expected an int or null, got {_describe(self.seed)}")
        if not isinstance(self.data, Mapping):
            raise ValueError(f"data: expected a mapping EMT task -> EMT file(s), got {_describe(self.data)}")
        self.data = {task: _path_list(paths, f"data.{task}") for task, paths in self.data.items()}
        extra = sorted(set(self.data) - set(self.rates))
        if extra:
            raise ValueError(f"data: given for tasks {extra} that have no rate; rates: {sorted(self.rates)}")
        self.exclude = _path_list(self.exclude, "exclude")

    def with_overrides(
        self,
        *,
        data: Mapping[str, Iterable[str]] | None = None,
        exclude: Iterable[str] | None = None,
        budget: int | None = None,
        seed: int | None = None,
    ) -> Stage:
        """A copy with some tasks' files, the exclude files, the budget or the seed replaced."""
        try:
            return replace(
                self,
                data={**self.data, **{task: tuple(paths) for task, paths in (data or {}).items()}},
                exclude=tuple(exclude) if exclude is not None else self.exclude,
                budget=budget if budget is not None else self.budget,
                seed=seed if seed is not None else self.seed,
            )
        except ValueError as error:
            raise ValueError(f"stage {self.name!r} with overrides: {error}") from None
