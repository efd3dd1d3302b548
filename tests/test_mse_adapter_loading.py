"""MSEAdapterForCausalLM.from_pretrained on broken checkpoints: corrupted or missing weights, a config.json
with a field of the wrong type, a backbone path that does not exist. Each is one clear error naming the file
or field, raised before any backbone is loaded."""

from __future__ import annotations

import json
import re
import shutil

import pytest
from conftest import build_tiny_tokenizer
from transformers import AutoModel, AutoModelForCausalLM, PreTrainedModel

import modeling_mse_adapter
from modeling_mse_adapter import MSEAdapterForCausalLM
from processing_mse_adapter import MSEAdapterProcessor

INVALID = "is not a valid safetensors file"
REMEDY = "; re-download or re-save the checkpoint$"


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory, tiny_lm_factory):
    """An adapter-only checkpoint (with its backbone folder), a full one and a sharded full one."""
    root = tmp_path_factory.mktemp("checkpoints")
    tiny_lm_factory("llama").save_pretrained(root / "backbone")
    backbone = AutoModelForCausalLM.from_pretrained(root / "backbone")
    processor = MSEAdapterProcessor(
        build_tiny_tokenizer(), task="classification", label_names=["a", "b", "c"], audio_feature_dim=6
    )
    model = MSEAdapterForCausalLM.from_language_model(backbone, processor)
    model.save_pretrained(root / "adapter")
    # The base class writes every weight, backbone included, as a full checkpoint does.
    PreTrainedModel.save_pretrained(model, root / "full")
    PreTrainedModel.save_pretrained(model, root / "sharded", max_shard_size="100KB")
    return root


@pytest.fixture
def no_backbone_load(monkeypatch):
    """Fail the test if the backbone is loaded: the errors below must come before that work."""

    def refuse(*args, **kwargs):
        raise AssertionError("the backbone was loaded before the bad input was found")

    monkeypatch.setattr(modeling_mse_adapter.AutoModelForCausalLM, "from_pretrained", refuse)


def copy_checkpoint(checkpoints, name, tmp_path):
    return shutil.copytree(checkpoints / name, tmp_path / name)


def corrupt(data: bytes, how: str) -> bytes:
    if how == "random header length":
        return (2**63 + 12345).to_bytes(8, "little") + data[8:]
    if how == "truncated":
        return data[: len(data) // 2]
    if how == "empty":
        return b""
    if how == "header not JSON":
        return data[:8] + b"\xff" + data[9:]
    if how == "trailing bytes":
        return data + b"\0" * 16
    raise AssertionError(how)


CORRUPTIONS = {
    "random header length": f"its header length {2**63 + 12345} exceeds the file size \\d+",
    "truncated": "tensor '[^']+' has data_offsets \\[\\d+, \\d+\\] outside the \\d+ data bytes",
    "empty": "0 bytes, shorter than the 8-byte header length",
    "header not JSON": "its header is not JSON",
    "trailing bytes": "the tensors cover (\\d+) of its (\\d+) data bytes",
}


@pytest.mark.parametrize("kind", ["adapter", "full"])
@pytest.mark.parametrize("how", sorted(CORRUPTIONS))
def test_corrupted_weights_name_the_file_before_the_backbone_loads(
    checkpoints, tmp_path, no_backbone_load, kind, how
):
    folder = copy_checkpoint(checkpoints, kind, tmp_path)
    weights = folder / "model.safetensors"
    weights.write_bytes(corrupt(weights.read_bytes(), how))
    expected = f"^{re.escape(str(weights))} {INVALID} \\({CORRUPTIONS[how]}\\){REMEDY}"
    with pytest.raises(ValueError, match=expected):
        MSEAdapterForCausalLM.from_pretrained(folder)


def test_corrupted_weights_through_automodel(checkpoints, tmp_path):
    folder = copy_checkpoint(checkpoints, "adapter", tmp_path)
    weights = folder / "model.safetensors"
    weights.write_bytes(corrupt(weights.read_bytes(), "random header length"))
    with pytest.raises(ValueError, match=f"^{re.escape(str(weights))} {INVALID}"):
        AutoModel.from_pretrained(folder, trust_remote_code=True)


def test_a_corrupted_shard_is_named_and_an_intact_sharded_checkpoint_loads(checkpoints, tmp_path):
    folder = copy_checkpoint(checkpoints, "sharded", tmp_path)
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    shards = sorted(set(index["weight_map"].values()))
    assert len(shards) > 1
    reloaded = MSEAdapterForCausalLM.from_pretrained(folder)
    assert not any(parameter.requires_grad for parameter in reloaded.language_model.parameters())
    shard = folder / shards[-1]
    shard.write_bytes(corrupt(shard.read_bytes(), "truncated"))
    with pytest.raises(ValueError, match=f"^{re.escape(str(shard))} {INVALID} \\(tensor"):
        MSEAdapterForCausalLM.from_pretrained(folder)
    (folder / "model.safetensors.index.json").write_text("{not json")
    index_error = (
        f"^{re.escape(str(folder / 'model.safetensors.index.json'))} is not a valid safetensors index"
    )
    with pytest.raises(ValueError, match=index_error):
        MSEAdapterForCausalLM.from_pretrained(folder)


def test_a_folder_without_weights_or_a_missing_folder_is_named(checkpoints, tmp_path, no_backbone_load):
    folder = copy_checkpoint(checkpoints, "adapter", tmp_path)
    (folder / "model.safetensors").unlink()
    with pytest.raises(
        ValueError,
        match=f"^{re.escape(str(folder))} holds neither model.safetensors nor model.safetensors.index.json; "
        "expected a checkpoint written by MSEAdapterForCausalLM.save_pretrained$",
    ):
        MSEAdapterForCausalLM.from_pretrained(folder)
    missing = tmp_path / "no" / "such" / "adapter"
    with pytest.raises(
        ValueError,
        match=f"^pretrained_model_name_or_path is {re.escape(repr(str(missing)))}: neither an existing "
        "folder nor a Hub model id \\('name' or 'namespace/name'\\)$",
    ):
        MSEAdapterForCausalLM.from_pretrained(missing)


def test_an_adapter_id_that_is_neither_a_folder_nor_reachable_is_named(
    tmp_path, monkeypatch, no_backbone_load
):
    monkeypatch.chdir(
        tmp_path
    )  # "mse-adapter-meld" is a valid Hub id and no folder here; the tests run offline
    with pytest.raises(OSError) as error:
        MSEAdapterForCausalLM.from_pretrained("mse-adapter-meld", language_model=None)
    message = str(error.value)
    assert message.startswith(
        "pretrained_model_name_or_path is 'mse-adapter-meld': not an existing folder, and it could not be "
        "loaded as a Hub model id ("
    )
    assert message.endswith("expected a folder written by save_pretrained or a reachable Hub id")
    assert error.value.__suppress_context__


def test_a_folder_whose_config_json_is_not_json_names_the_file_and_position(
    checkpoints, tmp_path, no_backbone_load
):
    folder = copy_checkpoint(checkpoints, "adapter", tmp_path)
    config_file = folder / "config.json"
    config_file.write_text('{\n  "model_type": "mse_adapter",,\n}')
    with pytest.raises(ValueError) as error:
        MSEAdapterForCausalLM.from_pretrained(folder)
    assert str(error.value) == (
        f"{config_file} is not valid JSON (Expecting property name enclosed in double quotes at line 2, "
        "column 31); expected the config.json written by save_pretrained"
    )
    assert "not an existing folder" not in str(error.value)
    config_file.write_bytes(b"\xff\xfe{}")
    with pytest.raises(ValueError, match=f"^{re.escape(str(config_file))} is not UTF-8 text \\("):
        MSEAdapterForCausalLM.from_pretrained(folder)


def set_config_field(folder, field, value):
    config_file = folder / "config.json"
    config = json.loads(config_file.read_text())
    config[field] = value
    config_file.write_text(json.dumps(config))
    return config_file


def test_missing_backbone_path_is_one_clear_error(checkpoints, tmp_path, no_backbone_load):
    folder = copy_checkpoint(checkpoints, "adapter", tmp_path)
    backbone = tmp_path / "moved" / "backbone"
    set_config_field(folder, "base_model_name_or_path", str(backbone))
    with pytest.raises(ValueError) as error:
        MSEAdapterForCausalLM.from_pretrained(folder)
    assert str(error.value) == (
        f"the backbone path config.base_model_name_or_path of the adapter at {folder} is {str(backbone)!r}: "
        "neither an existing folder nor a Hub model id ('name' or 'namespace/name'); pass language_model= or "
        "correct the path"
    )
    assert error.value.__cause__ is None and error.value.__context__ is None


def test_backbone_id_that_cannot_be_fetched_names_the_field_once(checkpoints, tmp_path):
    folder = copy_checkpoint(checkpoints, "adapter", tmp_path)
    set_config_field(folder, "base_model_name_or_path", "no-such-org/no-such-model")
    with pytest.raises(OSError) as error:
        MSEAdapterForCausalLM.from_pretrained(folder)  # the tests run offline: nothing can be fetched
    message = str(error.value)
    assert message.startswith(
        f"the backbone path config.base_model_name_or_path of the adapter at {folder} is "
        "'no-such-org/no-such-model', which could not be loaded ("
    )
    assert message.endswith("; pass language_model= or correct the path")
    assert error.value.__suppress_context__


@pytest.mark.parametrize("loader", ["MSEAdapterForCausalLM", "AutoModel"])
def test_config_json_field_of_the_wrong_type_names_the_file(checkpoints, tmp_path, no_backbone_load, loader):
    folder = copy_checkpoint(checkpoints, "adapter", tmp_path)
    config_file = set_config_field(folder, "num_pseudo_tokens", "four")
    expected = (
        f"^{re.escape(str(config_file))}: num_pseudo_tokens must be a positive integer, got 'four' \\(str\\)$"
    )
    with pytest.raises(TypeError, match=expected):
        if loader == "AutoModel":
            AutoModel.from_pretrained(folder, trust_remote_code=True)
        else:
            MSEAdapterForCausalLM.from_pretrained(folder)
