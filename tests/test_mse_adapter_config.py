"""MSEAdapterConfig: validation, paper presets and prompts, remote-code backbone configs, parameter counts."""

from __future__ import annotations

import json
import re

import pytest
import torch
from transformers import AutoConfig

from configuration_mse_adapter import (
    PAPER_PRESETS,
    MSEAdapterConfig,
    default_task_prompt,
    format_regression_label,
    regression_answers,
)
from modeling_mse_adapter import MSEAdapterModel

# PAPER_FACTS.md: trainable parameters of the released code, (backbone, width) x dataset.
RELEASED_PARAMETER_COUNTS = {
    ("chatglm3", 4096): {"mosei": 2_631_692, "sims-v2": 2_680_716, "meld": 2_632_844, "cherma": 2_842_380},
    ("llama2", 4096): {"mosei": 2_631_692, "sims-v2": 2_680_716, "meld": 2_632_844, "cherma": 2_842_380},
    ("qwen", 2048): {"mosei": 1_351_244, "sims-v2": 1_400_268, "meld": 1_312_072, "cherma": 1_561_932},
}
# ChatGLM3 and Qwen-1 are remote-code backbones: their model types are unknown to transformers.
BACKBONE_MODEL_TYPES = {"chatglm3": "chatglm", "llama2": "llama", "qwen": "qwen"}

PAPER_PROMPTS = {
    "mosei": "Please predict the sentiment intensity of the above multimodal content in the range "
    "[-3.0, 3.0]. response: The sentiment is",
    "sims-v2": "请对上述多模态内容的情感强度进行预测，范围在[-1.0, 1.0]之间。响应: 情感为",
    "meld": "Please recognize the emotion of the above multimodal content from the target set <neutral:0, "
    "surprise:1, fear:2, sadness:3, joy:4, disgust:5, anger:6>. response: The emotion is",
    "cherma": "请选择适用于上述多模态内容的情绪标签：<愤怒:0, 厌恶:1, 恐惧:2, 高兴:3, "
    "平静:4, 悲伤:5, 惊奇:6>。响应: 情绪为",
}


@pytest.mark.parametrize(
    ("backbone", "width", "dataset", "expected"),
    [
        (backbone, width, dataset, expected)
        for (backbone, width), counts in RELEASED_PARAMETER_COUNTS.items()
        for dataset, expected in counts.items()
    ],
)
def test_plugin_reproduces_released_parameter_counts(backbone, width, dataset, expected):
    text_config = {"model_type": BACKBONE_MODEL_TYPES[backbone], "hidden_size": width}
    config = MSEAdapterConfig.from_paper_preset(dataset, backbone=backbone, text_config=text_config)
    adapter = MSEAdapterModel(config)
    assert sum(p.numel() for p in adapter.parameters() if p.requires_grad) == expected


@pytest.mark.parametrize("dataset", sorted(PAPER_PROMPTS))
def test_presets_give_the_paper_prompts(dataset):
    config = MSEAdapterConfig.from_paper_preset(
        dataset, text_config={"model_type": "llama", "hidden_size": 64}
    )
    assert config.task_prompt == PAPER_PROMPTS[dataset]
    assert config.task_prompt == default_task_prompt(
        config.task, config.language, config.label_names, config.value_range
    )


def test_presets_cover_the_four_datasets_and_meld_on_qwen_uses_two_tokens():
    assert set(PAPER_PRESETS) == {"mosei", "sims-v2", "meld", "cherma"}
    config = MSEAdapterConfig.from_paper_preset("meld", backbone="qwen")
    assert (config.num_pseudo_tokens, config.audio_hidden_size, config.video_hidden_size) == (2, 32, 16)


def test_released_label_format():
    assert [format_regression_label(v) for v in (1.2, -0.4, 0.0, -0.04, 0.04, 3, -2.96)] == [
        "+1.2",
        "-0.4",
        "+0.0",
        "+0.0",
        "+0.0",
        "+3.0",
        "-3.0",
    ]
    answers = regression_answers((-1.0, 1.0))
    assert len(answers) == 21 and answers[0] == "-1.0" and answers[10] == "+0.0" and answers[-1] == "+1.0"
    classification = MSEAdapterConfig(task="classification", label_names=["a", "b", "c"])
    assert classification.answers == ["0", "1", "2"]


def test_remote_code_backbone_config_survives_a_round_trip(tmp_path):
    config = MSEAdapterConfig(text_config={"model_type": "chatglm", "hidden_size": 96, "seq_length": 8192})
    config.save_pretrained(tmp_path)
    reloaded = MSEAdapterConfig.from_pretrained(tmp_path)
    assert reloaded.hidden_size == 96
    assert reloaded.text_config.backbone_model_type == "chatglm"
    assert reloaded.text_config.seq_length == 8192


def test_known_backbone_config_becomes_its_class():
    config = MSEAdapterConfig(
        text_config={"model_type": "qwen2", "hidden_size": 128, "num_attention_heads": 4}
    )
    assert type(config.text_config).__name__ == "Qwen2Config"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"task": "ranking"}, "task must be one of"),
        ({"language": "fr"}, "language must be one of"),
        ({"msf_ratios": (8, 32)}, "msf_ratios must hold 3"),
        ({"msf_ratios": (8, 0, 16)}, "msf_ratios must hold 3"),
        ({"msf_ratios": (8, 128, 16)}, "at most the backbone width 64"),
        ({"task": "classification"}, "needs label_names"),
        ({"task": "classification", "label_names": ["a", "a"]}, "unique"),
        ({"value_range": None}, "needs value_range"),
        ({"value_range": (1.0, -1.0)}, "low < high"),
        ({"value_range": (0.01, 0.05)}, "no value with one decimal"),
        ({"num_pseudo_tokens": 0}, "num_pseudo_tokens must be a positive integer"),
        ({"text_config": {"hidden_size": 64}}, "needs a 'model_type' key"),
    ],
)
def test_invalid_config_values_raise_clear_errors(fields, message):
    fields = {"text_config": {"model_type": "llama", "hidden_size": 64}, **fields}
    with pytest.raises(ValueError, match=message):
        MSEAdapterConfig(**fields)


def test_plugin_output_shape_and_missing_modality_contributes_nothing():
    config = MSEAdapterConfig(
        text_config={"model_type": "llama", "hidden_size": 64},
        audio_feature_dim=6,
        video_feature_dim=4,
        num_pseudo_tokens=3,
    )
    torch.manual_seed(0)
    adapter = MSEAdapterModel(config).eval()
    text = torch.randn(2, 7, 64)
    utterance = torch.ones(2, 7, dtype=torch.long)
    audio, video = torch.randn(2, 5, 6), torch.randn(2, 3, 4)
    lengths_full = torch.tensor([5, 5])
    no_video = torch.zeros(2, 0, 4)
    with torch.no_grad():
        both = adapter(text, utterance, audio, lengths_full, video, torch.tensor([3, 0]))
        audio_only = adapter(text, utterance, audio, lengths_full, no_video, torch.tensor([0, 0]))
        single = adapter(text[:1], utterance[:1], audio[:1], lengths_full[:1], video[:1], torch.tensor([3]))
    assert both.shape == (2, 3, 64) and single.shape == (1, 3, 64)
    # Sample 1 has zero video frames: identical to dropping the video altogether.
    torch.testing.assert_close(both[1], audio_only[1], rtol=0, atol=0)
    assert not torch.equal(both[0], audio_only[0])
    torch.testing.assert_close(single[0], both[0])


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"num_pseudo_tokens": "four"}, "num_pseudo_tokens must be a positive integer, got 'four' \\(str\\)"),
        ({"num_pseudo_tokens": 4.5}, "num_pseudo_tokens must be a positive integer, got 4.5 \\(float\\)"),
        ({"fusion_size": True}, "fusion_size must be a positive integer, got True \\(bool\\)"),
        (
            {"audio_feature_dim": None},
            "audio_feature_dim must be a positive integer, got None \\(NoneType\\)",
        ),
        (
            {"video_hidden_size": [32]},
            "video_hidden_size must be a positive integer, got \\[32\\] \\(list\\)",
        ),
        ({"msf_ratios": 8}, "msf_ratios must be a list of 3 positive integers, got 8 \\(int\\)"),
        (
            {"msf_ratios": "8,32,16"},
            "msf_ratios must be a list of 3 positive integers, got '8,32,16' \\(str\\)",
        ),
        (
            {"msf_ratios": [8, 32.5, 16]},
            "msf_ratios must be a list of 3 positive integers, got \\[8, 32.5, 16\\] \\(list\\)",
        ),
        (
            {"value_range": "-3,3"},
            "value_range must be a list \\[low, high\\] of numbers, got '-3,3' \\(str\\)",
        ),
        (
            {"value_range": [-3, "3"]},
            "value_range must be a list \\[low, high\\] of numbers, got \\[-3, '3'\\] \\(list\\)",
        ),
        (
            {"task": "classification", "label_names": "abc"},
            "label_names must be a list of strings, got 'abc' \\(str\\)",
        ),
        ({"task": "classification", "label_names": [0, 1]}, "label_names must be a list of strings"),
        ({"task": ["regression"]}, "task must be a string, got \\['regression'\\] \\(list\\)"),
        ({"task_prompt": 5}, "task_prompt must be a string or None, got 5 \\(int\\)"),
        ({"base_model_name_or_path": 1}, "base_model_name_or_path must be a string or None, got 1 \\(int\\)"),
        (
            {"pseudo_token_id": "x"},
            "pseudo_token_id must be a non-negative integer or None, got 'x' \\(str\\)",
        ),
        ({"pseudo_token_id": -1}, "pseudo_token_id must be a non-negative integer or None, got -1 \\(int\\)"),
        ({"answer_token_ids": [1, 2]}, "answer_token_ids must be a list of non-empty lists of token ids"),
        ({"answer_token_ids": [[1], []]}, "answer_token_ids must be a list of non-empty lists of token ids"),
    ],
)
def test_config_fields_of_the_wrong_type_raise_type_errors(fields, message):
    fields = {"text_config": {"model_type": "llama", "hidden_size": 64}, **fields}
    with pytest.raises(TypeError, match=message):
        MSEAdapterConfig(**fields)


def test_answer_token_ids_need_one_sequence_per_answer():
    with pytest.raises(ValueError, match="one token sequence per admissible answer \\(3\\), got 2"):
        MSEAdapterConfig(task="classification", label_names=["a", "b", "c"], answer_token_ids=[[5], [6]])


@pytest.mark.parametrize(
    ("field", "value", "error", "message"),
    [
        (
            "num_pseudo_tokens",
            "four",
            TypeError,
            "num_pseudo_tokens must be a positive integer, got 'four' \\(str\\)",
        ),
        ("msf_ratios", [8, 32], ValueError, "msf_ratios must hold 3 positive integers"),
    ],
)
def test_loading_a_config_json_with_a_bad_field_names_the_file_and_the_field(
    tmp_path, field, value, error, message
):
    MSEAdapterConfig(text_config={"model_type": "llama", "hidden_size": 64}).save_pretrained(tmp_path)
    config_file = tmp_path / "config.json"
    saved = json.loads(config_file.read_text())
    saved[field] = value
    config_file.write_text(json.dumps(saved))
    with pytest.raises(error, match=f"^{re.escape(str(config_file))}: {message}"):
        MSEAdapterConfig.from_pretrained(tmp_path)
    with pytest.raises(error, match=f"^{re.escape(str(config_file))}: {message}"):
        AutoConfig.from_pretrained(tmp_path, trust_remote_code=True)
