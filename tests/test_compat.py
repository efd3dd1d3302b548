"""Compatibility set: build, train a few steps, save and reload each model through the command line and the
Auto classes. `.ci/run` runs it (`pytest -m compat`) a second time in an environment installed WITHOUT
constraints.txt, i.e. on the newest releases pip resolves, after the pinned suite."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from transformers import AutoModel, AutoProcessor, LogitsProcessorList

import train_m2se
from m2se.emt.templates import msa_query

pytestmark = pytest.mark.compat


def train_tiny_run(recipe: str, output_dir) -> None:
    train_m2se.main(["--recipe", recipe, "--output_dir", str(output_dir), "--max_steps", "3"])
    state = json.loads((output_dir / "trainer_state.json").read_text())
    assert state["global_step"] > 0 and any("loss" in entry for entry in state["log_history"])


def assert_reload_holds_the_saved_weights(output_dir) -> torch.nn.Module:
    model = AutoModel.from_pretrained(output_dir, trust_remote_code=True)
    assert type(model).__module__.startswith("transformers_modules")  # the copied remote code
    saved = load_file(output_dir / "model.safetensors")
    own = model.state_dict()
    assert saved
    for name, tensor in saved.items():
        torch.testing.assert_close(own[name], tensor, rtol=0, atol=0, msg=name)
    return model


def test_mse_adapter_trains_saves_and_reloads(tmp_path):
    output_dir = tmp_path / "mse"
    train_tiny_run("tiny_mse_adapter", output_dir)
    model = assert_reload_holds_the_saved_weights(output_dir)
    assert type(model).__name__ == "MSEAdapterForCausalLM"


def test_emoverse_trains_saves_in_peft_format_and_reloads(tmp_path):
    from peft import LoraConfig, PeftConfig

    output_dir = tmp_path / "emoverse"
    train_tiny_run("tiny_emoverse_m2se", output_dir)
    model = assert_reload_holds_the_saved_weights(output_dir)
    assert type(model).__name__ == "EmoVerseForConditionalGeneration"
    peft_config = PeftConfig.from_pretrained(output_dir)
    assert isinstance(peft_config, LoraConfig) and peft_config.modules_to_save == ["multi_modal_projector"]
    adapter = load_file(output_dir / "adapter_model.safetensors")
    trained = {name for name, parameter in model.named_parameters() if parameter.requires_grad}
    assert len(adapter) == len(trained) > 0

    processor = AutoProcessor.from_pretrained(output_dir, trust_remote_code=True)
    image = Image.new("RGB", (40, 30), (200, 30, 30))
    image.save(tmp_path / "face.png")
    records = [{"query": msa_query("I love it"), "images": [str(tmp_path / "face.png")]}] * 2
    inputs = processor.process_emt_records(records, training=False)
    constraint = processor.answer_logits_processor("msa")
    tokens = model.generate(  # the key/value cache and the constraint under the installed transformers
        **inputs,
        logits_processor=LogitsProcessorList([constraint]),
        max_new_tokens=constraint.max_answer_length + 1,
        do_sample=False,
    )
    assert set(constraint.decode(tokens[:, inputs["input_ids"].shape[1] :])) <= {"Positive.", "Negative."}

    merged_dir = tmp_path / "merged"
    model.save_pretrained(merged_dir, save_full_model=True)
    merged = AutoModel.from_pretrained(merged_dir, trust_remote_code=True)
    assert not any("lora_" in name for name in merged.state_dict())
    batch = {
        "input_ids": torch.tensor([[5, 6, 7, 8]]),
        "attention_mask": torch.ones(1, 4, dtype=torch.long),
    }
    with torch.no_grad():
        torch.testing.assert_close(merged(**batch).logits, model(**batch).logits, rtol=1e-4, atol=1e-4)
