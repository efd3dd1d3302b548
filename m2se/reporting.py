"""What a training run leaves next to the model: the model card, training curves, a confusion matrix and the
mean and standard deviation of metrics over seeds. ``train_m2se.py`` calls these at the end of a run.

The metric values themselves go to ``eval_results.json`` through ``Trainer.save_metrics``; nothing here writes
that file again. Plots are drawn on ``matplotlib.figure.Figure`` objects, which render with the Agg backend
without touching pyplot's global state, so they work on headless machines and inside training processes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from numbers import Integral
from pathlib import Path
from typing import Any

import numpy as np
from huggingface_hub import EvalResult, ModelCard, ModelCardData
from matplotlib.figure import Figure
from sklearn.metrics import confusion_matrix

from m2se.metrics.validation import check_class_values, check_same_length

# Keys that Trainer.evaluate() adds next to the metrics; they describe the run, not the model.
_TRAINER_BOOKKEEPING_SUFFIXES = ("_runtime", "_samples_per_second", "_steps_per_second")
_TRAINER_SPLIT_PREFIXES = ("eval_", "test_", "predict_")


def _model_index_metrics(metrics: Mapping[str, Any], dataset: str) -> dict[str, float]:
    """Strip the Trainer's split prefix, drop its bookkeeping keys and check that every value is a number."""
    cleaned: dict[str, float] = {}
    for key, value in metrics.items():
        if key == "epoch" or key.endswith(_TRAINER_BOOKKEEPING_SUFFIXES):
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
            raise TypeError(
                f"metrics[{dataset!r}][{key!r}] must be a number; got {type(value).__name__} {value!r}"
            )
        name = next((key[len(p) :] for p in _TRAINER_SPLIT_PREFIXES if key.startswith(p)), key)
        cleaned[name] = float(value)
    if not cleaned:
        raise ValueError(f"metrics[{dataset!r}] holds no metric; got keys {sorted(metrics)}")
    return cleaned


def _default_usage(model_id: str) -> str:
    return (
        "```python\n"
        "from transformers import AutoModel, AutoProcessor\n\n"
        f'model = AutoModel.from_pretrained("{model_id}", trust_remote_code=True)\n'
        f'processor = AutoProcessor.from_pretrained("{model_id}", trust_remote_code=True)\n'
        "```"
    )


def write_model_card(
    output_dir: str | Path,
    *,
    model_name: str,
    base_model: str,
    datasets: Sequence[str],
    recipe_name: str,
    task: str,
    metrics: Mapping[str, Mapping[str, float]] | None,
    task_name: str | None = None,
    eval_split: str = "test",
    model_id: str | None = None,
    usage: str | None = None,
    description: str | None = None,
    training_summary: str | None = None,
    library_name: str = "transformers",
    pipeline_tag: str | None = None,
    tags: Sequence[str] = (),
    license: str = "apache-2.0",
    language: str | Sequence[str] | None = None,
) -> Path:
    """Write ``output_dir/README.md``: YAML metadata with a ``model-index`` plus a short description.

    Built with ``huggingface_hub.ModelCard``/``ModelCardData``/``EvalResult`` entirely offline
    (``card.validate()`` would need the Hub and is not called).

    Args:
        output_dir: the run's output folder (must exist).
        model_name: the name shown on the Hub and in ``model-index``.
        base_model: Hub id or path of the backbone, e.g. ``"HuggingFaceTB/SmolLM2-135M-Instruct"``.
        datasets: training data set ids or names.
        recipe_name: the ``train_m2se.py`` recipe that produced the model.
        task: Hub task id of the ``model-index`` results, e.g. ``"text-classification"``.
        metrics: evaluation data set -> its metrics, e.g. ``{"CMU-MOSEI": {"MAE": 0.51, "Corr": 0.79}}``.
            Output of ``Trainer.evaluate()`` can be passed as is: the ``eval_``/``test_``/``predict_`` prefix
            is removed and ``epoch``/``*_runtime``/``*_per_second`` are dropped. Non-finite values (e.g.
            ``Corr`` of a constant predictor) appear in the card's table but not in ``model-index``, which
            needs numbers. None: the run had no held-out rows; the card says so and has no ``model-index``.
        task_name: readable task name, e.g. ``"Multimodal sentiment analysis"`` (defaults to ``task``).
        eval_split: the split the metrics were computed on.
        model_id: Hub id or path used in the loading snippet (defaults to ``model_name``).
        usage: Markdown shown under "How to load"; defaults to ``AutoModel``/``AutoProcessor`` with
            ``trust_remote_code=True``.
        description, training_summary: optional Markdown paragraphs (e.g. the curriculum stages).
        library_name, pipeline_tag, tags, license, language: card metadata.

    Returns:
        The path of the written README.md.
    """
    output_path = Path(output_dir)
    if not output_path.is_dir():
        raise FileNotFoundError(f"output_dir must be an existing folder; got {str(output_path)!r}")
    if isinstance(datasets, str) or not datasets:
        raise ValueError(f"datasets must be a non-empty list of data set names; got {datasets!r}")
    if metrics is not None and (not isinstance(metrics, Mapping) or not metrics):
        raise ValueError(
            f"metrics must map each evaluation data set to its metrics (or be None); got {metrics!r}"
        )
    for dataset, values in (metrics or {}).items():
        if not isinstance(values, Mapping):
            raise TypeError(
                f"metrics[{dataset!r}] must be a dict of metric name -> value (metrics are keyed by "
                f"evaluation data set first); got {type(values).__name__} {values!r}"
            )
    cleaned = {dataset: _model_index_metrics(values, dataset) for dataset, values in (metrics or {}).items()}

    eval_results = [
        EvalResult(
            task_type=task,
            task_name=task_name or task,
            dataset_type=dataset,
            dataset_name=dataset,
            dataset_split=eval_split,
            metric_type=name,
            metric_name=name,
            metric_value=value,
        )
        for dataset, values in cleaned.items()
        for name, value in values.items()
        if math.isfinite(value)
    ]
    card_data = ModelCardData(
        model_name=model_name,
        base_model=base_model,
        datasets=list(datasets),
        library_name=library_name,
        pipeline_tag=pipeline_tag,
        tags=sorted({"m2se", "affective-computing", f"recipe:{recipe_name}", *tags}),
        license=license,
        language=language,
        eval_results=eval_results or None,
    )
    results_tables = (
        "\n\n".join(
            f"**{dataset}** ({eval_split} split)\n\n| metric | value |\n|---|---|\n"
            + "\n".join(f"| {name} | {value:.4f} |" for name, value in values.items())
            for dataset, values in cleaned.items()
        )
        or "No held-out metrics: the run held out no rows to score the model on."
    )
    sections = [
        f"# {model_name}",
        description
        or f"Fine-tuned from `{base_model}` with `train_m2se.py --recipe {recipe_name}` on "
        + ", ".join(f"`{dataset}`" for dataset in datasets)
        + ".",
        f"## Evaluation\n\n{results_tables}",
        f"## How to load\n\n{usage or _default_usage(model_id or model_name)}",
    ]
    if training_summary:
        sections.append(f"## Training\n\n{training_summary}")
    card = ModelCard(f"---\n{card_data.to_yaml()}\n---\n\n" + "\n\n".join(sections) + "\n")
    readme = output_path / "README.md"
    card.save(readme)
    return readme


def _loss_keys(log_history: Sequence[Mapping[str, Any]]) -> list[str]:
    keys = {
        key
        for entry in log_history
        for key in entry
        if key in ("loss", "eval_loss") or key.startswith("loss_")
    }
    return sorted(keys, key=lambda key: (key != "loss", key))


def plot_training_curves(
    log_history: Sequence[Mapping[str, Any]],
    stage_boundaries: Sequence[tuple[str, int]],
    path: str | Path,
    *,
    figsize: tuple[float, float] = (10.0, 7.0),
    dpi: int = 100,
) -> Path:
    """Plot each loss (``loss``, per-task ``loss_<task>``, ``eval_loss``) and the learning rate over steps.

    Args:
        log_history: ``trainer.state.log_history``; entries without a ``step`` are ignored.
        stage_boundaries: ``(stage name, first global step)`` per curriculum stage, in order; each is drawn
            as a dashed vertical line with its name. Empty for a single-stage run.
        path: the PNG to write (``training_curves.png``); its size is ``figsize * dpi`` pixels.

    Raises:
        ValueError: no loss in the log history, or stage steps that are negative or not increasing.
    """
    if not isinstance(log_history, Sequence) or any(not isinstance(entry, Mapping) for entry in log_history):
        raise TypeError(
            f"log_history must be a list of dicts (trainer.state.log_history); got {log_history!r:.200}"
        )
    stepped = [entry for entry in log_history if "step" in entry]
    loss_keys = _loss_keys(stepped)
    if not loss_keys:
        raise ValueError(
            f"log_history holds no 'loss', 'loss_<task>' or 'eval_loss' entry with a 'step'; got keys "
            f"{sorted({key for entry in log_history for key in entry})}"
        )
    steps = [step for _, step in stage_boundaries]
    if any(
        isinstance(step, bool) or not isinstance(step, Integral) or step < 0 for step in steps
    ) or steps != sorted(set(steps)):
        raise ValueError(
            f"stage_boundaries must have increasing non-negative int steps; got {list(stage_boundaries)}"
        )

    figure = Figure(figsize=figsize, dpi=dpi)
    loss_axes, rate_axes = figure.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    for key in loss_keys:
        points = [(entry["step"], entry[key]) for entry in stepped if key in entry]
        # Evaluation losses are few points on top of dense training curves: draw them as dashed, marked lines.
        style = (
            {"linestyle": "--", "marker": "o"}
            if key == "eval_loss"
            else {"marker": "." if len(points) < 50 else None}
        )
        loss_axes.plot(*zip(*points, strict=True), label=key, **style)
    rate_points = [(entry["step"], entry["learning_rate"]) for entry in stepped if "learning_rate" in entry]
    if rate_points:
        rate_axes.plot(*zip(*rate_points, strict=True), color="black")
    for name, step in stage_boundaries:
        for axes in (loss_axes, rate_axes):
            axes.axvline(step, color="grey", linestyle="--", linewidth=1)
        loss_axes.annotate(
            name,
            (step, 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(3, -12),
            textcoords="offset points",
            fontsize=9,
            color="dimgrey",
        )
    loss_axes.set_ylabel("loss")
    loss_axes.legend(loc="upper right")
    loss_axes.grid(alpha=0.3)
    rate_axes.set_ylabel("learning rate")
    rate_axes.set_xlabel("global step")
    rate_axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, format="png")
    return Path(path)


def plot_confusion_matrix(
    predictions: Sequence[str | int | None],
    references: Sequence[str | int],
    label_names: Sequence[str],
    path: str | Path,
    *,
    figsize: tuple[float, float] = (7.0, 6.0),
    dpi: int = 100,
) -> np.ndarray:
    """Draw the confusion matrix (rows: reference, columns: prediction, cells: counts) as a PNG.

    Values are class names from ``label_names`` or indices into it, as for ``m2se.metrics.erc_metrics``;
    unparsable predictions (None) get their own ``unparsable`` column, so every sample is shown.

    Returns:
        The drawn counts: one row per label name, one column per label name plus an ``unparsable`` column
        when a prediction is None.
    """
    check_same_length(predictions, references)
    if isinstance(label_names, str) or not label_names:
        raise ValueError(f"label_names must be a non-empty list of class names; got {label_names!r}")
    reference_kind = check_class_values("references", references, label_names, allow_none=False)
    prediction_kind = check_class_values("predictions", predictions, label_names, allow_none=True)
    if prediction_kind not in (None, reference_kind):
        raise TypeError(
            f"predictions are {prediction_kind} values but references are {reference_kind} values"
        )
    names = list(label_names)
    to_index = (lambda value: value) if reference_kind == "int" else names.index
    unparsable = len(names)
    encoded_predictions = [unparsable if value is None else to_index(value) for value in predictions]
    columns = [*names, "unparsable"] if unparsable in encoded_predictions else names
    counts = confusion_matrix(
        [to_index(value) for value in references], encoded_predictions, labels=range(len(columns))
    )[: len(names)]

    figure = Figure(figsize=figsize, dpi=dpi)
    axes = figure.subplots()
    image = axes.imshow(counts, cmap="Blues")
    figure.colorbar(image, ax=axes)
    threshold = counts.max() / 2
    for row, column in np.ndindex(counts.shape):
        axes.text(
            column,
            row,
            str(counts[row, column]),
            ha="center",
            va="center",
            color="white" if counts[row, column] > threshold else "black",
        )
    axes.set_xticks(range(len(columns)), columns, rotation=45, ha="right")
    axes.set_yticks(range(len(names)), names)
    axes.set_xlabel("prediction")
    axes.set_ylabel("reference")
    figure.tight_layout()
    figure.savefig(path, format="png")
    return counts


def summarize_seeds(results: Mapping[int, Mapping[str, float]]) -> tuple[dict[str, dict[str, float]], str]:
    """Mean and sample standard deviation (ddof=1) of each metric over seeds, and a Markdown table.

    Args:
        results: seed -> that run's metrics; every seed must report the same metric names.

    Returns:
        ``({metric: {"mean": ..., "std": ...}}, table)``. The table has one row per metric and the columns
        ``metric``, one per seed, ``mean``, ``std``. With a single seed ``std`` is NaN (a sample standard
        deviation needs two values). A NaN value in any seed makes that metric's mean and std NaN: nothing is
        dropped silently.
    """
    if not isinstance(results, Mapping) or not results:
        raise ValueError(f"results must map each seed to its metrics; got {results!r}")
    seeds = list(results)
    if any(isinstance(seed, bool) or not isinstance(seed, int) for seed in seeds):
        raise TypeError(f"seeds must be ints; got {seeds}")
    metric_names = list(results[seeds[0]])
    for seed in seeds[1:]:
        if set(results[seed]) != set(metric_names):
            raise ValueError(
                f"every seed must report the same metrics; seed {seeds[0]} has {sorted(metric_names)}, "
                f"seed {seed} has {sorted(results[seed])}"
            )
    values = {}
    for name in metric_names:
        column = [results[seed][name] for seed in seeds]
        if any(isinstance(value, bool) or not isinstance(value, (int, float, np.number)) for value in column):
            raise TypeError(f"metric {name!r} must be numbers for every seed; got {column}")
        values[name] = np.asarray(column, dtype=np.float64)
    summary = {
        name: {
            "mean": float(np.mean(column)),
            "std": float(np.std(column, ddof=1)) if len(column) > 1 else float("nan"),
        }
        for name, column in values.items()
    }
    header = "| metric | " + " | ".join(f"seed {seed}" for seed in seeds) + " | mean | std |"
    rule = "|---" * (len(seeds) + 3) + "|"
    rows = [
        f"| {name} | "
        + " | ".join(f"{value:.4f}" for value in values[name])
        + f" | {summary[name]['mean']:.4f} | {summary[name]['std']:.4f} |"
        for name in metric_names
    ]
    return summary, "\n".join([header, rule, *rows])
