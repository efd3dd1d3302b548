"""EmoVerse's trained parts through PEFT's public API: the `LoraConfig` (LoRA on the LLM, the projector W_v
as a module to save), PEFT's adapter files (`adapter_config.json`, `adapter_model.safetensors`) written and
read, and the merged weights. transformers' own `add_adapter` is not used: its PEFT version gate rejects the
newest peft release with some transformers releases.

Hub remote code: imports only torch, transformers, `peft` and the standard library.
"""

from __future__ import annotations

import os

import safetensors.torch
import torch
from peft import LoraConfig, PeftConfig
from peft.functional import get_peft_model_state_dict, set_peft_model_state_dict
from peft.utils.constants import CONFIG_NAME as ADAPTER_CONFIG_NAME
from peft.utils.constants import SAFETENSORS_WEIGHTS_NAME as ADAPTER_WEIGHTS_NAME
from torch import nn
from transformers.utils import cached_file

LORA_ADAPTER_NAME = "default"
PROJECTOR_NAME = "multi_modal_projector"
# PEFT's adapter files name tensors from the root of a `PeftModel`, which holds the model as base_model.model
PEFT_KEY_PREFIX = "base_model.model."


def lora_config(config) -> LoraConfig:
    """The PEFT config of an `EmoVerseConfig`: LoRA on the LLM's `lora_target_modules` (never the frozen
    vision tower) and the projector W_v trained in full as a module to save."""
    return LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=config.lora_target_modules,
        exclude_modules=r"vision_tower\..*",
        modules_to_save=[PROJECTOR_NAME],
        bias="none",
    )


def is_trained_parameter(name: str) -> bool:
    """True for the LoRA weights and the projector's trained copy (PEFT keeps the initial projector beside
    it as `original_module`)."""
    return "lora_" in name or (name.startswith(f"{PROJECTOR_NAME}.") and ".original_module." not in name)


def merged_state_dict(model: nn.Module, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`state_dict` of `model` under the plain model's names, each LoRA delta folded into its base weight and
    the projector's trained copy in place of the original.

    Equal to the state dict of PEFT's `merge_and_unload`, which is not called because it rewrites the live
    model in place, and saving must leave the model being trained untouched. The deltas come from the live
    LoRA layers (PEFT's `get_delta_weight`), so the full model must be in memory (not partitioned by ZeRO-3).
    """
    trained_copy = f".modules_to_save.{LORA_ADAPTER_NAME}."
    merged = {
        name.replace(".base_layer.", ".").replace(trained_copy, "."): tensor
        for name, tensor in state_dict.items()
        if "lora_" not in name and ".original_module." not in name
    }
    for module_name, module in model.named_modules():
        if hasattr(module, "get_delta_weight") and hasattr(module, "base_layer"):
            key = f"{module_name}.weight"
            merged[key] = merged[key] + module.get_delta_weight(LORA_ADAPTER_NAME).to(merged[key].dtype)
    return merged


def save_adapter_files(
    model: nn.Module, save_directory: str | os.PathLike, state_dict: dict[str, torch.Tensor], base_model: str
) -> None:
    """Write `model`'s trained parts, taken from `state_dict`, as PEFT's adapter files."""
    peft_config = model.peft_config[LORA_ADAPTER_NAME]
    peft_config.base_model_name_or_path = base_model
    peft_config.save_pretrained(save_directory)
    adapter_state_dict = get_peft_model_state_dict(model, state_dict=state_dict)
    safetensors.torch.save_file(
        {PEFT_KEY_PREFIX + name: tensor.contiguous() for name, tensor in adapter_state_dict.items()},
        os.path.join(save_directory, ADAPTER_WEIGHTS_NAME),
        metadata={"format": "pt"},
    )


def load_adapter_files(model: nn.Module, folder: str | os.PathLike, **hub_kwargs) -> None:
    """Load PEFT adapter files written by `save_adapter_files` (or by `peft` itself for this model) into
    `model`'s LoRA layers and projector; ValueError naming the file on a mismatch."""
    config_file = cached_file(folder, ADAPTER_CONFIG_NAME, **hub_kwargs)
    saved_config = PeftConfig.from_pretrained(os.path.dirname(config_file))
    expected_config = model.peft_config[LORA_ADAPTER_NAME]
    if (saved_config.r, saved_config.lora_alpha) != (expected_config.r, expected_config.lora_alpha):
        raise ValueError(
            f"{config_file} has LoRA r={saved_config.r}, alpha={saved_config.lora_alpha} but the model "
            f"config says lora_r={expected_config.r}, lora_alpha={expected_config.lora_alpha}"
        )
    weights_file = cached_file(folder, ADAPTER_WEIGHTS_NAME, **hub_kwargs)
    try:
        saved = safetensors.torch.load_file(weights_file)
    except Exception as error:  # safetensors raises its own types (or MemoryError) for damaged files
        raise ValueError(
            f"{weights_file} is not a readable safetensors file ({type(error).__name__}: {error})"
        ) from error
    saved = {name.removeprefix(PEFT_KEY_PREFIX): tensor for name, tensor in saved.items()}
    expected = set(get_peft_model_state_dict(model))
    if set(saved) != expected:
        raise ValueError(
            f"{weights_file} should hold exactly the projector and LoRA weights of this config; "
            f"missing {sorted(expected - set(saved))[:5]}, unexpected {sorted(set(saved) - expected)[:5]}"
        )
    set_peft_model_state_dict(model, saved, adapter_name=LORA_ADAPTER_NAME)


__all__ = [
    "is_trained_parameter",
    "load_adapter_files",
    "lora_config",
    "merged_state_dict",
    "save_adapter_files",
]
