"""EMT (ms-swift) records for EmoVerse: a record's fields checked as the EMT loader (`m2se.data`) checks
them, its query given one `<image>` placeholder per image or video frame, and its chat turns (system prompt,
query, response) rendered with the chat template into token ids and labels.

Hub remote code: imports only the standard library (the tokenizer is passed in).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

VIDEO_TAG = "<video>"
IGNORE_INDEX = -100

# ChatML, used when the tokenizer brings no chat template of its own.
DEFAULT_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


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
    load_frames: Callable[..., list],
) -> tuple[str, list]:
    """The record's query with one `image_token` per image / video frame, and those images / frames.

    Args:
        record: a record accepted by `check_record`.
        index: its position in the batch (named in errors).
        image_token: the placeholder of one image.
        load_frames: `load_frames(video path, frame_indices=0-based indices or None) -> frames` (the
            processor's `load_video_frames`).
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
        clip = load_frames(path, frame_indices=indices)
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


def render_chat(tokenizer, chat_template: str, messages: list[dict], add_generation_prompt: bool) -> str:
    return tokenizer.apply_chat_template(
        messages, chat_template=chat_template, tokenize=False, add_generation_prompt=add_generation_prompt
    )


def conversation_ids(
    tokenizer, chat_template: str, system: str, query: str, response: str | None
) -> tuple[list[int], list[int] | None]:
    """Token ids of the system and user turns followed by the assistant header, then (when `response` is
    given) the response and its end of turn; and the labels: the response tokens, `IGNORE_INDEX` elsewhere
    (None without a response)."""
    messages = [{"role": "system", "content": system}, {"role": "user", "content": query}]
    prompt = render_chat(tokenizer, chat_template, messages, add_generation_prompt=True)
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    if response is None:
        return prompt_ids, None
    messages.append({"role": "assistant", "content": response})
    full = render_chat(tokenizer, chat_template, messages, add_generation_prompt=False)
    if not full.startswith(prompt):
        raise ValueError("the chat template must render the prompt as a prefix of the full conversation")
    response_ids = tokenizer(full[len(prompt) :], add_special_tokens=False)["input_ids"]
    return prompt_ids + response_ids, [IGNORE_INDEX] * len(prompt_ids) + response_ids


def end_of_turn_id(tokenizer, chat_template: str) -> int:
    """The token that ends an assistant answer: the chat template's end of turn when it is one special token
    (ChatML's `<|im_end|>`), else EOS."""
    messages = [{"role": "user", "content": "?"}]
    prompt = render_chat(tokenizer, chat_template, messages, add_generation_prompt=True)
    full = render_chat(tokenizer, chat_template, [*messages, {"role": "assistant", "content": "."}], False)
    after = tokenizer(full[len(prompt) + 1 :], add_special_tokens=False)["input_ids"]
    return after[0] if after and after[0] in tokenizer.all_special_ids else tokenizer.eos_token_id


__all__ = [
    "DEFAULT_CHAT_TEMPLATE",
    "IGNORE_INDEX",
    "VIDEO_TAG",
    "check_record",
    "conversation_ids",
    "end_of_turn_id",
    "query_and_media",
]
