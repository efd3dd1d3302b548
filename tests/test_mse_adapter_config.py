"""MSEAdapterConfig: validation, paper presets and prompts, remote-code backbone configs, parameter counts."""

from __future__ import annotations

import json
import re

import pytest
import torch
from conftest import build_tiny_tokenizer
from transformers import AutoConfig

from configuration_mse_adapter import MSEAdapterConfig
from modeling_mse_adapter import MSEAdapterModel
from processing_mse_adapter import MSEAdapterProcessor
from tasks_mse_adapter import PAPER_PRESETS, default_task_prompt, format_regression_label, regression_answers

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


def preset_processor(dataset, backbone="llama2"):
    tokenizer = build_tiny_tokenizer()
    tokenizer.model_max_length = 1024  # the byte-level tiny tokenizer spells the Chinese prompts byte by byte
    return MSEAdapterProcessor.from_paper_preset(tokenizer, dataset, backbone)


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
    processor = preset_processor(dataset)
    assert processor.task_prompt == PAPER_PROMPTS[dataset]
    assert processor.task_prompt == default_task_prompt(
        processor.task, processor.language, processor.label_names, processor.value_range
    )
    # One preset, two owners: the processor takes the task and shared sizes, the config the architecture.
    config = MSEAdapterConfig.from_paper_preset(
        dataset, text_config={"model_type": "llama", "hidden_size": 64}
    )
    for name in ("num_pseudo_tokens", "audio_feature_dim", "video_feature_dim"):
        assert getattr(processor, name) == getattr(config, name) == PAPER_PRESETS[dataset].get(name, 4)
    assert not {"task", "label_names", "value_range", "task_prompt", "language", "metric_set"} & set(
        config.to_dict()
    )


def test_presets_cover_the_four_datasets_and_meld_on_qwen_uses_two_tokens():
    assert set(PAPER_PRESETS) == {"mosei", "sims-v2", "meld", "cherma"}
    config = MSEAdapterConfig.from_paper_preset("meld", backbone="qwen")
    assert (config.num_pseudo_tokens, config.audio_hidden_size, config.video_hidden_size) == (2, 32, 16)
    assert preset_processor("meld", "qwen").num_pseudo_tokens == 2


@pytest.mark.parametrize(
    ("dataset", "metric_set"), [("mosei", "mosei"), ("sims-v2", "sims"), ("meld", "erc"), ("cherma", "erc")]
)
def test_presets_name_their_metric_set(dataset, metric_set):
    assert preset_processor(dataset).metric_set == metric_set


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
    classification = MSEAdapterProcessor(
        build_tiny_tokenizer(), task="classification", label_names=["a", "b", "c"]
    )
    assert classification.answer_logits_processor().answers == ["a", "b", "c"]
    tokenizer = classification.tokenizer
    assert classification.answer_logits_processor().answer_token_ids == [
        [*tokenizer(index, add_special_tokens=False)["input_ids"], tokenizer.eos_token_id] for index in "012"
    ]


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
        ({"msf_ratios": (8, 32)}, "msf_ratios must hold 3"),
        ({"msf_ratios": (8, 0, 16)}, "msf_ratios must hold 3"),
        ({"msf_ratios": (8, 128, 16)}, "at most the backbone width 64"),
        ({"num_pseudo_tokens": 0}, "num_pseudo_tokens must be a positive integer"),
        ({"text_config": {"hidden_size": 64}}, "needs a 'model_type' key"),
    ],
)
def test_invalid_config_values_raise_clear_errors(fields, message):
    fields = {"text_config": {"model_type": "llama", "hidden_size": 64}, **fields}
    with pytest.raises(ValueError, match=message):
        MSEAdapterConfig(**fields)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"task": "ranking"}, "task must be one of"),
        ({"language": "fr"}, "language must be one of"),
        ({"task": "classification"}, "needs label_names"),
        ({"task": "classification", "label_names": ["a", "a"]}, "unique"),
        ({"value_range": None}, "needs value_range"),
        ({"value_range": (1.0, -1.0)}, "low < high"),
        ({"value_range": (0.01, 0.05)}, "no value with one decimal"),
        ({"num_pseudo_tokens": 0}, "num_pseudo_tokens must be a positive integer"),
        (
            {"metric_set": "erc"},
            r"^metric_set of a regression task must be one of \('mosei', 'sims'\), got 'erc'$",
        ),
        (
            {"task": "classification", "label_names": ["a"], "metric_set": "sims"},
            r"^metric_set of a classification task must be one of \('erc',\), got 'sims'$",
        ),
    ],
)
def test_invalid_task_values_raise_clear_errors_in_the_processor(fields, message):
    with pytest.raises(ValueError, match=message):
        MSEAdapterProcessor(build_tiny_tokenizer(), **fields)


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
        ({"base_model_name_or_path": 1}, "base_model_name_or_path must be a string or None, got 1 \\(int\\)"),
        (
            {"pseudo_token_id": "x"},
            "pseudo_token_id must be a non-negative integer or None, got 'x' \\(str\\)",
        ),
        ({"pseudo_token_id": -1}, "pseudo_token_id must be a non-negative integer or None, got -1 \\(int\\)"),
    ],
)
def test_config_fields_of_the_wrong_type_raise_type_errors(fields, message):
    fields = {"text_config": {"model_type": "llama", "hidden_size": 64}, **fields}
    with pytest.raises(TypeError, match=message):
        MSEAdapterConfig(**fields)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
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
        ({"metric_set": 1}, "metric_set must be a string or None, got 1 \\(int\\)"),
        ({"num_pseudo_tokens": "four"}, "num_pseudo_tokens must be a positive integer, got 'four' \\(str\\)"),
    ],
)
def test_task_fields_of_the_wrong_type_raise_type_errors_in_the_processor(fields, message):
    with pytest.raises(TypeError, match=message):
        MSEAdapterProcessor(build_tiny_tokenizer(), **fields)


def test_the_config_holds_no_task_and_no_tokenizer_ids_but_the_placeholder(tmp_path):
    # The task is the processor's alone; answer token ids come from the processor's constraint.
    config = MSEAdapterConfig(text_config={"model_type": "llama", "hidden_size": 64}, pseudo_token_id=7)
    config.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["pseudo_token_id"] == 7
    assert not {"task", "label_names", "value_range", "task_prompt", "language", "answer_token_ids"} & set(
        saved
    )


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
