"""EmoVerse media loading: images (paths, PIL images, arrays, tensors) checked and turned into RGB, video
frames decoded with PyAV (`transformers.video_utils.load_video`), a saveable stand-in for timm image
processors, and the pretrained parts (encoder, LLM, their processors, a checkpoint) loaded by name/path with
one error naming the part when the name/path is neither a folder nor a loadable Hub id.

Hub remote code: imports only transformers, torch and the standard library.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from typing import Any

import torch
from transformers.image_utils import PILImageResampling, is_pil_image, load_image
from transformers.video_utils import load_video

ImageInput = Any  # a path, a PIL image, or an (H, W), (H, W, C) or (C, H, W) array or tensor, C in 1, 3, 4
IMAGE_CHANNELS = (
    1,
    3,
    4,
)  # grayscale, RGB, RGBA (the alpha channel is dropped, as PIL's RGB conversion does)
TIMM_RESAMPLING = {"bicubic": PILImageResampling.BICUBIC, "bilinear": PILImageResampling.BILINEAR}


# A Hub model id: "name" or "namespace/name", each part of letters, digits, "_", "-", "." that neither starts
# nor ends with "-" or "." (huggingface_hub's rule, which would otherwise fail deep inside the download code).
# MSE-Adapter's remote code holds the same rule: neither model's checkpoint ships the other's modules.
_HUB_ID_PART = r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,94}[A-Za-z0-9_])?"
_HUB_MODEL_ID = re.compile(rf"(?:{_HUB_ID_PART}/)?{_HUB_ID_PART}")


def load_pretrained_part(loader: type, name_or_path: str | os.PathLike, part: str, **kwargs) -> Any:
    """`loader.from_pretrained(name_or_path, **kwargs)`, or one error naming `part` (e.g. "the vision tower")
    and the value when it is neither an existing folder nor a Hub model id that can be loaded; transformers'
    own messages name neither (a missing folder reads as a malformed repo id)."""
    name_or_path = os.fspath(name_or_path)
    is_folder = os.path.isdir(name_or_path)
    is_hub_id = (
        bool(_HUB_MODEL_ID.fullmatch(name_or_path)) and ".." not in name_or_path and "--" not in name_or_path
    )
    if not is_folder and not is_hub_id:
        raise ValueError(
            f"{part} is {name_or_path!r}: neither an existing folder nor a Hub model id ('name' or "
            "'namespace/name')"
        )
    try:
        return loader.from_pretrained(name_or_path, **kwargs)
    except OSError as error:
        if is_folder:
            raise  # transformers names the file the folder lacks
        offline = os.environ.get("HF_HUB_OFFLINE", "").upper() in ("1", "ON", "YES", "TRUE")
        raise OSError(
            f"{part} is {name_or_path!r}: not an existing folder, and it could not be loaded as a Hub "
            f"model id{' offline (HF_HUB_OFFLINE is set)' if offline else ''} ({error})"
        ) from None


class VideoDecodingError(ValueError):
    """A video file that cannot be read, has no decodable frame, or lacks the requested frames."""


def portable_image_processor(image_processor):
    """A saveable transformers image processor equivalent to a timm one (whose `save_pretrained` is disabled).

    Resizes the whole image to the encoder's input size (no centre crop, so faces near the border are kept)
    and normalises with the encoder's mean/std. Other image processors are returned unchanged.
    """
    data_config = getattr(image_processor, "data_config", None)
    if data_config is None:
        return image_processor
    from transformers import SiglipImageProcessor  # a plain resize + rescale + normalise + RGB conversion

    _, height, width = data_config["input_size"]
    return SiglipImageProcessor(
        size={"height": height, "width": width},
        resample=TIMM_RESAMPLING.get(data_config.get("interpolation"), PILImageResampling.BICUBIC),
        image_mean=list(data_config["mean"]),
        image_std=list(data_config["std"]),
        do_convert_rgb=True,
    )


def _rgb_array(image: ImageInput, index: int):
    """An array or tensor as an (H, W, 3) numpy array; TypeError / ValueError naming image `index`."""
    try:
        pixels = torch.as_tensor(image)
    except (TypeError, ValueError, RuntimeError) as error:
        raise TypeError(
            f"image {index}: expected a path, a PIL image or a numeric array/tensor, got "
            f"{type(image).__name__} ({error})"
        ) from error
    if pixels.dtype == torch.bool or pixels.is_complex():
        raise TypeError(f"image {index}: expected real-valued pixels, got dtype {pixels.dtype}")
    if pixels.dim() == 2:
        pixels = pixels.unsqueeze(-1)
    elif pixels.dim() == 3 and pixels.shape[-1] not in IMAGE_CHANNELS and pixels.shape[0] in IMAGE_CHANNELS:
        pixels = pixels.permute(1, 2, 0)  # (C, H, W) -> (H, W, C)
    if pixels.dim() != 3 or pixels.shape[-1] not in IMAGE_CHANNELS:
        raise ValueError(
            f"image {index}: expected an (H, W), (H, W, C) or (C, H, W) array with C in {IMAGE_CHANNELS}, "
            f"got shape {tuple(pixels.shape)}"
        )
    if pixels.shape[0] == 0 or pixels.shape[1] == 0:
        raise ValueError(
            f"image {index} is {pixels.shape[1]}x{pixels.shape[0]} pixels; expected at least 1x1"
        )
    if pixels.is_floating_point() and not torch.isfinite(pixels).all():
        raise ValueError(f"image {index} holds NaN or Inf pixel values; expected finite values")
    if pixels.shape[-1] == 1:
        pixels = pixels.expand(-1, -1, 3)
    return pixels[..., :3].contiguous().cpu().numpy()


def load_checked_image(image: ImageInput, index: int = 0):
    """An image as an RGB PIL image or an (H, W, 3) array (grayscale, RGBA and palette images converted).

    Raises FileNotFoundError / ValueError / TypeError naming image `index` (or the file) for a missing or
    unreadable file, an empty (0 x 0) image, a wrong shape or dtype, or NaN / Inf pixels.
    """
    if isinstance(image, (str, os.PathLike)):
        path = os.fspath(image)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"image file not found: {path}")
        try:
            image = load_image(path)
        except Exception as error:  # PIL raises several unrelated types for unreadable files
            raise ValueError(f"cannot read image file {path}: {error}") from error
    if is_pil_image(image):
        if image.width == 0 or image.height == 0:
            raise ValueError(f"image {index} is {image.width}x{image.height} pixels; expected at least 1x1")
        return load_image(image)
    if isinstance(image, (str, bytes, dict)) or not hasattr(image, "__len__"):
        raise TypeError(
            f"image {index}: expected a path, a PIL image or an (H, W, C) array or tensor, got "
            f"{type(image).__name__}"
        )
    return _rgb_array(image, index)


def flat_images(images: ImageInput | list | None, num_placeholders: int, image_token: str) -> list:
    """All images of a batch as one flat list (given flat, one list per text, or a single image); ValueError
    unless there is one image per `image_token` placeholder of the text."""
    images = [] if images is None else images if isinstance(images, (list, tuple)) else [images]
    flat = [image for item in images for image in (item if isinstance(item, (list, tuple)) else [item])]
    if num_placeholders != len(flat):
        raise ValueError(
            f"got {len(flat)} image(s) but the text holds {num_placeholders} {image_token!r} "
            "placeholder(s); pass one image per placeholder"
        )
    return flat


def pixel_values(image_processor, images: list[ImageInput]) -> torch.Tensor:
    """`(num_images, 3, height, width)` pixel values of checked images (see `load_checked_image`)."""
    loaded = [load_checked_image(image, index) for index, image in enumerate(images)]
    # channels last: the images are (H, W, 3); a 1 x 1 or 3 x 3 image would otherwise be ambiguous
    values = image_processor(loaded, return_tensors="pt", input_data_format="channels_last")["pixel_values"]
    non_finite = (~torch.isfinite(values)).flatten(1).any(dim=1).nonzero().flatten().tolist()
    if non_finite:  # e.g. float64 pixels beyond float32's range
        raise ValueError(f"images {non_finite} give NaN or Inf pixel_values; expected finite pixel values")
    return values


def load_video_frames(
    path: str | os.PathLike, num_frames: int, frame_indices: Sequence[int] | None = None
) -> list:
    """Decode a video with PyAV and return frames as (H, W, 3) uint8 arrays.

    Args:
        path: the video file.
        num_frames: frames sampled uniformly over the clip (fewer when the clip is shorter).
        frame_indices: 0-based frames to take instead, in the given order, e.g. the OpenFace peak frame:
            `m2se.facial.peak_frame` returns OpenFace's 1-based `frame`, so pass `[frame - 1]`.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"video file not found: {path}")
    requested: list[int] = []

    def sample_indices(metadata, **_) -> list[int]:
        total = metadata.total_num_frames
        if total <= 0:
            raise VideoDecodingError(f"video {path} has no decodable frame")
        if frame_indices is None:
            count = min(num_frames, total)
            requested.extend(int((i + 0.5) * total / count) for i in range(count))
        else:
            out_of_range = [index for index in frame_indices if not 0 <= index < total]
            if out_of_range:
                raise VideoDecodingError(
                    f"frame indices {out_of_range} are outside the {total} frames of {path} (0-based)"
                )
            requested.extend(frame_indices)
        return sorted(set(requested))

    try:
        frames, _ = load_video(path, backend="pyav", sample_indices_fn=sample_indices)
    except VideoDecodingError:
        raise
    except Exception as error:  # PyAV and numpy raise their own types for unreadable or empty streams
        # EOF before any frame, or numpy.stack over zero decoded frames
        if isinstance(error, EOFError) or "at least one array" in str(error):
            raise VideoDecodingError(f"video {path} has no decodable frame") from error
        raise VideoDecodingError(
            f"cannot decode video file {path} ({type(error).__name__}: {error}); expected a readable "
            "video file with a video stream"
        ) from error
    unique = sorted(set(requested))
    if len(frames) != len(unique):
        raise VideoDecodingError(f"decoded {len(frames)} of the requested frames {unique} of video {path}")
    by_index = dict(zip(unique, frames, strict=True))
    return [by_index[index] for index in requested]


__all__ = [
    "VideoDecodingError",
    "flat_images",
    "load_checked_image",
    "load_video_frames",
    "pixel_values",
    "portable_image_processor",
]
