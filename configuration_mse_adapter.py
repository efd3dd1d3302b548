"""Configuration of MSE-Adapter (Yang, Dong, Qiang; AAAI 2025), a plug-in between audio/video
features and a frozen causal language model.

Hub remote code: this module imports only the standard library, torch and transformers.
"""

from __future__ import annotations

import copy
import math
import numbers
import os
from typing import Any, ClassVar

from transformers import AutoConfig, PretrainedConfig
from transformers.configuration_utils import SubConfigSpec
from transformers.models.auto.configuration_auto import CONFIG_MAPPING
from transformers.utils import CONFIG_NAME

TASK_TYPES = ("regression", "classification")
LANGUAGES = ("en", "zh")
# Integer sizes of the adapter; each must be >= 1.
POSITIVE_INT_FIELDS = (
    "audio_feature_dim",
    "video_feature_dim",
    "audio_hidden_size",
    "video_hidden_size",
    "fusion_size",
    "num_pseudo_tokens",
)

# Marker strings that open and close the multimodal block in the LLM input, per language (paper, section 3).
MULTIMODAL_MARKERS = {"en": ("<Multimodal>", "</Multimodal>"), "zh": ("<多模态>", "</多模态>")}

_EN_REGRESSION_PROMPT = (
    "Please predict the sentiment intensity of the above multimodal content in the range [{low}, {high}]. "
    "response: The sentiment is"
)
_ZH_REGRESSION_PROMPT = "请对上述多模态内容的情感强度进行预测，范围在[{low}, {high}]之间。响应: 情感为"
_EN_CLASSIFICATION_PROMPT = (
    "Please recognize the emotion of the above multimodal content from the target set <{label_set}>. "
    "response: The emotion is"
)
_ZH_CLASSIFICATION_PROMPT = "请选择适用于上述多模态内容的情绪标签：<{label_set}>。响应: 情绪为"

MELD_LABELS = ["neutral", "surprise", "fear", "sadness", "joy", "disgust", "anger"]
CHERMA_LABELS = ["愤怒", "厌恶", "恐惧", "高兴", "平静", "悲伤", "惊奇"]

# Hyper-parameters of the released code per dataset (PAPER_FACTS.md); `default_task_prompt` turns them into
# the paper's exact prompts. Per-backbone differences are in PAPER_BACKBONE_OVERRIDES.
PAPER_PRESETS: dict[str, dict[str, Any]] = {
    "mosei": dict(
        audio_feature_dim=74,
        video_feature_dim=35,
        audio_hidden_size=64,
        video_hidden_size=32,
        task="regression",
        value_range=(-3.0, 3.0),
        language="en",
    ),
    "sims-v2": dict(
        audio_feature_dim=25,
        video_feature_dim=177,
        audio_hidden_size=64,
        video_hidden_size=64,
        task="regression",
        value_range=(-1.0, 1.0),
        language="zh",
    ),
    "meld": dict(
        audio_feature_dim=64,
        video_feature_dim=64,
        audio_hidden_size=64,
        video_hidden_size=32,
        task="classification",
        label_names=MELD_LABELS,
        language="en",
    ),
    "cherma": dict(
        audio_feature_dim=1024,
        video_feature_dim=2048,
        audio_hidden_size=32,
        video_hidden_size=16,
        task="classification",
        label_names=CHERMA_LABELS,
        language="zh",
    ),
}
PAPER_BACKBONES = ("chatglm3", "llama2", "qwen")
PAPER_BACKBONE_OVERRIDES: dict[tuple[str, str], dict[str, Any]] = {
    ("meld", "qwen"): dict(audio_hidden_size=32, video_hidden_size=16, num_pseudo_tokens=2),
}


def default_task_prompt(
    task: str,
    language: str,
    label_names: list[str] | None = None,
    value_range: tuple[float, float] | None = None,
) -> str:
    """The paper's prompt template for a task and language, filled with the value range or the label set.

    With the `PAPER_PRESETS` values this gives the exact MOSEI, SIMS-V2, MELD and CHERMA prompts.
    """
    if task == "regression":
        template = _EN_REGRESSION_PROMPT if language == "en" else _ZH_REGRESSION_PROMPT
        low, high = value_range
        return template.format(low=f"{low:.1f}", high=f"{high:.1f}")
    template = _EN_CLASSIFICATION_PROMPT if language == "en" else _ZH_CLASSIFICATION_PROMPT
    return template.format(label_set=", ".join(f"{name}:{index}" for index, name in enumerate(label_names)))


def describe_value(value: Any) -> str:
    """`value` with its type, for error messages: `'four' (str)`, `4.5 (float)`."""
    return f"{value!r} ({type(value).__name__})"


def is_integer(value: Any) -> bool:
    """An integer (Python or numpy), not a bool: `True` as a size or an index is always a mistake."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_real_number(value: Any) -> bool:
    """An int or float (Python or numpy), not a bool and not complex."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def format_regression_label(value: float) -> str:
    """The released label format: one decimal and a sign, also for 0 (`+1.2`, `-0.4`, `+0.0`)."""
    rounded = round(float(value), 1)
    return f"{rounded:+.1f}" if rounded != 0 else "+0.0"


def regression_answers(value_range: tuple[float, float]) -> list[str]:
    """Every value the regression grammar can produce: the one-decimal values in `value_range`, ascending."""
    low, high = value_range
    first, last = math.ceil(round(low * 10, 6)), math.floor(round(high * 10, 6))
    return [format_regression_label(step / 10) for step in range(first, last + 1)]


class MSEAdapterConfig(PretrainedConfig):
    r"""
    Configuration of [`MSEAdapterModel`] (the plug-in) and [`MSEAdapterForCausalLM`] (plug-in + frozen LLM).

    Args:
        text_config (`dict` or `PretrainedConfig`, *optional*):
            Config of the frozen backbone; a dict needs a `model_type`. For a backbone whose code lives on the
            Hub (`trust_remote_code=True`), the unknown `model_type` is kept as `backbone_model_type` in a
            generic `PretrainedConfig` holding all its fields (enough for the width `hidden_size`). Such a
            backbone is never rebuilt from this config: it is passed as `language_model=` or loaded from
            `base_model_name_or_path` with `language_model_kwargs={"trust_remote_code": True}`.
        base_model_name_or_path (`str`, *optional*):
            Path or Hub id of the backbone; `MSEAdapterForCausalLM.from_pretrained` loads it for adapter-only
            folders.
        audio_feature_dim / video_feature_dim (`int`):
            Feature width of each audio / video frame.
        audio_hidden_size / video_hidden_size (`int`):
            Hidden size of each modality's 1-layer LSTM.
        fusion_size (`int`, defaults to 256):
            Width of the Text-Guide-Mixer fusion space.
        msf_ratios (`list[int]`, defaults to `(8, 32, 16)`):
            The three Multi-Scale-Fusion branches have width `hidden_size // k`.
        num_pseudo_tokens (`int`, defaults to 4):
            Number of pseudo tokens the adapter writes into the LLM input.
        task (`str`, defaults to `"regression"`):
            `"regression"` (sentiment intensity) or `"classification"` (emotion labels).
        label_names (`list[str]`, *optional*):
            Class names, required for classification; the target text of class `i` is `str(i)` (released
            format).
        value_range (`tuple[float, float]`, defaults to `(-3.0, 3.0)`):
            Inclusive range of regression targets; predictions always lie inside it.
        task_prompt (`str`, *optional*):
            Text after the multimodal block; defaults to the paper's prompt for the task and language (see
            `default_task_prompt`).
        language (`str`, defaults to `"en"`):
            `"en"` or `"zh"`: selects the `<Multimodal>` / `<多模态>` markers and the default prompt.
        pseudo_token_id (`int`, *optional*):
            Id of the `<pseudo>` placeholder in the processor's tokenizer. It may lie outside the backbone
            vocabulary: the model never looks it up in the embedding table.
        answer_token_ids (`list[list[int]]`, *optional*):
            Token ids of every admissible answer followed by EOS, in class order (classification) or ascending
            value order (regression): what `predict` decodes over. Filled from the processor by
            `MSEAdapterForCausalLM.from_language_model`.
    """

    model_type = "mse_adapter"
    sub_configs_defaults: ClassVar[dict[str, SubConfigSpec]] = {
        "text_config": SubConfigSpec(config_class=AutoConfig, model_type="llama")
    }

    text_config: dict | PretrainedConfig | None = None
    base_model_name_or_path: str | None = None
    audio_feature_dim: int = 74
    video_feature_dim: int = 35
    audio_hidden_size: int = 64
    video_hidden_size: int = 32
    fusion_size: int = 256
    msf_ratios: list[int] | tuple[int, ...] = (8, 32, 16)
    num_pseudo_tokens: int = 4
    task: str = "regression"
    label_names: list[str] | None = None
    value_range: list[float] | tuple[float, ...] | None = (-3.0, 3.0)
    task_prompt: str | None = None
    language: str = "en"
    pseudo_token_id: int | None = None
    answer_token_ids: list[list[int]] | None = None

    def __post_init__(self, **kwargs):
        if isinstance(self.text_config, PretrainedConfig):
            # The base __post_init__ resets attention settings on sub-configs: never touch a live backbone's
            # config.
            self.text_config = copy.deepcopy(self.text_config)
        if isinstance(self.text_config, dict) and self.text_config.get("model_type") not in CONFIG_MAPPING:
            # A remote-code backbone: keep its fields without needing its code (see the class docstring). The
            # generic config class has no model_type of its own, so the backbone's is kept as a field.
            fields = dict(self.text_config)
            backbone_model_type = fields.pop("model_type", None) or fields.get("backbone_model_type")
            if not backbone_model_type:
                raise ValueError(
                    "text_config given as a dict needs a 'model_type' key (e.g. 'llama'), "
                    f"got keys {sorted(fields)}"
                )
            fields["backbone_model_type"] = backbone_model_type
            self.text_config = PretrainedConfig(**fields)
        super().__post_init__(**kwargs)
        if isinstance(self.base_model_name_or_path, os.PathLike):
            self.base_model_name_or_path = os.fspath(self.base_model_name_or_path)
        self._check_field_types()
        self.msf_ratios = [int(ratio) for ratio in self.msf_ratios]
        if self.value_range is not None:
            self.value_range = [float(bound) for bound in self.value_range]
        if self.label_names is not None:
            self.label_names = list(self.label_names)
        self._validate_adapter_fields()
        if self.task_prompt is None:
            self.task_prompt = default_task_prompt(
                self.task, self.language, self.label_names, self.value_range
            )

    def _check_field_types(self) -> None:
        """TypeError naming the field, the expected type and the value received, for every adapter field.

        Runs when a config is built and when one is loaded (`config.json` holding `"four"` for a size
        arrives here as a str), before any value is compared or converted.
        """
        for name in POSITIVE_INT_FIELDS:
            if not is_integer(getattr(self, name)):
                raise TypeError(
                    f"{name} must be a positive integer, got {describe_value(getattr(self, name))}"
                )
        if not isinstance(self.msf_ratios, (list, tuple)) or not all(map(is_integer, self.msf_ratios)):
            raise TypeError(
                f"msf_ratios must be a list of 3 positive integers, got {describe_value(self.msf_ratios)}"
            )
        if self.value_range is not None and (
            not isinstance(self.value_range, (list, tuple)) or not all(map(is_real_number, self.value_range))
        ):
            raise TypeError(
                f"value_range must be a list [low, high] of numbers, got {describe_value(self.value_range)}"
            )
        if self.label_names is not None and (
            not isinstance(self.label_names, (list, tuple))
            or not all(isinstance(name, str) for name in self.label_names)
        ):
            raise TypeError(f"label_names must be a list of strings, got {describe_value(self.label_names)}")
        for name in ("task", "language"):
            if not isinstance(getattr(self, name), str):
                raise TypeError(f"{name} must be a string, got {describe_value(getattr(self, name))}")
        for name in ("task_prompt", "base_model_name_or_path"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise TypeError(f"{name} must be a string or None, got {describe_value(value)}")
        if self.pseudo_token_id is not None and not (
            is_integer(self.pseudo_token_id) and self.pseudo_token_id >= 0
        ):
            raise TypeError(
                "pseudo_token_id must be a non-negative integer or None, "
                f"got {describe_value(self.pseudo_token_id)}"
            )
        if self.answer_token_ids is not None and (
            not isinstance(self.answer_token_ids, (list, tuple))
            or not all(
                isinstance(token_ids, (list, tuple))
                and token_ids
                and all(is_integer(token_id) and token_id >= 0 for token_id in token_ids)
                for token_ids in self.answer_token_ids
            )
        ):
            raise TypeError(
                "answer_token_ids must be a list of non-empty lists of token ids (non-negative integers), "
                f"got {describe_value(self.answer_token_ids)}"
            )

    def _validate_adapter_fields(self) -> None:
        if self.task not in TASK_TYPES:
            raise ValueError(f"task must be one of {TASK_TYPES}, got {self.task!r}")
        if self.language not in LANGUAGES:
            raise ValueError(f"language must be one of {LANGUAGES}, got {self.language!r}")
        for name in POSITIVE_INT_FIELDS:
            value = getattr(self, name)
            if value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value}")
        if len(self.msf_ratios) != 3 or any(ratio < 1 for ratio in self.msf_ratios):
            raise ValueError(
                f"msf_ratios must hold 3 positive integers (one per MSF branch), got {self.msf_ratios}"
            )
        hidden_size = self.hidden_size
        if hidden_size is not None and any(hidden_size // ratio < 1 for ratio in self.msf_ratios):
            raise ValueError(
                f"every msf_ratio must be at most the backbone width {hidden_size}, got {self.msf_ratios}"
            )
        if self.task == "classification":
            if not self.label_names:
                raise ValueError("task='classification' needs label_names (the class names), got none")
            if len(set(self.label_names)) != len(self.label_names):
                raise ValueError(f"label_names must be unique, got {self.label_names}")
        else:
            if self.value_range is None or len(self.value_range) != 2:
                raise ValueError(f"task='regression' needs value_range=(low, high), got {self.value_range}")
            low, high = self.value_range
            if not (math.isfinite(low) and math.isfinite(high) and low < high):
                raise ValueError(f"value_range must be finite with low < high, got {self.value_range}")
            if not regression_answers((low, high)):
                raise ValueError(f"value_range {self.value_range} contains no value with one decimal")
        if self.answer_token_ids is not None and len(self.answer_token_ids) != len(self.answers):
            # predict maps the i-th token sequence to the i-th answer: a different count mislabels outputs.
            raise ValueError(
                f"answer_token_ids must hold one token sequence per admissible answer ({len(self.answers)}), "
                f"got {len(self.answer_token_ids)}"
            )

    @property
    def hidden_size(self) -> int | None:
        """Width d of the backbone (the pseudo tokens' width)."""
        return getattr(self.text_config, "hidden_size", None)

    @property
    def answers(self) -> list[str]:
        """Target strings of every admissible answer: class indices as strings, or every one-decimal value."""
        if self.task == "classification":
            return [str(index) for index in range(len(self.label_names))]
        return regression_answers(tuple(self.value_range))

    @classmethod
    def from_paper_preset(cls, dataset: str, backbone: str = "llama2", **kwargs) -> MSEAdapterConfig:
        """Config with the released hyper-parameters of `dataset` ("mosei", "sims-v2", "meld", "cherma") on
        the paper's `backbone` ("chatglm3", "llama2" or "qwen"); `kwargs` (e.g. `text_config`) override
        them."""
        if dataset not in PAPER_PRESETS:
            raise ValueError(f"dataset must be one of {sorted(PAPER_PRESETS)}, got {dataset!r}")
        if backbone not in PAPER_BACKBONES:
            raise ValueError(f"backbone must be one of {PAPER_BACKBONES}, got {backbone!r}")
        fields = {**PAPER_PRESETS[dataset], **PAPER_BACKBONE_OVERRIDES.get((dataset, backbone), {}), **kwargs}
        return cls(**fields)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs) -> MSEAdapterConfig:
        """`PretrainedConfig.from_pretrained`, with the file named in the error when a field is invalid."""
        try:
            return super().from_pretrained(pretrained_model_name_or_path, **kwargs)
        except (TypeError, ValueError) as error:
            source = os.fspath(pretrained_model_name_or_path)
            if not os.path.isfile(source):
                source = os.path.join(source, kwargs.get("subfolder") or "", CONFIG_NAME)
            # The field's own message says what was expected and received; the traceback into the
            # validation code would only hide it.
            raise (TypeError if isinstance(error, TypeError) else ValueError)(f"{source}: {error}") from None


MSEAdapterConfig.register_for_auto_class()
