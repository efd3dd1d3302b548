"""A backbone that is itself Hub remote code (a model type transformers does not know): the adapter attaches
to it, saves adapter-only, and reloads it through `language_model_kwargs={"trust_remote_code": True}`."""

from __future__ import annotations

import json
import textwrap

import numpy as np
import pytest
import torch
from conftest import build_tiny_tokenizer
from transformers import AutoModelForCausalLM

from configuration_mse_adapter import MSEAdapterConfig
from modeling_mse_adapter import MSEAdapterForCausalLM
from processing_mse_adapter import MSEAdapterProcessor

REMOTE_CONFIG = textwrap.dedent(
    """
    from transformers import LlamaConfig


    class TinyRemoteConfig(LlamaConfig):
        model_type = "tiny_remote_llm"
    """
)
REMOTE_MODELING = textwrap.dedent(
    """
    from transformers import LlamaForCausalLM

    from .configuration_tiny_remote import TinyRemoteConfig


    class TinyRemoteForCausalLM(LlamaForCausalLM):
        config_class = TinyRemoteConfig
    """
)


@pytest.fixture
def remote_backbone_dir(tmp_path, tiny_lm_factory):
    folder = tmp_path / "remote-backbone"
    tiny_lm_factory("llama").save_pretrained(folder)
    (folder / "configuration_tiny_remote.py").write_text(REMOTE_CONFIG)
    (folder / "modeling_tiny_remote.py").write_text(REMOTE_MODELING)
    config = json.loads((folder / "config.json").read_text())
    config["model_type"] = "tiny_remote_llm"
    config["auto_map"] = {
        "AutoConfig": "configuration_tiny_remote.TinyRemoteConfig",
        "AutoModelForCausalLM": "modeling_tiny_remote.TinyRemoteForCausalLM",
    }
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def test_adapter_on_a_remote_code_backbone_round_trips(tmp_path, remote_backbone_dir):
    backbone = AutoModelForCausalLM.from_pretrained(remote_backbone_dir, trust_remote_code=True)
    assert type(backbone).__name__ == "TinyRemoteForCausalLM"
    processor = MSEAdapterProcessor(
        build_tiny_tokenizer(),
        task="classification",
        label_names=["a", "b", "c"],
        audio_feature_dim=6,
        video_feature_dim=4,
    )
    model = MSEAdapterForCausalLM.from_language_model(backbone, processor).eval()
    generator = np.random.default_rng(0)
    batch = processor(text=["I love this", "bad"], audio=[generator.normal(size=(4, 6)), None])
    predictions = model.predict(**batch, answer_constraint=processor.answer_logits_processor())
    model.save_pretrained(tmp_path / "adapter")

    with pytest.raises(ValueError, match="is remote code that this config cannot rebuild"):
        MSEAdapterForCausalLM(MSEAdapterConfig.from_pretrained(tmp_path / "adapter"))
    reloaded = MSEAdapterForCausalLM.from_pretrained(
        tmp_path / "adapter", language_model_kwargs={"trust_remote_code": True}
    )
    assert reloaded.config.text_config.backbone_model_type == "tiny_remote_llm"
    assert type(reloaded.language_model).__name__ == "TinyRemoteForCausalLM"
    assert reloaded.predict(**batch, answer_constraint=processor.answer_logits_processor()) == predictions
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**batch).logits, model(**batch).logits)
