"""Media made in the tests: MP4 / M4A clips of sine tones (PyAV: AAC audio, MPEG-4 video) and a tiny seeded
vision encoder, shared by the pipeline and end-to-end tests."""

from __future__ import annotations

import fractions
from pathlib import Path

import av
import numpy as np
import torch
from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel


def write_clip(
    path: Path,
    frequency: float = 220.0,
    seconds: float = 1.0,
    audio: bool = True,
    video: bool = True,
    silent: bool = False,
    sampling_rate: int = 16_000,
    fps: int = 8,
    size: int = 32,
    brightness: int = 0,
) -> Path:
    """An MP4 (mpeg4 video and/or AAC audio) or M4A: a sine tone at `frequency` Hz (zeros when `silent`) and
    frames of one shade that drifts with time."""
    with av.open(str(path), "w") as container:
        video_stream = audio_stream = None
        if video:
            video_stream = container.add_stream("mpeg4", rate=fps)
            video_stream.width = video_stream.height = size
            video_stream.pix_fmt = "yuv420p"
        if audio:
            audio_stream = container.add_stream("aac", rate=sampling_rate)
            audio_stream.layout = "mono"
        if video_stream is not None:
            for index in range(int(seconds * fps)):
                shade = (brightness + 16 * index) % 256
                image = np.full((size, size, 3), shade, dtype=np.uint8)
                for packet in video_stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                    container.mux(packet)
            for packet in video_stream.encode():
                container.mux(packet)
        if audio_stream is not None:
            time = np.arange(int(seconds * sampling_rate)) / sampling_rate
            wave = np.zeros_like(time) if silent else 0.5 * np.sin(2 * np.pi * frequency * time)
            wave = wave.astype(np.float32)
            for start in range(0, len(wave), 1024):
                frame = av.AudioFrame.from_ndarray(
                    wave[None, start : start + 1024], format="flt", layout="mono"
                )
                frame.sample_rate = sampling_rate
                frame.pts = start
                frame.time_base = fractions.Fraction(1, sampling_rate)
                for packet in audio_stream.encode(frame):
                    container.mux(packet)
            for packet in audio_stream.encode():
                container.mux(packet)
    return path


def save_tiny_vision_encoder(folder: Path) -> Path:
    """A seeded 1-layer CLIP vision tower (width 16) with its image processor: every weight is saved, so the
    frame features are the same in every process."""
    config = CLIPVisionConfig(
        image_size=32,
        patch_size=16,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
    )
    torch.manual_seed(0)
    CLIPVisionModel(config).save_pretrained(folder)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(
        folder
    )
    return folder
