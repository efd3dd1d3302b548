"""Speed of the MSE-Adapter feature extractors and of the extraction command.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_features.py --seconds 10 --clips 24

* real-time factor of each audio backend (seconds of audio per second of compute, one thread): the median of
  ``--repeats`` interleaved runs on ``--seconds`` of a chirp plus noise after one warm-up call (the first call
  loads openSMILE / compiles librosa's numba kernels), with ``opensmile.Smile.process_signal`` called directly
  on the same signal as the ceiling of the openSMILE backends;
* frames per second of the video path (PyAV decoding at 2 fps, Haar face detection, a small CLIP vision
  tower built from a config: 4 layers, width 128, 224 px);
* clips per second of ``python -m m2se.features extract`` (eGeMAPS, 3 s MP4 clips with AAC audio) with
  ``--num_proc`` 1 and 2, each run on a fresh cache.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import av
import numpy as np
import torch

from feature_extraction_mse_adapter import MSEAdapterAudioFeatureExtractor, MSEAdapterVideoProcessor
from m2se.features.__main__ import main as extract_main

RATE = 16_000


def test_signal(seconds: float, rate: int = RATE) -> np.ndarray:
    time_axis = np.arange(int(seconds * rate)) / rate
    chirp = np.sin(2 * np.pi * (100 + 300 * time_axis / seconds) * time_axis)
    noise = np.random.default_rng(0).normal(scale=0.05, size=time_axis.shape)
    return (0.5 * chirp + noise).astype(np.float32)


def write_clip(path: Path, seconds: float, frequency: float) -> None:
    with av.open(str(path), "w") as container:
        video = container.add_stream("mpeg4", rate=10)
        video.width, video.height, video.pix_fmt = 224, 224, "yuv420p"
        audio = container.add_stream("aac", rate=RATE, layout="mono")
        rng = np.random.default_rng(int(frequency))
        for _ in range(int(seconds * 10)):
            image = rng.integers(0, 255, (224, 224, 3), dtype=np.uint8)
            container.mux(video.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(video.encode())
        samples = (0.5 * np.sin(2 * np.pi * frequency * np.arange(int(seconds * RATE)) / RATE)).astype(
            np.float32
        )
        frame = av.AudioFrame.from_ndarray(samples[None, :], format="fltp", layout="mono")
        frame.sample_rate = RATE
        container.mux(audio.encode(frame))
        container.mux(audio.encode())


def real_time_factors(seconds: float, repeats: int) -> dict[str, float]:
    """Median real-time factor of each backend, and of openSMILE called directly (its ceiling here)."""
    import opensmile

    signal = test_signal(seconds)
    runs: dict[str, Callable[[], object]] = {}
    for backend in ("egemaps", "compare", "librosa"):
        extractor = MSEAdapterAudioFeatureExtractor(backend=backend)
        runs[backend] = partial(extractor.extract_frames, signal, RATE)
    for name, feature_set in (
        ("egemaps", opensmile.FeatureSet.eGeMAPSv02),
        ("compare", opensmile.FeatureSet.ComParE_2016),
    ):
        smile = opensmile.Smile(
            feature_set=feature_set, feature_level=opensmile.FeatureLevel.LowLevelDescriptors
        )
        runs[f"{name}, opensmile.Smile alone"] = partial(smile.process_signal, signal, RATE)
    for run in runs.values():
        run()  # warm-up: loads openSMILE's configuration, compiles librosa's numba kernels
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):  # interleaved, so that a change of machine load hits every backend alike
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return {name: seconds / statistics.median(values) for name, values in times.items()}


def video_frames_per_second(folder: Path) -> float:
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel

    encoder = folder / "clip-vision"
    config = CLIPVisionConfig(
        hidden_size=128, intermediate_size=512, num_hidden_layers=4, num_attention_heads=4, patch_size=32
    )
    CLIPVisionModel(config).save_pretrained(encoder)
    CLIPImageProcessor().save_pretrained(encoder)
    clip = folder / "video.mp4"
    write_clip(clip, 10.0, 220.0)
    processor = MSEAdapterVideoProcessor(encoder=str(encoder), fps=2.0)
    processor(str(clip))  # warm-up
    start = time.perf_counter()
    frames = processor(str(clip))["video_lengths"][0]
    return frames / (time.perf_counter() - start)


def cli_clips_per_second(folder: Path, clips: int, num_proc: int) -> float:
    manifest = folder / "clips.csv"
    if not manifest.is_file():
        rows = ["path,text,label,split"]
        for index in range(clips):
            write_clip(folder / f"clip{index}.mp4", 3.0, 150.0 + 10 * index)
            rows.append(f"clip{index}.mp4,clip {index},{index % 2},{'train' if index % 4 else 'test'}")
        manifest.write_text("\n".join(rows) + "\n")
    start = time.perf_counter()
    extract_main(
        [
            "extract",
            "--manifest",
            str(manifest),
            "--out",
            str(folder / f"out{num_proc}"),
            "--num_proc",
            str(num_proc),
            "--cache_dir",
            str(folder / f"cache{num_proc}"),
        ]
    )
    return clips / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="audio length for the real-time factors")
    parser.add_argument("--clips", type=int, default=24, help="clips in the extraction manifest")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per audio backend (median)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"load average at start: {os.getloadavg()}")
    rows = [
        (f"audio {name} (x real time, 1 thread)", value)
        for name, value in real_time_factors(args.seconds, args.repeats).items()
    ]
    with tempfile.TemporaryDirectory() as folder:
        rows.append(("video path, tiny CLIP 224 px (frames/s)", video_frames_per_second(Path(folder))))
        one = cli_clips_per_second(Path(folder), args.clips, 1)
        two = cli_clips_per_second(Path(folder), args.clips, 2)
    rows += [("extract CLI --num_proc 1 (clips/s)", one), ("extract CLI --num_proc 2 (clips/s)", two)]
    rows.append(("CLI scaling 2 / 1 processes", two / one))
    print(f"load average at end: {os.getloadavg()}")
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value:8.2f}")


if __name__ == "__main__":
    main()
