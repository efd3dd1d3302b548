"""MSEAdapterProcessor: sequence layout, padding, label masking, truncation, missing modalities, bad input."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from conftest import build_tiny_tokenizer
from media_fixtures import save_tiny_vision_encoder, write_clip
from transformers import AutoProcessor

from feature_extraction_mse_adapter import MSEAdapterAudioFeatureExtractor, MSEAdapterVideoProcessor
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
        "metric_set",
        "audio_feature_dim",
        "pseudo_token_id",
    ):
        assert getattr(reloaded, name) == getattr(processor, name), name
    assert reloaded.metric_set == "erc"
    assert (
        reloaded.answer_logits_processor().answer_token_ids
        == processor.answer_logits_processor().answer_token_ids
    )
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


@pytest.mark.parametrize(
    ("call_kwargs", "error", "message"),
    [
        ({"text": None}, TypeError, "^text must be a string or a non-empty list of strings, got NoneType$"),
        ({"text": 5}, TypeError, "^text must be a string or a non-empty list of strings, got int$"),
        (
            {"text": []},
            ValueError,
            "^text must be a string or a non-empty list of strings, got an empty list$",
        ),
        ({"text": ["ok", None]}, TypeError, "^text\\[1\\] must be a string, got NoneType$"),
        (
            {"text": ["ok", "a <pseudo> b"]},
            ValueError,
            "^text\\[1\\] contains the placeholder '<pseudo>', which the processor reserves for the pseudo "
            "tokens; remove it from the utterance$",
        ),
        ({"audio": [np.ones((5, 0))]}, ValueError, "^audio\\[0\\] must have feature dimension 6, got 0$"),
        (
            {"audio": [np.ones((5, 6), dtype=np.complex64)]},
            TypeError,
            "^audio\\[0\\] must hold real numbers \\(float or int\\), got dtype torch.complex64$",
        ),
        (
            {"video": [np.ones((5, 4), dtype=bool)]},
            TypeError,
            "^video\\[0\\] must hold real numbers \\(float or int\\), got dtype torch.bool$",
        ),
        (
            {"audio": [np.array([["1", "2"]], dtype=object)]},
            TypeError,
            "^audio\\[0\\] must be a \\(frames, feature_dim\\) array of numbers, got ndarray that is not one",
        ),
        (
            {"audio": [[[1.0, 2.0], [3.0]]]},
            TypeError,
            "^audio\\[0\\] must be a \\(frames, feature_dim\\) array of numbers, got list that is not one",
        ),
        (
            {"audio": "features.npy"},
            TypeError,
            "^audio must be a list with one \\(frames, feature_dim\\) array or None per sample, got str$",
        ),
        (
            {"audio": [np.full((2, 6), 1e39)]},
            ValueError,
            "^audio\\[0\\] holds values beyond the float32 range",
        ),
        (
            {"labels": [1.0]},
            ValueError,
            "^class label must be a name in \\['negative', 'neutral', 'positive'\\] "
            "or an index in \\[0, 2\\], got 1.0 \\(float\\)$",
        ),
        ({"labels": [True]}, ValueError, "an index in \\[0, 2\\], got True \\(bool\\)$"),
        ({"labels": [None]}, ValueError, "an index in \\[0, 2\\], got None \\(NoneType\\)$"),
        ({"labels": 1}, TypeError, "^labels must be a list with one label per text, got 1 \\(int\\)$"),
        ({"labels": "positive"}, TypeError, "^labels must be a list with one label per text, got 'positive'"),
    ],
)
def test_bad_text_features_and_labels_raise_clear_errors(tokenizer, call_kwargs, error, message):
    processor = classification_processor(tokenizer)
    with pytest.raises(error, match=message):
        processor(**{"text": ["hi"], **call_kwargs})


def test_a_single_text_takes_a_single_label_and_the_feature_width_is_checked_without_a_declared_one(
    tokenizer,
):
    processor = classification_processor(tokenizer)
    single = processor(text="hi", labels="positive")
    listed = processor(text=["hi"], labels=torch.tensor([2]))
    torch.testing.assert_close(single["labels"], listed["labels"])
    with pytest.raises(ValueError, match=r"^class label must be .* got 1.0 \(float\)$"):
        processor(text="hi", labels=1.0)
    undeclared = MSEAdapterProcessor(build_tiny_tokenizer(), task="regression")
    with pytest.raises(ValueError, match=r"^audio\[0\] must have feature dimension of at least 1, got 0$"):
        undeclared(text=["hi"], audio=[np.ones((5, 0))])


@pytest.mark.parametrize("dtype", [np.float16, np.float64, np.int32, np.uint8])
def test_real_feature_dtypes_become_float32(tokenizer, dtype):
    processor = classification_processor(tokenizer)
    audio = np.arange(12).reshape(2, 6).astype(dtype)
    batch = processor(text=["hi"], audio=[audio])
    assert batch["audio_values"].dtype == torch.float32
    torch.testing.assert_close(batch["audio_values"][0], torch.as_tensor(audio.astype(np.float32)))


@pytest.mark.parametrize("label", [None, [1.0], 1j, True])
def test_regression_label_that_is_not_a_number_raises(tokenizer, label):
    processor = MSEAdapterProcessor(tokenizer, task="regression", value_range=(-3.0, 3.0))
    with pytest.raises(
        ValueError,
        match=f"^regression label must be a number in \\[-3.0, 3.0\\], got {re.escape(repr(label))} ",
    ):
        processor(text=["hi"], labels=[label])


def test_declared_feature_widths_are_validated_like_the_config(tokenizer):
    with pytest.raises(TypeError, match=r"^audio_feature_dim must be a positive integer, got '6' \(str\)$"):
        MSEAdapterProcessor(tokenizer, audio_feature_dim="6")
    with pytest.raises(ValueError, match=r"^video_feature_dim must be a positive integer, got 0$"):
        MSEAdapterProcessor(tokenizer, video_feature_dim=0)


def test_extractors_are_parts_saved_and_restored_with_the_processor(tmp_path, tokenizer):
    audio = MSEAdapterAudioFeatureExtractor("egemaps", pool_windows=3)
    audio.fit_standardization([audio.extract_frames(np.sin(np.arange(16_000) / 9.0), 16_000)])
    video = MSEAdapterVideoProcessor(str(save_tiny_vision_encoder(tmp_path / "vit")), fps=4, crop_face=False)
    processor = MSEAdapterProcessor(
        tokenizer, feature_extractor=audio, video_processor=video, task="classification", label_names=LABELS
    )
    # The widths are the extractors' own (eGeMAPS: 25; the tiny ViT: 16).
    assert (processor.audio_feature_dim, processor.video_feature_dim) == (25, 16)
    processor.save_pretrained(tmp_path / "saved")
    clip = write_clip(tmp_path / "clip.mp4", frequency=300.0)
    for reloaded in (
        AutoProcessor.from_pretrained(tmp_path / "saved", trust_remote_code=True),
        MSEAdapterProcessor.from_pretrained(tmp_path / "saved"),
    ):
        assert reloaded.feature_extractor.to_dict() == audio.to_dict()
        assert reloaded.video_processor.to_dict() == video.to_dict()
        assert (reloaded.audio_feature_dim, reloaded.video_feature_dim) == (25, 16)
        for mine, theirs in ((audio, reloaded.feature_extractor), (video, reloaded.video_processor)):
            name = mine.model_input_names[0]
            np.testing.assert_array_equal(mine(str(clip))[name][0], theirs(str(clip))[name][0])


def test_a_processor_without_extractors_restores_without_them(tmp_path, tokenizer):
    classification_processor(tokenizer).save_pretrained(tmp_path)
    reloaded = AutoProcessor.from_pretrained(tmp_path, trust_remote_code=True)
    assert reloaded.feature_extractor is None and reloaded.video_processor is None
    assert (reloaded.audio_feature_dim, reloaded.video_feature_dim) == (6, 4)


def test_an_extractor_of_another_width_is_refused_naming_both(tokenizer):
    with pytest.raises(
        ValueError,
        match=r"^MSEAdapterProcessor has audio_feature_dim=6, but the feature_extractor "
        r"\(MSEAdapterAudioFeatureExtractor\) makes 65-wide audio features; the two must be equal$",
    ):
        classification_processor(tokenizer, feature_extractor=MSEAdapterAudioFeatureExtractor("compare"))
