"""The saved folder is a self-contained Hub repository: a fresh process in another directory, offline, with an
empty HF_HOME, loads it with the Auto classes and trust_remote_code and predicts exactly the same."""

from __future__ import annotations

import json
import textwrap

import numpy as np
import pytest
import torch
from conftest import build_tiny_tokenizer, run_in_fresh_process
from transformers import AutoModelForCausalLM

from modeling_mse_adapter import MSEAdapterForCausalLM
from processing_mse_adapter import MSEAdapterProcessor

TEXTS = ["I love this movie", "this is terrible and boring", "ok"]
REMOTE_CODE_MSE_ADAPTER = (
    "configuration_mse_adapter",
    "modeling_mse_adapter",
    "processing_mse_adapter",
    "tasks_mse_adapter",
    "layers_mse_adapter",
    "checkpoint_mse_adapter",
    "validation_mse_adapter",
    "answer_constraints",
)

LOAD_AND_PREDICT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import torch
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoProcessor

    folder, inputs_path = sys.argv[1], sys.argv[2]
    inputs = json.load(open(inputs_path))
    config = AutoConfig.from_pretrained(folder, trust_remote_code=True)
    processor = AutoProcessor.from_pretrained(folder, trust_remote_code=True)
    audio = [np.array(sample) for sample in inputs["audio"]]
    video = [np.array(sample) for sample in inputs["video"]]
    batch = processor(text=inputs["text"], audio=audio, video=video)
    results = {"config_class": type(config).__name__, "processor_class": type(processor).__name__}
    for name, auto_class in (("AutoModel", AutoModel), ("AutoModelForCausalLM", AutoModelForCausalLM)):
        model = auto_class.from_pretrained(folder, trust_remote_code=True)
        with torch.no_grad():
            logits = model(**batch).logits[:, -1]
        results[name] = {
            "class": type(model).__name__,
            "module": type(model).__module__,
            "predictions": model.predict(**batch, answer_constraint=processor.answer_logits_processor()),
            "logits": logits.tolist(),
            "trainable": sorted({n.split(".")[0] for n, p in model.named_parameters() if p.requires_grad}),
        }
    print(json.dumps(results))
    """
)


def build_inputs(seed=0):
    generator = np.random.default_rng(seed)
    return {
        "text": TEXTS,
        "audio": [generator.normal(size=(n, 6)).round(3).tolist() for n in (5, 3, 0)],
        "video": [generator.normal(size=(n, 4)).round(3).tolist() for n in (2, 4, 1)],
    }


def run_fresh_process(folder, inputs_path, workdir):
    stdout = run_in_fresh_process(["-c", LOAD_AND_PREDICT, str(folder), str(inputs_path)], workdir)
    return json.loads(stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.parametrize("save_full_model", [False, True])
def test_fresh_process_loads_with_auto_classes_and_predicts_identically(
    tmp_path, tiny_lm_factory, save_full_model
):
    backbone_dir, folder, workdir = tmp_path / "backbone", tmp_path / "mse-adapter", tmp_path / "elsewhere"
    workdir.mkdir()
    tiny_lm_factory("llama").save_pretrained(backbone_dir)
    processor = MSEAdapterProcessor(
        build_tiny_tokenizer(),
        task="classification",
        label_names=["negative", "neutral", "positive"],
        audio_feature_dim=6,
        video_feature_dim=4,
    )
    torch.manual_seed(0)
    model = MSEAdapterForCausalLM.from_language_model(
        AutoModelForCausalLM.from_pretrained(backbone_dir), processor
    ).eval()
    model.save_pretrained(folder, save_full_model=save_full_model)
    processor.save_pretrained(folder)
    saved = {path.name for path in folder.iterdir()}
    # Every remote-code module the model and processor import, found by save_pretrained itself.
    assert {f"{name}.py" for name in REMOTE_CODE_MSE_ADAPTER} <= saved
    config = json.loads((folder / "config.json").read_text())
    assert set(config["auto_map"]) == {"AutoConfig", "AutoModel", "AutoModelForCausalLM"}

    inputs = build_inputs()
    inputs_path = tmp_path / "inputs.json"
    inputs_path.write_text(json.dumps(inputs))
    batch = processor(
        text=inputs["text"],
        audio=[np.array(a) for a in inputs["audio"]],
        video=[np.array(v) for v in inputs["video"]],
    )
    with torch.no_grad():
        expected_logits = model(**batch).logits[:, -1]
    expected_predictions = model.predict(**batch, answer_constraint=processor.answer_logits_processor())

    results = run_fresh_process(folder, inputs_path, workdir)
    assert results["config_class"] == "MSEAdapterConfig"
    assert results["processor_class"] == "MSEAdapterProcessor"
    for name in ("AutoModel", "AutoModelForCausalLM"):
        loaded = results[name]
        assert loaded["class"] == "MSEAdapterForCausalLM"
        assert loaded["module"].startswith("transformers_modules.")  # the folder's code, not this checkout
        assert loaded["predictions"] == expected_predictions
        torch.testing.assert_close(torch.tensor(loaded["logits"]), expected_logits, rtol=0, atol=1e-6)
        assert loaded["trainable"] == ["adapter"]
