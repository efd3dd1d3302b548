"""MSE-Adapter on the real SmolLM2-135M-Instruct: training steps move only the adapter, constrained
predictions, adapter-only save and reload from the backbone path."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from modeling_mse_adapter import MSEAdapterForCausalLM
from processing_mse_adapter import MSEAdapterProcessor

pytestmark = pytest.mark.slow

TEXTS = ["I really enjoyed it", "That was awful"]
LABELS = [2.4, -2.0]


@pytest.fixture(scope="module")
def smollm2(smollm2_dir):
    return AutoModelForCausalLM.from_pretrained(smollm2_dir).eval(), AutoTokenizer.from_pretrained(
        smollm2_dir
    )


def features(seed=0):
    generator = np.random.default_rng(seed)
    audio = [generator.normal(size=(n, 16)) for n in (12, 0)]
    video = [generator.normal(size=(n, 8)) for n in (5, 9)]
    return audio, video


def test_training_steps_lower_the_loss_and_leave_the_backbone_bit_identical(smollm2, smollm2_dir, tmp_path):
    backbone, tokenizer = smollm2
    processor = MSEAdapterProcessor(tokenizer, task="regression", value_range=(-3.0, 3.0))
    torch.manual_seed(0)
    model = MSEAdapterForCausalLM.from_language_model(
        backbone, processor, audio_feature_dim=16, video_feature_dim=8
    )
    assert model.config.base_model_name_or_path == str(smollm2_dir)
    assert model.config.hidden_size == 576
    backbone_before = {name: tensor.clone() for name, tensor in backbone.state_dict().items()}
    audio, video = features()
    batch = processor(text=TEXTS, audio=audio, video=video, labels=LABELS)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3, eps=1e-4)
    model.train()
    losses = []
    for _ in range(4):
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    model.eval()
    assert losses[-1] < losses[0], losses
    for name, tensor in backbone.state_dict().items():
        assert torch.equal(tensor, backbone_before[name]), name

    inputs = processor(text=TEXTS, audio=audio, video=video)
    predictions = model.predict(**inputs, answer_constraint=processor.answer_logits_processor())
    assert all(isinstance(v, float) and -3.0 <= v <= 3.0 for v in predictions)

    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    weights_size = (tmp_path / "model.safetensors").stat().st_size
    adapter_size = sum(p.numel() * p.element_size() for p in model.adapter.parameters())
    assert weights_size < adapter_size + 100_000  # the 135M backbone is not in the folder
    reloaded = MSEAdapterForCausalLM.from_pretrained(tmp_path)
    assert not any(p.requires_grad for p in reloaded.language_model.parameters())
    assert reloaded.predict(**inputs, answer_constraint=processor.answer_logits_processor()) == predictions
