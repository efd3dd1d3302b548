"""EMT (ms-swift) records for EmoVerse: a record's fields checked as the EMT loader (`m2se.data`) checks
them, and its query given one `<image>` placeholder per image or video frame.

Hub remote code: imports only the standard library.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

VIDEO_TAG = "<video>"


def _describe(value: Any) -> str:
    return f"{type(value).__name__} {value!r:.200}"


def _media_paths(record: dict, key: str, index: int) -> list[str]:
    """The record's `images` / `videos` as a list of paths, accepted and refused as the EMT loader does (a
    single path may be a string)."""
    value = record.get(key)
    paths = [] if value is None else [value] if isinstance(value, str) else value
    if not isinstance(paths, list) or not all(isinstance(path, str) and path.strip() for path in paths):
        raise ValueError(
            f"EMT record {index}: {key!r} must be a path or a list of paths (non-empty strings), got "
            f"{_describe(value)}"
        )
    return paths


def check_record(record: Any, index: int, training: bool) -> None:
    """ValueError / TypeError naming record `index`, the field, what was expected and what was received."""
    if not isinstance(record, dict):
        raise TypeError(f"EMT record {index}: expected a dict, got {_describe(record)}")
    if "query" not in record:
        raise ValueError(
            f"EMT record {index} has no 'query' (expected keys query, response, images|videos); "
            f"got keys {sorted(record)}"
        )
    if training and "response" not in record:
        raise ValueError(
            f"EMT record {index} has no 'response', which training needs; got keys {sorted(record)}"
        )
    required = ("query", "response") if training else ("query",)
    for key in (*required, "system"):
        value = record.get(key)
        if (key in required or value is not None) and not isinstance(value, str):
            raise ValueError(f"EMT record {index}: {key!r} must be a string, got {_describe(value)}")


def query_and_media(
    record: dict,
    index: int,
    image_token: str,
    load_frames: Callable[[str, Sequence[int] | None], list],
) -> tuple[str, list]:
    """The record's query with one `image_token` per image / video frame, and those images / frames.

    Args:
        record: a record accepted by `check_record`.
        index: its position in the batch (named in errors).
        image_token: the placeholder of one image.
        load_frames: `(video path, 0-based frame indices or None) -> frames` (the processor's video decoder).
    """
    query = record["query"]
    images = _media_paths(record, "images", index)
    videos = _media_paths(record, "videos", index)
    if images and videos:
        raise ValueError(f"EMT record {index} has both 'images' and 'videos'; expected one of them")
    if images:
        count = query.count(image_token)
        if count == 0:
            query = f"{image_token}\n" * len(images) + query
        elif count != len(images):
            raise ValueError(
                f"EMT record {index} has {len(images)} image(s) but its query holds {count} "
                f"{image_token!r} placeholder(s)"
            )
        return query, images
    frame_indices = record.get("video_frame_indices") or [None] * len(videos)
    if len(frame_indices) != len(videos):
        raise ValueError(
            f"EMT record {index} has {len(videos)} video(s) but {len(frame_indices)} "
            "video_frame_indices entries"
        )
    frames, blocks = [], []
    for path, indices in zip(videos, frame_indices, strict=True):
        clip = load_frames(path, indices)
        frames.extend(clip)
        blocks.append(image_token * len(clip) + "\n")
    count = query.count(VIDEO_TAG)
    if count == 0:
        query = "".join(blocks) + query
    elif count == len(videos):
        for block in blocks:
            query = query.replace(VIDEO_TAG, block.rstrip("\n"), 1)
    else:
        raise ValueError(
            f"EMT record {index} has {len(videos)} video(s) but its query holds {count} {VIDEO_TAG!r} tags"
        )
    return query, frames


__all__ = ["VIDEO_TAG", "check_record", "query_and_media"]
