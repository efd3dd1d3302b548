"""EmoVerse model configuration (M2SE, arXiv 2412.08049): a frozen vision encoder, one linear projector W_v
and a causal LLM tuned with LoRA.

Hub remote code: imports only transformers, torch and the standard library.
"""

from __future__ import annotations

import re
from typing import ClassVar, Literal

from transformers import AutoConfig, PretrainedConfig
from transformers.configuration_utils import SubConfigSpec

# A two-block timm ViT-Tiny on 32 x 32 inputs: buildable offline from its config alone (no pretrained
# weights exist here), which is what the tests and demos use. Users with Hub access pass a real encoder to
# `from_parts`.
DEFAULT_VISION_CONFIG = {
    "architecture": "vit_tiny_patch16_224",
    "model_args": {"img_size": 32, "depth": 2},
    "num_features": 192,
}

# Vision model types whose encoders emit no class token before the patch tokens.
VISION_MODEL_TYPES_WITHOUT_CLASS_TOKEN = ("siglip_vision_model", "siglip2_vision_model")

CHECKPOINT_CONTENTS = ("trained", "merged")


def vision_layout(vision_config: PretrainedConfig) -> tuple[tuple[int, int, int] | None, int | None, int]:
    """(input shape (channels, height, width), patch size, class + register tokens) of the vision encoder; a
    shape or patch size its config does not tell is None. timm: `model_args` over `pretrained_cfg`;
    transformers' vision configs default to RGB."""
    if vision_config.model_type == "timm_wrapper":
        model_args = vision_config.model_args or {}
        input_size = (getattr(vision_config, "pretrained_cfg", None) or {}).get("input_size") or (3, None)
        channels = model_args.get("in_chans", input_size[0])
        image_size = model_args.get("img_size") or tuple(input_size[1:])
        match = re.search(r"patch(\d+)", vision_config.architecture or "")
        patch_size = model_args.get("patch_size") or (int(match.group(1)) if match else None)
        num_prefix_tokens = int(model_args.get("class_token", True)) + int(model_args.get("reg_tokens", 0))
    else:
        channels = getattr(vision_config, "num_channels", 3)
        image_size = getattr(vision_config, "image_size", None)
        patch_size = getattr(vision_config, "patch_size", None)
        num_prefix_tokens = 0 if vision_config.model_type in VISION_MODEL_TYPES_WITHOUT_CLASS_TOKEN else 1
    if isinstance(image_size, int):
        image_size = (image_size, image_size)
    known = isinstance(channels, int) and isinstance(image_size, (list, tuple)) and len(image_size) == 2
    return (channels, *image_size) if known else None, patch_size, num_prefix_tokens


class EmoVerseConfig(PretrainedConfig):
    r"""Configuration of [`EmoVerseForConditionalGeneration`].

    Args:
        vision_config (`dict` or `PretrainedConfig`, *optional*):
            Any vision encoder config that `AutoModel.from_config` builds. Defaults to a 2-block timm
            ViT-Tiny on 32 x 32 images through `TimmWrapperConfig` (offline demos and tests).
        text_config (`dict` or `PretrainedConfig`, *optional*):
            Any causal LM config (`AutoModelForCausalLM.from_config`). Defaults to a Llama config.
        image_token (`str`, defaults to `"<image>"`): placeholder expanded to one token per visual token.
        image_token_id (`int`, *optional*): id of `image_token` in the tokenizer (set by `from_parts`).
        vision_feature_layer (`int`, defaults to -1):
            -1 takes the encoder's final output (after its last norm); any other index takes that entry of the
            encoder's hidden states (timm encoders return patch tokens only for intermediate layers).
        vision_feature_select_strategy (`"default"` or `"full"`, defaults to `"default"`):
            `"default"` drops the class/register tokens and keeps the patch tokens, `"full"` keeps all
            tokens.
        num_vision_prefix_tokens (`int`, *optional*): class + register tokens the encoder emits before its
            patch tokens; derived from `vision_config` when possible (timm ViTs, HF configs with
            `image_size`/`patch_size`).
        image_seq_length (`int`, *optional*): visual tokens per image (= placeholders per `<image>`); derived
            from `vision_config` and `vision_feature_select_strategy` when possible.
        projector_bias (`bool`, defaults to True): bias of the projector W_v.
        lora_r (`int`, defaults to 8), lora_alpha (`int`, defaults to 32): the paper's LoRA rank and scale.
        lora_dropout (`float`, defaults to 0.05): ms-swift's default LoRA dropout.
        lora_target_modules (`str` or `list[str]`, defaults to `"all-linear"`): LLM modules that get LoRA
            (`"all-linear"` = every linear layer of the LLM except its output head).
        vision_model_name_or_path, text_model_name_or_path (`str`, *optional*): the pretrained encoder and
            LLM the model was built from; a checkpoint holding only the trained parts reloads the frozen
            parts from them.
        checkpoint_contents (`"trained"` or `"merged"`, defaults to `"trained"`): what the saved weights hold:
            projector + LoRA (base parts come from the two paths above) or every weight with LoRA merged in.
    """

    model_type = "emoverse"
    sub_configs_defaults: ClassVar[dict[str, SubConfigSpec]] = {
        "vision_config": SubConfigSpec(
            config_class=AutoConfig, model_type="timm_wrapper", init_kwargs=DEFAULT_VISION_CONFIG
        ),
        "text_config": SubConfigSpec(config_class=AutoConfig, model_type="llama"),
    }

    vision_config: dict | PretrainedConfig | None = None
    text_config: dict | PretrainedConfig | None = None
    image_token: str = "<image>"
    image_token_id: int | None = None
    vision_feature_layer: int = -1
    vision_feature_select_strategy: Literal["default", "full"] = "default"
    num_vision_prefix_tokens: int | None = None
    image_seq_length: int | None = None
    projector_bias: bool = True
    lora_r: int = 8
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_target_modules: str | list[str] = "all-linear"
    vision_model_name_or_path: str | None = None
    text_model_name_or_path: str | None = None
    checkpoint_contents: Literal["trained", "merged"] = "trained"
    tie_word_embeddings: bool = False

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        if self.vision_feature_select_strategy not in ("default", "full"):
            raise ValueError(
                "vision_feature_select_strategy must be 'default' or 'full', got "
                f"{self.vision_feature_select_strategy!r}"
            )
        if self.checkpoint_contents not in CHECKPOINT_CONTENTS:
            raise ValueError(
                f"checkpoint_contents must be one of {CHECKPOINT_CONTENTS}, got {self.checkpoint_contents!r}"
            )
        if not isinstance(self.lora_r, int) or self.lora_r <= 0:
            raise ValueError(f"lora_r must be a positive integer, got {self.lora_r!r}")
        if self.lora_alpha <= 0:
            raise ValueError(f"lora_alpha must be positive, got {self.lora_alpha!r}")
        if not 0.0 <= self.lora_dropout < 1.0:
            raise ValueError(f"lora_dropout must be in [0, 1), got {self.lora_dropout!r}")
        if not self.image_token:
            raise ValueError("image_token must be a non-empty string")
        input_shape, patch_size, num_prefix_tokens = vision_layout(self.vision_config)
        if input_shape is not None and isinstance(patch_size, int):
            if self.num_vision_prefix_tokens is None:
                self.num_vision_prefix_tokens = num_prefix_tokens
            if self.image_seq_length is None:
                full = self.vision_feature_select_strategy == "full"
                num_patches = (input_shape[1] // patch_size) * (input_shape[2] // patch_size)
                self.image_seq_length = num_patches + (self.num_vision_prefix_tokens if full else 0)
        if self.image_seq_length is not None and self.image_seq_length <= 0:
            raise ValueError(f"image_seq_length must be positive, got {self.image_seq_length}")
        # The LLM's own tying decides (SmolLM2 ties lm_head to the input embeddings).
        self.tie_word_embeddings = bool(getattr(self.text_config, "tie_word_embeddings", False))


__all__ = ["EmoVerseConfig"]
