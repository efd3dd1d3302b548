"""`pipeline()` for MSE-Adapter: media files (+ transcript) -> label scores / a sentiment value, read with the
extractors the processor holds; the saved folder names the pipeline in `config.custom_pipelines`, so a fresh
process in another directory runs `pipeline(model=folder, trust_remote_code=True)` offline."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import build_tiny_tokenizer, run_in_fresh_process
from media_fixtures import save_tiny_vision_encoder, write_clip
from transformers import AutoModelForCausalLM, pipeline

from feature_extraction_mse_adapter import MSEAdapterAudioFeatureExtractor, MSEAdapterVideoProcessor
from modeling_mse_adapter import MSEAdapterForCausalLM
from pipeline_mse_adapter import PIPELINE_TASK, MSEAdapterPipeline
from processing_mse_adapter import MSEAdapterProcessor

LABELS = ["low", "high"]


@pytest.fixture(scope="module")
def parts(tmp_path_factory, tiny_lm_factory):
    """(backbone folder, vision encoder folder, clips folder) shared by the tests of this module."""
    root = tmp_path_factory.mktemp("pipeline-parts")
    tiny_lm_factory("llama").save_pretrained(root / "backbone")
    save_tiny_vision_encoder(root / "vit")
    clips = root / "clips"
    clips.mkdir()
    write_clip(clips / "low.mp4", frequency=180.0)
    write_clip(clips / "high.mp4", frequency=900.0, brightness=100)
    write_clip(clips / "audio_only.m4a", frequency=440.0, video=False)
    write_clip(clips / "video_only.mp4", audio=False)
    write_clip(clips / "long.mp4", seconds=3.0)
    (clips / "broken.mp4").write_text("not a video")
    return root / "backbone", root / "vit", clips


def build(parts, task="classification", audio=True, video=True, max_seconds=600.0):
    """A tiny MSE-Adapter and its processor holding the extractors (egemaps in 4 windows, a 16-wide ViT at 4
    fps); the extractors are returned too (None when left out)."""
    backbone_dir, vit_dir, _ = parts
    extractors = {
        "feature_extractor": MSEAdapterAudioFeatureExtractor(
            "egemaps", pool_windows=4, max_seconds=max_seconds
        )
        if audio
        else None,
        "video_processor": MSEAdapterVideoProcessor(
            str(vit_dir), fps=4, crop_face=False, max_seconds=max_seconds
        )
        if video
        else None,
    }
    task_fields = (
        {"task": "classification", "label_names": LABELS, "value_range": None}
        if task == "classification"
        else {"task": "regression", "value_range": (-1.0, 1.0)}
    )
    processor = MSEAdapterProcessor(
        build_tiny_tokenizer(), **extractors, audio_feature_dim=25, video_feature_dim=16, **task_fields
    )
    torch.manual_seed(0)
    model = MSEAdapterForCausalLM.from_language_model(
        AutoModelForCausalLM.from_pretrained(backbone_dir), processor
    ).eval()
    return model, processor, extractors


def make_pipeline(parts, **build_kwargs) -> tuple[MSEAdapterPipeline, dict]:
    model, processor, extractors = build(parts, **build_kwargs)
    return pipeline(PIPELINE_TASK, model=model, processor=processor), extractors


def features_of(extractors: dict, clip: Path) -> dict:
    """The features the extractors make of `clip` (None for an absent extractor)."""
    audio_extractor, video_processor = extractors["feature_extractor"], extractors["video_processor"]
    return {
        "audio": audio_extractor(str(clip))["audio_values"][0] if audio_extractor else None,
        "video": video_processor(str(clip))["video_values"][0] if video_processor else None,
    }


def test_registered_task_builds_the_pipeline_in_process(parts):
    classifier, extractors = make_pipeline(parts)
    assert isinstance(classifier, MSEAdapterPipeline)
    assert classifier.processor.feature_extractor is extractors["feature_extractor"]
    assert classifier.processor.video_processor is extractors["video_processor"]


def test_extractors_come_with_the_processor_and_match_the_model(parts):
    model, processor, _ = build(parts)
    another = MSEAdapterAudioFeatureExtractor("egemaps")
    with pytest.raises(ValueError, match=r"feature_extractor= was given to the pipeline, which reads media"):
        pipeline(PIPELINE_TASK, model=model, processor=processor, feature_extractor=another)
    model.config.audio_feature_dim = 24  # the extractor makes 25-wide features
    with pytest.raises(
        ValueError,
        match=r"^the model's config has audio_feature_dim=24, but the feature_extractor "
        r"\(MSEAdapterAudioFeatureExtractor\) makes 25-wide audio features",
    ):
        pipeline(PIPELINE_TASK, model=model, processor=processor)


def test_class_scores_are_the_models_answer_probabilities(parts):
    classifier, extractors = make_pipeline(parts)
    model, processor = classifier.model, classifier.processor
    clip = parts[2] / "low.mp4"
    every_class = classifier(clip, text="I love this movie", top_k=None)
    features = features_of(extractors, clip)
    batch = processor(text=["I love this movie"], audio=[features["audio"]], video=[features["video"]])
    expected = model.predict(
        **batch, answer_constraint=processor.answer_logits_processor(), return_scores=True
    )[0]
    assert [entry["label"] for entry in every_class] == sorted(expected, key=expected.get, reverse=True)
    for entry in every_class:
        assert entry["score"] == pytest.approx(expected[entry["label"]], abs=1e-6)
    assert sum(entry["score"] for entry in every_class) == pytest.approx(1.0, abs=1e-6)
    assert classifier(clip, text="I love this movie") == every_class[:1]  # top 1 by default


def test_regression_returns_the_predicted_value_inside_the_range(parts):
    scorer, extractors = make_pipeline(parts, task="regression")
    model, processor = scorer.model, scorer.processor
    clip = parts[2] / "high.mp4"
    result = scorer(str(clip), text="fine")
    features = features_of(extractors, clip)
    batch = processor(text=["fine"], audio=[features["audio"]], video=[features["video"]])
    expected = model.predict(**batch, answer_constraint=processor.answer_logits_processor())[0]
    assert result == {"label": "sentiment", "score": pytest.approx(expected)}
    assert -1.0 <= result["score"] <= 1.0


def test_a_list_batches_and_matches_one_call_per_input(parts):
    classifier, _ = make_pipeline(parts)
    clips = [parts[2] / name for name in ("low.mp4", "high.mp4", "audio_only.m4a")]
    texts = ["I love this movie", "this is terrible", "ok"]
    batched = classifier(clips, text=texts, batch_size=2, top_k=None)
    assert len(batched) == 3
    for clip, text, result in zip(clips, texts, batched, strict=True):
        single = classifier(clip, text=text, top_k=None)
        assert [entry["label"] for entry in result] == [entry["label"] for entry in single]
        for mine, theirs in zip(result, single, strict=True):
            assert mine["score"] == pytest.approx(theirs["score"], abs=1e-5)
    as_dicts = classifier(
        [{"media": str(clip), "text": text} for clip, text in zip(clips, texts, strict=True)]
    )
    assert [result[0]["label"] for result in batched] == [result[0]["label"] for result in as_dicts]


@pytest.mark.parametrize(("clip", "missing"), [("audio_only.m4a", "video"), ("video_only.mp4", "audio")])
def test_a_missing_stream_is_a_zero_length_modality(parts, clip, missing):
    classifier, extractors = make_pipeline(parts)
    path = parts[2] / clip
    features = features_of(extractors, path)
    assert len(features[missing]) == 0
    features[missing] = None
    from_features = classifier({"text": "ok", **features}, top_k=None)
    from_file = classifier(path, text="ok", top_k=None)
    assert [entry["label"] for entry in from_file] == [entry["label"] for entry in from_features]
    for mine, theirs in zip(from_file, from_features, strict=True):
        assert mine["score"] == pytest.approx(theirs["score"], abs=1e-6)


def test_precomputed_features_work_without_extractors(parts):
    classifier, _ = make_pipeline(parts, audio=False, video=False)
    generator = np.random.default_rng(0)
    result = classifier(
        {"text": "ok", "audio": generator.normal(size=(5, 25)), "video": generator.normal(size=(3, 16))},
        top_k=None,
    )
    assert {entry["label"] for entry in result} == set(LABELS)
    with pytest.raises(ValueError, match=r"low\.mp4: this checkpoint has no feature extractor"):
        classifier(parts[2] / "low.mp4", text="ok")


def refuse_compute(model, monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("the model ran before the bad input was refused")

    monkeypatch.setattr(model, "predict", fail)


@pytest.mark.parametrize(
    ("inputs", "kwargs", "build_kwargs", "error", "message"),
    [
        (
            ["low.mp4", "missing.mp4"],
            {"text": ["a", "b"]},
            {},
            FileNotFoundError,
            r"missing\.mp4: media file not found",
        ),
        (
            ["low.mp4", "broken.mp4"],
            {"text": ["a", "b"]},
            {},
            ValueError,
            r"broken\.mp4: not a readable media file .*expected an audio or video file FFmpeg decodes",
        ),
        (
            ["video_only.mp4"],
            {"text": ["a"]},
            {"video": False},
            ValueError,
            r"video_only\.mp4: no audio stream; this checkpoint reads audio",
        ),
        (
            ["low.mp4", "long.mp4"],
            {"text": ["a", "b"]},
            {"max_seconds": 2.0},
            ValueError,
            r"long\.mp4: (audio|video) lasts 3\.0 s, longer than the (audio|video) extractor's max_seconds=2",
        ),
        (["low.mp4"], {}, {}, ValueError, r"low\.mp4: no transcript; pass text= .* or asr_model="),
        (["low.mp4", "high.mp4"], {"text": ["a"]}, {}, ValueError, r"text holds 1 transcripts for 2 inputs"),
        (
            ["low.mp4"],
            {"text": ["a"], "top_k": 0},
            {},
            ValueError,
            r"top_k must be a positive integer or None",
        ),
        ([{"media": "low.mp4", "txt": "a"}], {}, {}, ValueError, r"unknown keys \['txt'\]"),
        ([{"text": "a"}], {}, {}, ValueError, r"input dict needs 'media' .* or 'audio' / 'video' features"),
        ([3], {"text": ["a"]}, {}, TypeError, r"an input must be a media file path or a dict .* got int"),
    ],
)
def test_bad_inputs_are_refused_before_the_model_runs(
    parts, monkeypatch, inputs, kwargs, build_kwargs, error, message
):
    classifier, _ = make_pipeline(parts, **build_kwargs)
    refuse_compute(classifier.model, monkeypatch)
    clips = parts[2]
    resolved = [
        str(clips / item)
        if isinstance(item, str)
        else {**item, "media": str(clips / item["media"])}
        if isinstance(item, dict) and "media" in item
        else item
        for item in inputs
    ]
    with pytest.raises(error, match=message):
        classifier(resolved, **kwargs)


def test_both_text_key_and_text_argument_is_refused(parts):
    classifier, _ = make_pipeline(parts)
    with pytest.raises(ValueError, match="input 0 has a 'text' key and text= is given too"):
        classifier({"media": str(parts[2] / "low.mp4"), "text": "a"}, text="b")


def save_tiny_speech_recognizer(folder: Path) -> Path:
    """A seeded 1-layer wav2vec2 CTC model with a character tokenizer: arbitrary but fixed transcripts."""
    from transformers import (
        Wav2Vec2Config,
        Wav2Vec2CTCTokenizer,
        Wav2Vec2FeatureExtractor,
        Wav2Vec2ForCTC,
        Wav2Vec2Processor,
    )

    folder.mkdir(parents=True)
    vocab = {"<pad>": 0, "<unk>": 1, "|": 2, **{letter: 3 + i for i, letter in enumerate("abcdefgh")}}
    (folder / "vocab.json").write_text(json.dumps(vocab))
    tokenizer = Wav2Vec2CTCTokenizer(str(folder / "vocab.json"), word_delimiter_token="|")
    processor = Wav2Vec2Processor(
        feature_extractor=Wav2Vec2FeatureExtractor(sampling_rate=16_000), tokenizer=tokenizer
    )
    config = Wav2Vec2Config(
        vocab_size=len(vocab),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        conv_dim=(16, 16),
        conv_stride=(5, 4),
        conv_kernel=(10, 8),
        num_conv_pos_embeddings=8,
        num_conv_pos_embedding_groups=2,
        pad_token_id=0,
    )
    torch.manual_seed(0)
    Wav2Vec2ForCTC(config).save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def test_asr_model_transcribes_when_no_text_is_given(parts, tmp_path):
    classifier, extractors = make_pipeline(parts)
    recognizer_dir = save_tiny_speech_recognizer(tmp_path / "asr")
    clip = parts[2] / "low.mp4"
    recognizer = pipeline("automatic-speech-recognition", model=str(recognizer_dir))
    waveform = extractors["feature_extractor"].load(clip)  # 16 kHz mono, the recognizer's rate
    transcript = recognizer({"raw": waveform, "sampling_rate": 16_000})["text"].strip()
    with_transcript = classifier(clip, text=transcript, top_k=None)
    assert classifier(clip, asr_model=str(recognizer_dir), top_k=None) == with_transcript
    assert classifier(clip, asr_model=recognizer, top_k=None) == with_transcript


FRESH_PROCESS = textwrap.dedent(
    """
    import json, sys
    from transformers import pipeline

    folder, clips = sys.argv[1], json.loads(sys.argv[2])
    classifier = pipeline(model=folder, trust_remote_code=True)
    results = classifier([clip["path"] for clip in clips], text=[clip["text"] for clip in clips], top_k=None)
    print(json.dumps({"class": type(classifier).__module__, "task": classifier.task, "results": results}))
    """
)


@pytest.mark.slow
def test_saved_folder_runs_as_a_pipeline_in_a_fresh_process(parts, tmp_path):
    model, processor, extractors = build(parts)
    folder, elsewhere = tmp_path / "checkpoint", tmp_path / "elsewhere"
    elsewhere.mkdir()
    model.save_pretrained(folder)
    processor.save_pretrained(folder)  # with its extractors, in processor_config.json
    saved_parts = json.loads((folder / "processor_config.json").read_text())
    for name, extractor in extractors.items():
        assert {**saved_parts[name], "auto_map": None} == {**extractor.to_dict(), "auto_map": None}
    config = json.loads((folder / "config.json").read_text())
    assert config["custom_pipelines"] == {
        PIPELINE_TASK: {
            "impl": "pipeline_mse_adapter.MSEAdapterPipeline",
            "pt": ["AutoModelForCausalLM"],
            "type": "multimodal",
        }
    }
    assert {"pipeline_mse_adapter.py", "feature_extraction_mse_adapter.py"} <= {
        p.name for p in folder.iterdir()
    }
    clips = [
        {"path": str(parts[2] / "low.mp4"), "text": "I love this movie"},
        {"path": str(parts[2] / "audio_only.m4a"), "text": "this is terrible"},
    ]
    expected = pipeline(PIPELINE_TASK, model=model, processor=processor)(
        [clip["path"] for clip in clips], text=[clip["text"] for clip in clips], top_k=None
    )
    stdout = run_in_fresh_process(["-c", FRESH_PROCESS, str(folder), json.dumps(clips)], elsewhere)
    loaded = json.loads(stdout.strip().splitlines()[-1])
    assert loaded["class"].startswith("transformers_modules.")  # the folder's code, not this checkout
    assert loaded["task"] == PIPELINE_TASK
    for mine, theirs in zip(loaded["results"], expected, strict=True):
        assert [entry["label"] for entry in mine] == [entry["label"] for entry in theirs]
        for entry, reference in zip(mine, theirs, strict=True):
            assert entry["score"] == pytest.approx(reference["score"], abs=1e-5)
