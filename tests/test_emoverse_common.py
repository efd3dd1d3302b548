"""Shared builders for the EmoVerse tests: a seeded tiny timm ViT and tiny LLM saved as local folders, so that
`from_parts` can name them and a trained-parts checkpoint can reload them (offline, no pretrained weights)."""

from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch
from transformers import AutoModel, TimmWrapperConfig

from modeling_emoverse import EmoVerseForConditionalGeneration
from processing_emoverse import EmoVerseProcessor

VIT_ARCHITECTURE = "vit_tiny_patch16_224"
VIT_IMAGE_SIZE = 32


def save_tiny_vit(folder: Path, seed: int = 0) -> Path:
    """A 2-block ViT-Tiny on 32 x 32 images with seeded random weights and its timm preprocessing config."""
    timm_model = timm.create_model(VIT_ARCHITECTURE, pretrained=False, img_size=VIT_IMAGE_SIZE, depth=2)
    config = TimmWrapperConfig(
        architecture=VIT_ARCHITECTURE,
        model_args={"img_size": VIT_IMAGE_SIZE, "depth": 2},
        pretrained_cfg={**timm_model.pretrained_cfg, "input_size": (3, VIT_IMAGE_SIZE, VIT_IMAGE_SIZE)},
    )
    torch.manual_seed(seed)
    AutoModel.from_config(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def emoverse_parts(tmp_path_factory, tiny_tokenizer, tiny_lm_factory) -> tuple[Path, Path]:
    """(vision folder, LLM folder with its tokenizer)."""
    root = tmp_path_factory.mktemp("emoverse-parts")
    vision_dir = save_tiny_vit(root / "vit")
    text_dir = root / "llm"
    tiny_lm_factory("llama").save_pretrained(text_dir)
    tiny_tokenizer.save_pretrained(text_dir)
    return vision_dir, text_dir


@pytest.fixture
def emoverse_model(emoverse_parts) -> EmoVerseForConditionalGeneration:
    vision_dir, text_dir = emoverse_parts
    torch.manual_seed(0)
    return EmoVerseForConditionalGeneration.from_parts(vision_dir, text_dir)


@pytest.fixture(scope="session")
def emoverse_processor(emoverse_parts) -> EmoVerseProcessor:
    vision_dir, text_dir = emoverse_parts
    return EmoVerseProcessor.from_parts(vision_dir, text_dir, image_seq_length=4, max_length=256)


def randomize_trained_parts(model: EmoVerseForConditionalGeneration, seed: int = 1) -> None:
    """LoRA B starts at zero; give the trained parts non-trivial values so that losing them would show."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.requires_grad:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.05)


def solid_image_path(folder: Path, name: str, color: tuple[int, int, int], size=(40, 30)) -> str:
    from PIL import Image

    path = folder / name
    Image.new("RGB", size, color).save(path)
    return str(path)
