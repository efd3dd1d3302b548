"""Cached backbones: built once, and building them never changes the caller's random state.

A run seeds itself and then resolves its backbone; if a first-time conversion consumed random numbers, the
adapter of the very first run on a machine would be initialised differently from every later run.
"""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM

from m2se.backbones import smollm2_path
from m2se.training.models import TINY_LLAMA, TINY_VIT, backbone_path


def draw_after(build) -> torch.Tensor:
    torch.manual_seed(1234)
    build()
    return torch.rand(4)


@pytest.mark.parametrize("name", [TINY_LLAMA, TINY_VIT])
def test_building_a_tiny_backbone_leaves_the_random_state_alone(name, tmp_path, monkeypatch):
    monkeypatch.setenv("M2SE_CACHE", str(tmp_path))
    first_build = draw_after(lambda: backbone_path(name))
    cached = draw_after(lambda: backbone_path(name))
    torch.testing.assert_close(first_build, cached, rtol=0, atol=0)
    assert (tmp_path / ("tiny-llama" if name == TINY_LLAMA else "tiny-vit-32") / "config.json").is_file()


@pytest.mark.slow
def test_smollm2_conversion_leaves_the_random_state_alone_and_is_cached(tmp_path):
    pytest.importorskip("gguf", reason="the SmolLM2 conversion needs the `gguf` package")
    converted = draw_after(lambda: smollm2_path(tmp_path))
    cached = draw_after(lambda: smollm2_path(tmp_path))
    torch.testing.assert_close(converted, cached, rtol=0, atol=0)
    model = AutoModelForCausalLM.from_pretrained(smollm2_path(tmp_path))
    assert sum(parameter.numel() for parameter in model.parameters()) == 134_515_008
    assert model.config.hidden_size == 576 and not hasattr(model, "hf_quantizer")
