"""Hub round trip: a folder saved by the project loads in a fresh process in another directory, offline,
with a fresh HF_HOME, through the Auto classes and trust_remote_code, and generates the same tokens."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
import torch
from conftest import run_in_fresh_process
from safetensors.torch import load_file
from test_emoverse_common import randomize_trained_parts, save_tiny_vit, solid_image_path

from modeling_emoverse import EmoVerseForConditionalGeneration
from processing_emoverse import EmoVerseProcessor

pytest_plugins = ["test_emoverse_common"]  # the shared EmoVerse fixtures

CHILD_SCRIPT = """
import json, sys
import torch
from transformers import AutoConfig, AutoModel, AutoModelForImageTextToText, AutoProcessor

folder, records_json, auto_class = sys.argv[1], sys.argv[2], sys.argv[3]
records = json.loads(records_json)
config = AutoConfig.from_pretrained(folder, trust_remote_code=True)
model_class = {"AutoModel": AutoModel, "AutoModelForImageTextToText": AutoModelForImageTextToText}[auto_class]
model = model_class.from_pretrained(folder, trust_remote_code=True)
processor = AutoProcessor.from_pretrained(folder, trust_remote_code=True)
inputs = processor.process_emt_records(records, training=False)
tokens = model.generate(**inputs, max_new_tokens=8, do_sample=False)
trainable = sorted(name for name, parameter in model.named_parameters() if parameter.requires_grad)
print(json.dumps({
    "config_class": type(config).__name__,
    "model_class": type(model).__name__,
    "processor_class": type(processor).__name__,
    "modules": sorted({type(model).__module__.split(".")[0], type(processor).__module__.split(".")[0]}),
    "tokens": tokens.tolist(),
    "trainable": trainable,
}))
"""


def load_in_fresh_process(folder: Path, records: list[dict], auto_class: str) -> dict:
    with tempfile.TemporaryDirectory() as elsewhere:
        stdout = run_in_fresh_process(
            ["-c", CHILD_SCRIPT, str(folder), json.dumps(records), auto_class], Path(elsewhere)
        )
    return json.loads(stdout.strip().splitlines()[-1])


def check_child(result: dict, expected_tokens: torch.Tensor) -> None:
    assert result["config_class"] == "EmoVerseConfig"
    assert result["model_class"] == "EmoVerseForConditionalGeneration"
    assert result["processor_class"] == "EmoVerseProcessor"
    assert "transformers_modules" in result["modules"]  # the copied remote code, not this checkout
    assert result["tokens"] == expected_tokens.tolist()
    assert result["trainable"]
    assert all("lora_" in name or name.startswith("multi_modal_projector.") for name in result["trainable"])


@pytest.mark.slow
def test_merged_checkpoint_reloads_in_a_fresh_process(emoverse_model, emoverse_processor, tmp_path):
    randomize_trained_parts(emoverse_model)
    records = [
        {"query": "What is shown?", "images": [solid_image_path(tmp_path, "r.png", (200, 10, 10))]},
        {"query": "Describe <image> now.", "images": [solid_image_path(tmp_path, "g.png", (10, 200, 10))]},
    ]
    expected = emoverse_model.generate(
        **emoverse_processor.process_emt_records(records, training=False), max_new_tokens=8, do_sample=False
    )
    folder = tmp_path / "merged"
    emoverse_model.save_pretrained(folder, save_full_model=True)
    emoverse_processor.save_pretrained(folder)
    saved_files = [path.name for path in folder.iterdir()]
    assert not any(name.startswith("model") and "lora" in name for name in saved_files)
    check_child(load_in_fresh_process(folder, records, "AutoModelForImageTextToText"), expected)


@pytest.mark.slow
def test_trained_parts_on_smollm2_reload_in_a_fresh_process(smollm2_dir, tmp_path):
    vision_dir = save_tiny_vit(tmp_path / "vit")
    torch.manual_seed(0)
    model = EmoVerseForConditionalGeneration.from_parts(vision_dir, smollm2_dir)
    processor = EmoVerseProcessor.from_parts(
        vision_dir, smollm2_dir, image_seq_length=model.config.image_seq_length
    )
    assert processor.image_token_id == model.config.image_token_id == 49152
    randomize_trained_parts(model)
    records = [
        {
            "query": "The person says: 'I love it' Please determine which sentiment label in the video "
            "represents: positive or negative.",
            "images": [solid_image_path(tmp_path, "face.png", (180, 140, 120))],
        }
    ]
    expected = model.generate(
        **processor.process_emt_records(records, training=False), max_new_tokens=8, do_sample=False
    )
    folder = tmp_path / "trained"
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    saved = load_file(folder / "model.safetensors")
    trainable = sum(parameter.numel() for parameter in model.parameters() if parameter.requires_grad)
    assert sum(tensor.numel() for tensor in saved.values()) == trainable < 3_000_000  # not SmolLM2's 135M
    check_child(load_in_fresh_process(folder, records, "AutoModel"), expected)
