"""MSE-Adapter's video path on a real face and with a timm encoder (both offline).

tests/assets/face.jpg is a 128 x 128 crop of the public-domain NASA portrait of astronaut Eileen Collins (the
`astronaut` sample image that scikit-image ships), small enough to keep in the repository.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image
from test_emoverse_common import save_tiny_vit

from feature_extraction_mse_adapter import MSEAdapterVideoProcessor

FACE = Path(__file__).parent / "assets" / "face.jpg"


def write_video(path: Path, frames: list[np.ndarray], rate: int = 4) -> Path:
    """RGB frames -> an MPEG-4 video at ``rate`` frames per second."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=rate)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        stream.bit_rate = 2_000_000
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return path


@pytest.fixture(scope="module")
def tiny_timm_encoder(tmp_path_factory) -> Path:
    """A 2-block timm ViT-Tiny (32 x 32 input, width 192) behind transformers' TimmWrapperModel."""
    return save_tiny_vit(tmp_path_factory.mktemp("timm-vit"))


def test_a_face_is_found_and_each_frame_is_cropped_to_it(tmp_path, tiny_timm_encoder):
    face = np.asarray(Image.open(FACE).convert("RGB"))
    background = np.full_like(face, 90)
    clip = write_video(tmp_path / "face.mp4", [face, face, background, face])  # 1 s at 4 frames/s
    processor = MSEAdapterVideoProcessor(encoder=str(tiny_timm_encoder), fps=4.0)
    frames = processor.decode_frames(clip)
    cropped, without_face = processor.crop_faces(frames)
    # The three face frames are cut to the face (a square box well inside the 128 x 128 frame); the blank
    # frame stays whole and is counted.
    assert without_face == 1 and len(cropped) == 4
    assert cropped[2].shape == face.shape
    for crop in (cropped[0], cropped[1], cropped[3]):
        height, width, _ = crop.shape
        assert height == width and 32 <= height <= 80, crop.shape
    output = processor(str(clip))
    assert output["frames_without_face"] == [1] and output["video_values"][0].shape == (4, 192)
    whole = MSEAdapterVideoProcessor(encoder=str(tiny_timm_encoder), fps=4.0, crop_face=False)(str(clip))
    assert whole["frames_without_face"] == [0]
    # Where a face was found the encoder sees the crop, not the whole frame; the blank frame is unchanged.
    assert not np.allclose(output["video_values"][0][0], whole["video_values"][0][0], atol=1e-4)
    np.testing.assert_allclose(output["video_values"][0][2], whole["video_values"][0][2], rtol=1e-5)


def test_a_timm_encoder_declares_its_width_and_round_trips(tmp_path, tiny_timm_encoder):
    face = np.asarray(Image.open(FACE).convert("RGB"))
    clip = write_video(tmp_path / "face.mp4", [face] * 8)  # 2 s at 4 frames/s
    processor = MSEAdapterVideoProcessor(encoder=str(tiny_timm_encoder), fps=2.0)
    assert processor.feature_size == 192  # ViT-Tiny's num_features: the timm config has no hidden_size
    processor.save_pretrained(tmp_path / "saved")
    restored = MSEAdapterVideoProcessor.from_pretrained(tmp_path / "saved")
    assert restored.feature_size == 192 and restored.encoder == str(tiny_timm_encoder)
    first, second = processor(str(clip), return_tensors="pt"), restored(str(clip), return_tensors="pt")
    assert first["video_values"].shape == (1, 4, 192) and first["video_lengths"].tolist() == [4]
    np.testing.assert_allclose(first["video_values"].numpy(), second["video_values"].numpy(), rtol=1e-6)
    assert np.isfinite(first["video_values"].numpy()).all() and first["video_values"].abs().sum() > 0
