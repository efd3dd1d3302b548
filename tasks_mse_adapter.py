"""The tasks of MSE-Adapter: task types, prompts, the released label format, the answer sets, the metric sets
and the paper's presets (as data).

`MSEAdapterProcessor` owns a task (it validates it with `check_task`); `MSEAdapterConfig` holds only the
architecture. A paper preset names fields of both: each class takes the fields it owns.

Hub remote code: this module imports only the standard library and the other `*_mse_adapter.py` modules.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

try:
    from .validation_mse_adapter import describe_value, is_integer, is_real_number
except ImportError:  # imported as a top-level module (installed package or checkout), not as Hub code
    from validation_mse_adapter import describe_value, is_integer, is_real_number

TASK_TYPES = ("regression", "classification")
LANGUAGES = ("en", "zh")
# Which metrics score a task (m2se.training.evaluation): MOSI/MOSEI regression metrics (binary / 7-class
# accuracy, F1, MAE, correlation), CH-SIMS / SIMS-V2 ones (2/3/5-class accuracy, MAE, correlation), or emotion
# classes (accuracy, weighted F1). The first entry of each task type is its default.
METRIC_SETS = {"regression": ("mosei", "sims"), "classification": ("erc",)}

# Marker strings that open and close the multimodal block in the LLM input, per language (paper, section 3).
MULTIMODAL_MARKERS = {"en": ("<Multimodal>", "</Multimodal>"), "zh": ("<多模态>", "</多模态>")}
PROMPT_TEMPLATES = {
    (
        "regression",
        "en",
    ): "Please predict the sentiment intensity of the above multimodal content in the range "
    "[{low}, {high}]. response: The sentiment is",
    ("regression", "zh"): "请对上述多模态内容的情感强度进行预测，范围在[{low}, {high}]之间。响应: 情感为",
    (
        "classification",
        "en",
    ): "Please recognize the emotion of the above multimodal content from the target set "
    "<{label_set}>. response: The emotion is",
    ("classification", "zh"): "请选择适用于上述多模态内容的情绪标签：<{label_set}>。响应: 情绪为",
}

MELD_LABELS = ["neutral", "surprise", "fear", "sadness", "joy", "disgust", "anger"]
CHERMA_LABELS = ["愤怒", "厌恶", "恐惧", "高兴", "平静", "悲伤", "惊奇"]

# Hyper-parameters and tasks of the released code per dataset (PAPER_FACTS.md): the feature widths and LSTM
# sizes are `MSEAdapterConfig` fields, the rest `MSEAdapterProcessor` arguments; with these values
# `default_task_prompt` gives the paper's exact prompts. Per-backbone differences: PAPER_BACKBONE_OVERRIDES.
PAPER_PRESETS: dict[str, dict[str, Any]] = {
    "mosei": dict(
        audio_feature_dim=74,
        video_feature_dim=35,
        audio_hidden_size=64,
        video_hidden_size=32,
        task="regression",
        value_range=(-3.0, 3.0),
        language="en",
        metric_set="mosei",
    ),
    "sims-v2": dict(
        audio_feature_dim=25,
        video_feature_dim=177,
        audio_hidden_size=64,
        video_hidden_size=64,
        task="regression",
        value_range=(-1.0, 1.0),
        language="zh",
        metric_set="sims",
    ),
    "meld": dict(
        audio_feature_dim=64,
        video_feature_dim=64,
        audio_hidden_size=64,
        video_hidden_size=32,
        task="classification",
        label_names=MELD_LABELS,
        language="en",
        metric_set="erc",
    ),
    "cherma": dict(
        audio_feature_dim=1024,
        video_feature_dim=2048,
        audio_hidden_size=32,
        video_hidden_size=16,
        task="classification",
        label_names=CHERMA_LABELS,
        language="zh",
        metric_set="erc",
    ),
}
PAPER_BACKBONES = ("chatglm3", "llama2", "qwen")
PAPER_BACKBONE_OVERRIDES: dict[tuple[str, str], dict[str, Any]] = {
    ("meld", "qwen"): dict(audio_hidden_size=32, video_hidden_size=16, num_pseudo_tokens=2),
}


def paper_preset(dataset: str, backbone: str) -> dict[str, Any]:
    """Every field of the released setting of `dataset` ("mosei", "sims-v2", "meld", "cherma") on the paper's
    `backbone` ("chatglm3", "llama2" or "qwen"), config and processor fields together."""
    if dataset not in PAPER_PRESETS:
        raise ValueError(f"dataset must be one of {sorted(PAPER_PRESETS)}, got {dataset!r}")
    if backbone not in PAPER_BACKBONES:
        raise ValueError(f"backbone must be one of {PAPER_BACKBONES}, got {backbone!r}")
    return {**PAPER_PRESETS[dataset], **PAPER_BACKBONE_OVERRIDES.get((dataset, backbone), {})}


def default_task_prompt(
    task: str,
    language: str,
    label_names: list[str] | None = None,
    value_range: Sequence[float] | None = None,
) -> str:
    """The paper's prompt template for a task and language, filled with the value range or the label set.

    With the `PAPER_PRESETS` values this gives the exact MOSEI, SIMS-V2, MELD and CHERMA prompts.
    """
    template = PROMPT_TEMPLATES[task, language]
    if task == "regression":
        low, high = value_range
        return template.format(low=f"{low:.1f}", high=f"{high:.1f}")
    return template.format(label_set=", ".join(f"{name}:{index}" for index, name in enumerate(label_names)))


def format_regression_label(value: float) -> str:
    """The released label format: one decimal and a sign, also for 0 (`+1.2`, `-0.4`, `+0.0`)."""
    rounded = round(float(value), 1)
    return f"{rounded:+.1f}" if rounded != 0 else "+0.0"


def regression_answers(value_range: Sequence[float]) -> list[str]:
    """Every value the regression grammar can produce: the one-decimal values in `value_range`, ascending."""
    low, high = value_range
    first, last = math.ceil(round(low * 10, 6)), math.floor(round(high * 10, 6))
    return [format_regression_label(step / 10) for step in range(first, last + 1)]


def task_answers(task: str, label_names: list[str] | None, value_range: Sequence[float] | None) -> list[str]:
    """Target text of every admissible answer: the class indices as strings (released format) or every
    one-decimal value of `value_range`."""
    if task == "classification":
        return [str(index) for index in range(len(label_names))]
    return regression_answers(value_range)


def check_task(
    task: Any,
    label_names: Any,
    value_range: Any,
    task_prompt: Any,
    language: Any,
    metric_set: Any,
) -> dict[str, Any]:
    """The task fields checked and completed (default prompt and metric set filled in, value range as floats);
    a TypeError / ValueError naming the field, what was expected and what was received otherwise."""
    for name, value in (("task", task), ("language", language)):
        if not isinstance(value, str):
            raise TypeError(f"{name} must be a string, got {describe_value(value)}")
    for name, value in (("task_prompt", task_prompt), ("metric_set", metric_set)):
        if value is not None and not isinstance(value, str):
            raise TypeError(f"{name} must be a string or None, got {describe_value(value)}")
    if value_range is not None and (
        not isinstance(value_range, (list, tuple)) or not all(map(is_real_number, value_range))
    ):
        raise TypeError(
            f"value_range must be a list [low, high] of numbers, got {describe_value(value_range)}"
        )
    if label_names is not None and (
        not isinstance(label_names, (list, tuple)) or not all(isinstance(name, str) for name in label_names)
    ):
        raise TypeError(f"label_names must be a list of strings, got {describe_value(label_names)}")
    if task not in TASK_TYPES:
        raise ValueError(f"task must be one of {TASK_TYPES}, got {task!r}")
    if language not in LANGUAGES:
        raise ValueError(f"language must be one of {LANGUAGES}, got {language!r}")
    if task == "classification":
        if not label_names:
            raise ValueError("task='classification' needs label_names (the class names), got none")
        if len(set(label_names)) != len(label_names):
            raise ValueError(f"label_names must be unique, got {list(label_names)}")
        label_names, value_range = list(label_names), None
    else:
        if value_range is None or len(value_range) != 2:
            raise ValueError(f"task='regression' needs value_range=(low, high), got {value_range}")
        value_range = [float(bound) for bound in value_range]
        low, high = value_range
        if not (math.isfinite(low) and math.isfinite(high) and low < high):
            raise ValueError(f"value_range must be finite with low < high, got {value_range}")
        if not regression_answers(value_range):
            raise ValueError(f"value_range {value_range} contains no value with one decimal")
        label_names = None
    if metric_set is None:
        metric_set = METRIC_SETS[task][0]
    elif metric_set not in METRIC_SETS[task]:
        raise ValueError(
            f"metric_set of a {task} task must be one of {METRIC_SETS[task]}, got {metric_set!r}"
        )
    if task_prompt is None:
        task_prompt = default_task_prompt(task, language, label_names, value_range)
    return dict(
        task=task,
        label_names=label_names,
        value_range=value_range,
        task_prompt=task_prompt,
        language=language,
        metric_set=metric_set,
    )


def answer_index(label: Any, answers: list[str], label_names: list[str] | None, value_range: Any) -> int:
    """Position of `label` among `answers` (`task_answers`); classification when `label_names` is given.

    A ValueError outside the label set or range, or for a label of the wrong type (a float or bool class, a
    non-number regression target).
    """
    if label_names is not None:
        if isinstance(label, str):
            if label not in label_names:
                raise ValueError(f"label {label!r} is not one of label_names {label_names}")
            return label_names.index(label)
        # A float class (1.0) usually means regression targets were given to a classification processor.
        if not is_integer(label) or not 0 <= label < len(label_names):
            raise ValueError(
                f"class label must be a name in {label_names} or an index in "
                f"[0, {len(label_names) - 1}], got {describe_value(label)}"
            )
        return int(label)
    if not is_real_number(label):
        raise ValueError(f"regression label must be a number in {value_range}, got {describe_value(label)}")
    value = float(label)
    low, high = value_range
    if not math.isfinite(value) or not low <= value <= high:
        raise ValueError(f"regression label must lie in value_range {value_range}, got {value}")
    first, last = float(answers[0]), float(answers[-1])
    return answers.index(format_regression_label(min(max(value, first), last)))
