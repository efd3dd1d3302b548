"""Feature extractors (feature_extraction_mse_adapter) and the extraction CLI (python -m m2se.features)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import av
import datasets
import numpy as np
import pytest
from media_fixtures import save_tiny_vision_encoder

from feature_extraction_mse_adapter import MediaError, MSEAdapterAudioFeatureExtractor, load_audio
from m2se.features.__main__ import main

RATE = 16_000


def tone(frequency: float, seconds: float = 1.0, rate: int = RATE) -> np.ndarray:
    time = np.arange(int(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * frequency * time)).astype(np.float32)


def write_media(path: Path, *, audio: np.ndarray | None, video_frames: int = 0, rate: int = RATE) -> Path:
    """An MP4/M4A with an AAC audio stream (with ``audio``) and an mpeg4 video stream (``video_frames``)."""
    with av.open(str(path), "w") as container:
        video_stream = container.add_stream("mpeg4", rate=10) if video_frames else None
        if video_stream is not None:
            video_stream.width, video_stream.height, video_stream.pix_fmt = 64, 64, "yuv420p"
        audio_stream = container.add_stream("aac", rate=rate, layout="mono") if audio is not None else None
        for index in range(video_frames):
            image = np.full((64, 64, 3), (index * 20) % 255, np.uint8)
            for packet in video_stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        if video_stream is not None:
            for packet in video_stream.encode():
                container.mux(packet)
        if audio_stream is not None:
            frame = av.AudioFrame.from_ndarray(audio[None, :], format="fltp", layout="mono")
            frame.sample_rate = rate
            for packet in audio_stream.encode(frame):
                container.mux(packet)
            for packet in audio_stream.encode():
                container.mux(packet)
    return path


@pytest.mark.parametrize(("backend", "width"), [("egemaps", 25), ("compare", 65)])
def test_opensmile_width_and_determinism(backend, width):
    extractor = MSEAdapterAudioFeatureExtractor(backend=backend)
    first = extractor(tone(220.0), sampling_rate=RATE)["audio_values"][0]
    second = extractor(tone(220.0), sampling_rate=RATE)["audio_values"][0]
    assert extractor.feature_size == width and first.shape[1] == width and first.shape[0] > 50
    np.testing.assert_array_equal(first, second)


def test_librosa_set_is_33_wide_at_22050_hz():
    extractor = MSEAdapterAudioFeatureExtractor(backend="librosa")
    frames = extractor(tone(220.0), sampling_rate=RATE)["audio_values"][0]
    # One frame per 512 samples at 22,050 Hz (centred frames: one more).
    assert extractor.sampling_rate == 22_050 and frames.shape == (22_050 // 512 + 1, 33)
    np.testing.assert_array_equal(frames, extractor(tone(220.0), sampling_rate=RATE)["audio_values"][0])


def test_resampling_and_stereo_mixdown_give_the_same_features():
    extractor = MSEAdapterAudioFeatureExtractor(backend="egemaps")
    at_rate = extractor(tone(220.0), sampling_rate=RATE)["audio_values"][0]
    stereo_44k = np.stack([tone(220.0, rate=44_100)] * 2)
    resampled = extractor(stereo_44k, sampling_rate=44_100)["audio_values"][0]
    assert resampled.shape == at_rate.shape
    # Loudness and pitch descriptors agree up to resampling error.
    assert np.abs(resampled - at_rate).mean() < 0.1 * np.abs(at_rate).mean()


def test_standardisation_and_pooling_survive_a_save_round_trip(tmp_path):
    extractor = MSEAdapterAudioFeatureExtractor(backend="egemaps", pool_windows=4)
    raw = [extractor.extract_frames(tone(f), RATE) for f in (150.0, 300.0)]
    extractor.fit_standardization(raw)
    extractor.save_pretrained(tmp_path)
    restored = MSEAdapterAudioFeatureExtractor.from_pretrained(tmp_path)
    assert restored.to_dict() == extractor.to_dict()
    pooled = restored(tone(150.0), sampling_rate=RATE, return_tensors="pt")
    assert tuple(pooled["audio_values"].shape) == (1, 4, 25) and pooled["audio_lengths"].tolist() == [4]
    standardised = (np.concatenate(raw) - np.array(extractor.feature_mean)) / np.array(extractor.feature_std)
    np.testing.assert_allclose(standardised.mean(axis=0), 0.0, atol=1e-4)


def test_tiny_audio_encoder_by_path(tmp_path):
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2Model

    config = Wav2Vec2Config(
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        conv_dim=(8, 8),
        conv_stride=(5, 4),
        conv_kernel=(10, 4),
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
    )
    Wav2Vec2Model(config).save_pretrained(tmp_path)
    Wav2Vec2FeatureExtractor(sampling_rate=RATE).save_pretrained(tmp_path)
    extractor = MSEAdapterAudioFeatureExtractor(backend=str(tmp_path), layer=1)
    frames = extractor(tone(220.0, rate=8_000), sampling_rate=8_000)["audio_values"][0]
    assert extractor.feature_size == 16 and frames.shape == (RATE // 20 - 1, 16)


def test_media_files_decode_and_bad_files_are_named(tmp_path):
    clip = write_media(tmp_path / "clip.mp4", audio=tone(220.0), video_frames=10)
    silent = write_media(tmp_path / "silent.mp4", audio=None, video_frames=10)
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video")
    assert abs(load_audio(clip, RATE).shape[0] - RATE) < 2048
    assert load_audio(silent, RATE) is None
    with pytest.raises(MediaError, match=r"broken.mp4: not a readable media file"):
        load_audio(broken, RATE)
    with pytest.raises(FileNotFoundError, match=r"missing.wav: media file not found"):
        load_audio(tmp_path / "missing.wav", RATE)
    with pytest.raises(MediaError, match=r"clip.mp4: audio lasts 1.\d s, longer than max_seconds=0.5"):
        load_audio(clip, RATE, max_seconds=0.5)
    with pytest.raises(ValueError, match=r"unknown audio backend 'nope'"):
        MSEAdapterAudioFeatureExtractor(backend="nope")


def _manifest(tmp_path: Path) -> Path:
    clips = tmp_path / "clips"
    clips.mkdir()
    rows = ["path,text,label,split"]
    for index, (frequency, label) in enumerate([(150.0, "low"), (300.0, "high")] * 2):
        write_media(clips / f"a{index}.mp4", audio=tone(frequency), video_frames=5)
        rows.append(f"clips/a{index}.mp4,clip {index},{label},{'train' if index < 2 else 'test'}")
    write_media(clips / "voice.m4a", audio=tone(200.0), video_frames=0)
    write_media(clips / "silent.mp4", audio=None, video_frames=5)
    (clips / "broken.mp4").write_bytes(b"broken")
    rows += [
        "clips/voice.m4a,voice,low,train",
        "clips/silent.mp4,silent,high,train",
        "clips/broken.mp4,x,low,test",
    ]
    manifest = tmp_path / "clips.csv"
    manifest.write_text("\n".join(rows) + "\n")
    return manifest


def test_cli_extracts_reports_and_reuses_its_cache(tmp_path, capsys):
    manifest, out, cache = _manifest(tmp_path), tmp_path / "features", tmp_path / "cache"
    argv = ["extract", "--manifest", str(manifest), "--out", str(out), "--cache_dir", str(cache)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "unreadable (skipped): 1" in printed and "without audio stream: 1" in printed
    loaded = datasets.load_from_disk(str(out))
    assert sorted(loaded) == ["test", "train"] and len(loaded["train"]) == 4 and len(loaded["test"]) == 2
    assert loaded["train"].features["label"].names == ["high", "low"]
    train = loaded["train"].with_format("numpy")
    lengths = dict(zip(train["id"], train["audio_length"], strict=True))
    assert all(length == 8 for path, length in lengths.items() if "silent" not in path)
    silent = next(row for row in loaded["train"] if row["id"].endswith("silent.mp4"))
    assert silent["audio_length"] == 0 and silent["audio"] == []
    report = json.loads((out / "extraction_report.json").read_text())
    assert report["unreadable"][0]["path"].endswith("broken.mp4")
    assert [Path(p).name for p in report["without_audio"]] == ["silent.mp4"]
    restored = MSEAdapterAudioFeatureExtractor.from_pretrained(out)
    assert restored.feature_mean is not None and restored.pool_windows == 8
    cache_files = {path: path.stat().st_mtime_ns for path in cache.rglob("cache-*.arrow")}
    assert len(cache_files) == 1
    assert main(argv) == 0  # replaces its own earlier output, reusing the cached extraction
    assert {path: path.stat().st_mtime_ns for path in cache.rglob("cache-*.arrow")} == cache_files
    np.testing.assert_array_equal(
        datasets.load_from_disk(str(out))["train"].with_format("numpy")["audio"][0], train["audio"][0]
    )


@pytest.mark.parametrize(
    ("setup", "extra", "message"),
    [
        ("missing", [], r"--manifest .*nope.csv: file not found"),
        ("columns", [], r"missing columns \['label', 'split'\]"),
        ("empty", [], r"no clips; expected at least one row"),
        ("ok", ["--audio", "wobble"], r"unknown audio backend 'wobble'"),
        ("ok", ["--audio", "none", "--video", "wobble"], r"unknown video encoder 'wobble'"),
        ("ok", ["--audio", "none", "--video", "none"], r"--audio none and --video none leave nothing"),
        ("ok", ["--num_proc", "0"], r"--num_proc must be an integer >= 1, got 0"),
        ("foreign", [], r"already exists and is not an extracted feature folder"),
        ("ok", ["--fps", "-1"], r"--fps must be a number > 0, got -1"),
        ("ok", ["--max_seconds", "0"], r"--max_seconds must be a number > 0, got 0"),
        ("mixed", [], r"the labels mix numbers \(line 2: '1'\) and names \(line 3: 'abc'\)"),
        ("absent", [], r"none of its 1 clip paths exists \(first: .*gone\.wav\)"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_2(tmp_path, capsys, setup, extra, message):
    manifest = tmp_path / ("nope.csv" if setup == "missing" else "clips.csv")
    header = "path,text\n" if setup == "columns" else "path,text,label,split\n"
    rows = {"empty": "", "mixed": "a.wav,t,1,train\na.wav,t,abc,train\n", "absent": "gone.wav,t,1,train\n"}
    if setup != "missing":
        manifest.write_text(header + rows.get(setup, "a.wav,t,1,train\n"))
        write_media(tmp_path / "a.wav", audio=tone(220.0))
    out = tmp_path / "out"
    if setup == "foreign":
        out.mkdir()
        (out / "notes.txt").write_text("mine")
    with pytest.raises(SystemExit) as exit_info:
        main(["extract", "--manifest", str(manifest), "--out", str(out), *extra])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and re.search(message, error)


@pytest.fixture(scope="module")
def tiny_clip_encoder(tmp_path_factory) -> Path:
    """A 1-layer CLIP vision tower (width 16) with its image processor, saved to a folder."""
    return save_tiny_vision_encoder(tmp_path_factory.mktemp("tiny-clip"))


def test_video_processor_width_frames_round_trip_and_faceless_frames(tmp_path, tiny_clip_encoder):
    from feature_extraction_mse_adapter import MSEAdapterVideoProcessor

    clip = write_media(tmp_path / "clip.mp4", audio=tone(220.0), video_frames=20)  # 2 s at 10 frames/s
    processor = MSEAdapterVideoProcessor(encoder=str(tiny_clip_encoder), fps=2.0)
    first = processor(str(clip))
    second = processor(str(clip), return_tensors="pt")
    assert processor.feature_size == 16 and first["video_values"][0].shape == (4, 16)
    # Flat grey frames hold no face: every frame is kept whole and counted.
    assert first["frames_without_face"] == [4] and second["frames_without_face"].tolist() == [4]
    np.testing.assert_allclose(second["video_values"][0].numpy(), first["video_values"][0], rtol=1e-5)
    processor.save_pretrained(tmp_path / "saved")
    restored = MSEAdapterVideoProcessor.from_pretrained(tmp_path / "saved")
    assert restored.to_dict() == processor.to_dict() and restored.fps == 2.0
    voice = write_media(tmp_path / "voice.m4a", audio=tone(200.0))
    assert processor(str(voice))["video_lengths"] == [0]
    with pytest.raises(MediaError, match=r"clip.mp4: video lasts 2.\d s, longer than max_seconds=1"):
        MSEAdapterVideoProcessor(encoder=str(tiny_clip_encoder), max_seconds=1).decode_frames(clip)


def test_cli_with_a_video_encoder_reports_faceless_frames(tmp_path, tiny_clip_encoder):
    manifest, out = _manifest(tmp_path), tmp_path / "features"
    argv = ["extract", "--manifest", str(manifest), "--out", str(out), "--cache_dir", str(tmp_path / "cache")]
    assert main([*argv, "--audio", "none", "--video", str(tiny_clip_encoder)]) == 0
    train = datasets.load_from_disk(str(out))["train"]
    assert train.features["video"].shape == (None, 16) and train.features["audio"].shape == (None, 1)
    assert set(train["audio_length"]) == {0}
    lengths = dict(zip(train["id"], train["video_length"], strict=True))
    assert {Path(path).name: length for path, length in lengths.items()} == {
        "a0.mp4": 1,
        "a1.mp4": 1,
        "voice.m4a": 0,
        "silent.mp4": 1,
    }
    report = json.loads((out / "extraction_report.json").read_text())
    assert [Path(path).name for path in report["without_video"]] == ["voice.m4a"]
    assert report["counts"]["frames without a face"] == 5


def test_cli_with_two_processes_writes_the_same_features(tmp_path):
    manifest = _manifest(tmp_path)
    outputs = []
    for num_proc in (1, 2):
        out = tmp_path / f"features{num_proc}"
        argv = ["extract", "--manifest", str(manifest), "--out", str(out), "--num_proc", str(num_proc)]
        assert main([*argv, "--cache_dir", str(tmp_path / f"cache{num_proc}")]) == 0
        outputs.append(datasets.load_from_disk(str(out))["train"].with_format("numpy"))
    assert list(outputs[0]["id"]) == list(outputs[1]["id"])
    for first, second in zip(outputs[0]["audio"], outputs[1]["audio"], strict=True):
        np.testing.assert_array_equal(first, second)
