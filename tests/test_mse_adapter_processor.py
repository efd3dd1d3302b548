"""MSEAdapterProcessor: sequence layout, padding, label masking, truncation, missing modalities, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import build_tiny_tokenizer
from transformers import AutoProcessor

from processing_mse_adapter import IGNORE_INDEX, MSEAdapterProcessor

LABELS = ["negative", "neutral", "positive"]


@pytest.fixture
def tokenizer():
    return build_tiny_tokenizer()  # fresh per test: the processor adds <pseudo> to it


def classification_processor(tokenizer, **kwargs):
    return MSEAdapterProcessor(
        tokenizer,
        task="classification",
        label_names=LABELS,
        audio_feature_dim=6,
        video_feature_dim=4,
        **kwargs,
    )


def encode(tokenizer, text):
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def test_sequence_layout_labels_and_masks(tokenizer):
    processor = classification_processor(tokenizer, num_pseudo_tokens=3)
    batch = processor(
        text=["I love this movie", "bad"],
        audio=[np.ones((5, 6)), np.ones((2, 6))],
        video=[np.ones((3, 4)), np.ones((1, 4))],
        labels=["positive", 0],
    )
    pseudo = processor.pseudo_token_id
    expected_first = (
        [tokenizer.bos_token_id]
        + encode(tokenizer, "<Multimodal>")
        + [pseudo] * 3
        + encode(tokenizer, "I love this movie")
        + encode(tokenizer, "</Multimodal>")
        + encode(tokenizer, processor.task_prompt)
        + encode(tokenizer, "2")
        + [tokenizer.eos_token_id]
    )
    assert batch["input_ids"][0].tolist() == expected_first  # the longest row: no padding
    assert batch["attention_mask"][0].all()
    # Row 1 is shorter and padded on the left.
    pad = batch["input_ids"].shape[1] - int(batch["attention_mask"][1].sum())
    assert pad > 0 and batch["attention_mask"][1, :pad].sum() == 0 and batch["attention_mask"][1, pad:].all()
    assert (batch["input_ids"][1, :pad] == tokenizer.pad_token_id).all()
    # Labels: only the class index and EOS are supervised.
    for row, label in enumerate(["2", "0"]):
        supervised = batch["labels"][row][batch["labels"][row] != IGNORE_INDEX].tolist()
        assert supervised == [*encode(tokenizer, label), tokenizer.eos_token_id]
        assert batch["input_ids"][row, -len(supervised) :].tolist() == supervised
    # The utterance mask covers exactly the utterance tokens.
    utterance = batch["input_ids"][0][batch["utterance_mask"][0].bool()].tolist()
    assert utterance == encode(tokenizer, "I love this movie")
    assert batch["audio_values"].shape == (2, 5, 6) and batch["audio_lengths"].tolist() == [5, 2]
    assert batch["video_values"].shape == (2, 3, 4) and batch["video_lengths"].tolist() == [3, 1]
    assert batch["audio_values"][1, 2:].abs().sum() == 0


def test_prediction_inputs_end_with_the_prompt(tokenizer):
    processor = classification_processor(tokenizer)
    batch = processor(text=["hello there"], audio=[np.ones((2, 6))])
    assert "labels" not in batch
    prompt = encode(tokenizer, processor.task_prompt)
    assert batch["input_ids"][0, -len(prompt) :].tolist() == prompt


def test_regression_labels_use_the_released_format(tokenizer):
    processor = MSEAdapterProcessor(tokenizer, task="regression", value_range=(-3.0, 3.0))
    batch = processor(text=["a", "b", "c", "d"], labels=[1.2, -0.4, 0.0, -0.04])
    for row, text in enumerate(["+1.2", "-0.4", "+0.0", "+0.0"]):
        supervised = batch["labels"][row][batch["labels"][row] != IGNORE_INDEX].tolist()
        assert supervised == [*encode(tokenizer, text), tokenizer.eos_token_id]


def test_chinese_markers_and_prompt(tokenizer):
    processor = MSEAdapterProcessor(tokenizer, task="regression", value_range=(-1.0, 1.0), language="zh")
    assert processor.task_prompt.startswith("请对上述多模态内容")
    row = processor(text=["好"])["input_ids"][0].tolist()
    opening = encode(tokenizer, "<多模态>")
    assert row[1 : 1 + len(opening)] == opening


def test_missing_modalities(tokenizer):
    processor = classification_processor(tokenizer)
    batch = processor(text=["a", "b"], audio=None, video=[np.ones((2, 4)), np.zeros((0, 4))])
    assert batch["audio_values"].shape == (2, 0, 6) and batch["audio_lengths"].tolist() == [0, 0]
    assert batch["video_lengths"].tolist() == [2, 0]
    empty_list = processor(text=["a"], audio=[[]])
    assert empty_list["audio_lengths"].tolist() == [0]
    single = processor(text="only one", audio=[None])
    assert single["input_ids"].shape[0] == 1 and single["audio_lengths"].tolist() == [0]


def test_long_utterance_is_truncated_never_the_prompt_or_label(tokenizer):
    processor = MSEAdapterProcessor(tokenizer, task="regression")
    long_text = " ".join(["I love this movie"] * 200)
    batch = processor(text=[long_text, "short"], labels=[3.0, -3.0])
    assert batch["input_ids"].shape[1] == tokenizer.model_max_length
    row = batch["input_ids"][0].tolist()
    assert row.count(processor.pseudo_token_id) == processor.num_pseudo_tokens
    tail = [
        *encode(tokenizer, "</Multimodal>"),
        *encode(tokenizer, processor.task_prompt),
        *encode(tokenizer, "+3.0"),
        tokenizer.eos_token_id,
    ]
    assert row[-len(tail) :] == tail
    utterance = batch["input_ids"][0][batch["utterance_mask"][0].bool()].tolist()
    assert utterance == encode(tokenizer, long_text)[: len(utterance)] and len(utterance) > 0


def test_prediction_and_training_inputs_truncate_identically(tokenizer):
    processor = MSEAdapterProcessor(tokenizer, task="regression")
    long_text = " ".join(["boring"] * 300)
    with_label = processor(text=[long_text], labels=[1.0])
    without = processor(text=[long_text])
    answer_length = int((with_label["labels"] != IGNORE_INDEX).sum())
    assert with_label["input_ids"][0, :-answer_length].tolist() == without["input_ids"][0].tolist()


def test_save_and_reload_keeps_every_setting(tmp_path, tokenizer):
    processor = classification_processor(tokenizer, num_pseudo_tokens=2, language="zh")
    processor.save_pretrained(tmp_path)
    reloaded = AutoProcessor.from_pretrained(tmp_path, trust_remote_code=True)
    for name in (
        "num_pseudo_tokens",
        "task",
        "label_names",
        "task_prompt",
        "language",
        "audio_feature_dim",
        "pseudo_token_id",
    ):
        assert getattr(reloaded, name) == getattr(processor, name), name
    texts, audio = ["x y"], [np.ones((3, 6))]
    for key, value in processor(text=texts, audio=audio, labels=[1]).items():
        torch.testing.assert_close(value, reloaded(text=texts, audio=audio, labels=[1])[key])


@pytest.mark.parametrize(
    ("call_kwargs", "error", "message"),
    [
        ({"audio": [np.ones((3, 5))]}, ValueError, "audio\\[0\\] must have feature dimension 6, got 5"),
        ({"video": [np.ones((3, 7))]}, ValueError, "video\\[0\\] must have feature dimension 4, got 7"),
        ({"audio": [np.full((3, 6), np.nan)]}, ValueError, "audio\\[0\\] holds NaN or Inf"),
        ({"video": [np.full((3, 4), -np.inf)]}, ValueError, "video\\[0\\] holds NaN or Inf"),
        (
            {"audio": [np.ones(6)]},
            ValueError,
            "must be a \\(frames, feature_dim\\) array, got shape \\(6,\\)",
        ),
        ({"audio": [np.ones((3, 6))] * 2}, ValueError, "audio holds 2 samples but text holds 1"),
        ({"labels": ["happy"]}, ValueError, "label 'happy' is not one of label_names"),
        ({"labels": [3]}, ValueError, "an index in \\[0, 2\\], got 3"),
        ({"labels": [0, 1]}, ValueError, "labels holds 2 values but text holds 1"),
        ({"return_tensors": "np"}, ValueError, "only return_tensors='pt'"),
    ],
)
def test_bad_input_raises_clear_errors(tokenizer, call_kwargs, error, message):
    processor = classification_processor(tokenizer)
    with pytest.raises(error, match=message):
        processor(text=["hi"], **call_kwargs)


@pytest.mark.parametrize("label", [3.5, -3.1, float("nan"), "+1.0"])
def test_regression_label_outside_value_range_raises(tokenizer, label):
    processor = MSEAdapterProcessor(tokenizer, task="regression", value_range=(-3.0, 3.0))
    with pytest.raises(ValueError, match="regression label must"):
        processor(text=["hi"], labels=[label])


def test_tokenizer_that_cannot_hold_the_placeholders_is_rejected():
    small = build_tiny_tokenizer(model_max_length=8)
    with pytest.raises(ValueError, match="model_max_length=8 cannot hold the placeholders"):
        MSEAdapterProcessor(small)
    with pytest.raises(TypeError, match="tokenizer must be a transformers tokenizer, got dict"):
        MSEAdapterProcessor({"vocab": {}})


def test_placeholder_that_does_not_encode_to_one_token_is_rejected(tokenizer):
    with pytest.raises(ValueError, match="cannot hold the placeholder"):
        MSEAdapterProcessor(tokenizer, pseudo_token="")
