"""Configuration of MSE-Adapter (Yang, Dong, Qiang; AAAI 2025), a plug-in between audio/video features and a
frozen causal language model.

Hub remote code: this module imports only the standard library, torch, transformers and the other
`*_mse_adapter.py` modules.
"""

from __future__ import annotations

import copy
import dataclasses
import os
from typing import ClassVar

from transformers import AutoConfig, PretrainedConfig
from transformers.configuration_utils import SubConfigSpec
from transformers.models.auto.configuration_auto import CONFIG_MAPPING
from transformers.utils import CONFIG_NAME

try:
    from .tasks_mse_adapter import paper_preset
    from .validation_mse_adapter import check_positive_integer, describe_value, is_integer
except ImportError:  # imported as a top-level module (installed package or checkout), not as Hub code
    from tasks_mse_adapter import paper_preset
    from validation_mse_adapter import check_positive_integer, describe_value, is_integer


class MSEAdapterConfig(PretrainedConfig):
    r"""
    Configuration of [`MSEAdapterModel`] (the plug-in) and [`MSEAdapterForCausalLM`] (plug-in + frozen LLM):
    the architecture only. The task (type, labels, value range, prompt, language, metrics) is the processor's.

    Args:
        text_config (`dict` or `PretrainedConfig`, *optional*):
            Config of the frozen backbone; a dict needs a `model_type`. An unknown `model_type` (a backbone
            whose code lives on the Hub) is kept as `backbone_model_type` in a generic `PretrainedConfig`
            holding all its fields; such a backbone is passed as `language_model=` or loaded from
            `base_model_name_or_path` with `language_model_kwargs={"trust_remote_code": True}`.
        base_model_name_or_path (`str`, *optional*): path or Hub id of the backbone, which
            `MSEAdapterForCausalLM.from_pretrained` loads for adapter-only folders.
        audio_feature_dim / video_feature_dim, audio_hidden_size / video_hidden_size (`int`): feature width of
            each audio / video frame, hidden size of each modality's 1-layer LSTM.
        fusion_size (`int`, defaults to 256): width of the Text-Guide-Mixer fusion space.
        msf_ratios (`list[int]`, defaults to `(8, 32, 16)`): the three Multi-Scale-Fusion branches have width
            `hidden_size // k`.
        num_pseudo_tokens (`int`, defaults to 4): pseudo tokens the adapter writes into the LLM input (the
            processor's `num_pseudo_tokens`).
        pseudo_token_id (`int`, *optional*): id of the `<pseudo>` placeholder, the processor's
            `pseudo_token_id`. It may lie outside the backbone vocabulary: the model never looks it up.
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
    pseudo_token_id: int | None = None

    def __post_init__(self, **kwargs):
        if isinstance(self.text_config, PretrainedConfig):
            # The base __post_init__ resets attention settings on sub-configs: never touch a live backbone's.
            self.text_config = copy.deepcopy(self.text_config)
        if isinstance(self.text_config, dict) and self.text_config.get("model_type") not in CONFIG_MAPPING:
            # A remote-code backbone (see the class docstring): the generic config class keeps its model_type.
            fields = dict(self.text_config)
            backbone_model_type = fields.pop("model_type", None) or fields.get("backbone_model_type")
            if not backbone_model_type:
                raise ValueError(
                    "text_config given as a dict needs a 'model_type' key (e.g. 'llama'), "
                    f"got keys {sorted(fields)}"
                )
            self.text_config = PretrainedConfig(**{**fields, "backbone_model_type": backbone_model_type})
        super().__post_init__(**kwargs)
        if isinstance(self.base_model_name_or_path, os.PathLike):
            self.base_model_name_or_path = os.fspath(self.base_model_name_or_path)
        self._validate()
        self.msf_ratios = [int(ratio) for ratio in self.msf_ratios]

    def _validate(self) -> None:
        """TypeError / ValueError naming the field, what was expected and what was received; runs when a
        config is built and when one is loaded (a `config.json` holding `"four"` for a size)."""
        # The sizes of the adapter are the fields annotated `int` (strings here: postponed annotations).
        for name in (name for name, kind in MSEAdapterConfig.__annotations__.items() if kind == "int"):
            check_positive_integer(name, getattr(self, name))
        if not isinstance(self.msf_ratios, (list, tuple)) or not all(map(is_integer, self.msf_ratios)):
            raise TypeError(
                f"msf_ratios must be a list of 3 positive integers, got {describe_value(self.msf_ratios)}"
            )
        if len(self.msf_ratios) != 3 or any(ratio < 1 for ratio in self.msf_ratios):
            raise ValueError(
                f"msf_ratios must hold 3 positive integers (one per MSF branch), got {self.msf_ratios}"
            )
        if self.hidden_size is not None and any(self.hidden_size // ratio < 1 for ratio in self.msf_ratios):
            raise ValueError(
                f"every msf_ratio must be at most the backbone width {self.hidden_size}, "
                f"got {self.msf_ratios}"
            )
        path, token_id = self.base_model_name_or_path, self.pseudo_token_id
        if path is not None and not isinstance(path, str):
            raise TypeError(f"base_model_name_or_path must be a string or None, got {describe_value(path)}")
        if token_id is not None and not (is_integer(token_id) and token_id >= 0):
            raise TypeError(
                f"pseudo_token_id must be a non-negative integer or None, got {describe_value(token_id)}"
            )

    @property
    def hidden_size(self) -> int | None:
        """Width d of the backbone (the pseudo tokens' width)."""
        return getattr(self.text_config, "hidden_size", None)

    @classmethod
    def from_paper_preset(cls, dataset: str, backbone: str = "llama2", **kwargs) -> MSEAdapterConfig:
        """Config with the released architecture of `dataset` ("mosei", "sims-v2", "meld", "cherma") on the
        paper's `backbone` ("chatglm3", "llama2" or "qwen"); `kwargs` (e.g. `text_config`) override it. The
        preset's task goes to `MSEAdapterProcessor.from_paper_preset`."""
        own_fields = {field.name for field in dataclasses.fields(cls)}
        preset = {
            name: value for name, value in paper_preset(dataset, backbone).items() if name in own_fields
        }
        return cls(**{**preset, **kwargs})

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs) -> MSEAdapterConfig:
        """`PretrainedConfig.from_pretrained`, with the file named in the error when a field is invalid."""
        try:
            return super().from_pretrained(pretrained_model_name_or_path, **kwargs)
        except (TypeError, ValueError) as error:
            source = os.fspath(pretrained_model_name_or_path)
            if not os.path.isfile(source):
                source = os.path.join(source, kwargs.get("subfolder") or "", CONFIG_NAME)
            # The field's own message says what was expected and received; the traceback would only hide it.
            raise (TypeError if isinstance(error, TypeError) else ValueError)(f"{source}: {error}") from None


MSEAdapterConfig.register_for_auto_class()
