"""EmoVerse video input: real MP4 clips written with PyAV, decoded, sampled and fed to the model."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
import torch

from processing_emoverse import VideoDecodingError

pytest_plugins = ["test_emoverse_common"]  # the shared EmoVerse fixtures

NUM_FRAMES = 10


def write_clip(path: Path, num_frames: int = NUM_FRAMES, container_format: str | None = None) -> str:
    """A 48 x 32 clip whose frame i is uniformly grey at level 25 * i: decoded frames identify themselves."""
    with av.open(str(path), "w", format=container_format) as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 48, 32, "yuv420p"
        container.start_encoding()
        for index in range(num_frames):
            pixels = np.full((32, 48, 3), 25 * index, dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                container.mux(packet)
        if num_frames:
            for packet in stream.encode():
                container.mux(packet)
    return str(path)


def frame_number(frame: np.ndarray) -> int:
    return round(float(frame.mean()) / 25)


def test_clip_is_decoded_and_sampled_uniformly(emoverse_processor, tmp_path):
    clip = write_clip(tmp_path / "clip.mp4")
    frames = emoverse_processor.load_video_frames(clip, num_frames=4)
    assert [frame.shape for frame in frames] == [(32, 48, 3)] * 4
    assert [frame_number(frame) for frame in frames] == [1, 3, 6, 8]  # centres of 4 equal segments of 10
    short = emoverse_processor.load_video_frames(
        write_clip(tmp_path / "short.mp4", num_frames=3), num_frames=8
    )
    assert [frame_number(frame) for frame in short] == [0, 1, 2]


def test_given_frame_indices_are_returned_in_order(emoverse_processor, tmp_path):
    clip = write_clip(tmp_path / "clip.mp4")
    # e.g. an OpenFace peak frame 8 (1-based) -> index 7, plus a repeated and an earlier frame
    frames = emoverse_processor.load_video_frames(clip, frame_indices=[7, 2, 7])
    assert [frame_number(frame) for frame in frames] == [7, 2, 7]
    with pytest.raises(ValueError, match=r"frame indices \[10\] are outside the 10 frames of .*clip\.mp4"):
        emoverse_processor.load_video_frames(clip, frame_indices=[10])


def test_emt_video_record_gets_one_visual_block_per_frame(emoverse_model, emoverse_processor, tmp_path):
    clip = write_clip(tmp_path / "dia1_utt0.mp4")
    records = [
        {"query": "<video> What is the emotional state?", "response": "Joy.", "videos": [clip]},
        {"query": "Peak only.", "response": "Sad.", "videos": [clip], "video_frame_indices": [[4]]},
    ]
    batch = emoverse_processor.process_emt_records(records)
    per_sample = (batch["input_ids"] == emoverse_processor.image_token_id).sum(dim=1).tolist()
    frames = min(emoverse_processor.num_video_frames, NUM_FRAMES)
    assert per_sample == [frames * 4, 1 * 4]
    assert batch["pixel_values"].shape == (frames + 1, 3, 32, 32)
    assert "<video>" not in emoverse_processor.tokenizer.decode(batch["input_ids"][0])
    loss = emoverse_model(**batch).loss
    assert torch.isfinite(loss)


def test_corrupt_and_frameless_videos_name_the_path(emoverse_processor, tmp_path):
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42 not a real movie" * 4)
    with pytest.raises(VideoDecodingError, match=f"cannot decode video file {corrupt}"):
        emoverse_processor.load_video_frames(corrupt)
    empty = write_clip(tmp_path / "empty.mkv", num_frames=0, container_format="matroska")
    with pytest.raises(VideoDecodingError, match=f"video {empty} has no decodable frame"):
        emoverse_processor.process_emt_records([{"query": "q", "response": "r", "videos": [empty]}])
    with pytest.raises(FileNotFoundError, match="missing"):
        emoverse_processor.load_video_frames(tmp_path / "missing.mp4")


def test_record_with_images_and_videos_is_rejected(emoverse_processor, tmp_path):
    record = {"query": "q", "response": "r", "images": ["a.png"], "videos": ["b.mp4"]}
    with pytest.raises(ValueError, match="both 'images' and 'videos'"):
        emoverse_processor.process_emt_records([record])
