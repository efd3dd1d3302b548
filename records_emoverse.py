"""EMT (ms-swift) records for EmoVerse: a record's fields checked as the EMT loader (`m2se.data`) checks
them, its query given one `<image>` placeholder per image or video frame (expanded to the visual tokens), its
chat turns (system prompt, query, response) rendered with the chat template into token ids and labels, and
those rows padded into a batch.

Hub remote code: imports only the standard library (the tokenizer, or the processor holding it, is passed in).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
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


def expand_image_tokens(text: str, image_token: str, image_seq_length: int) -> str:
    """Each `image_token` of `text` repeated `image_seq_length` times (one token per visual token)."""
    return text.replace(image_token, image_token * image_seq_length)


def emt_rows(processor, records: Iterable[dict], training: bool) -> tuple[dict[str, list[list[int]]], list]:
    """Checked EMT records as token rows for `processor` (its tokenizer, chat template, system prompt, image
    token and video frame loading): `input_ids` and, when `training`, `labels` (`conversation_ids`); and the
    records' images / video frames in placeholder order. A single record or string is refused."""
    if isinstance(records, (dict, str)):
        raise TypeError(
            f"process_emt_records expects a list of EMT records, got a single {type(records).__name__}"
        )
    records = list(records)
    if not records:
        raise ValueError("process_emt_records got no EMT record; expected at least one")
    for index, record in enumerate(records):
        check_record(record, index, training)
    rows: dict[str, list] = {"input_ids": [], "labels": []}
    media = []
    for index, record in enumerate(records):
        query, record_media = query_and_media(
            record, index, processor.image_token, processor.load_video_frames
        )
        media.extend(record_media)
        ids, labels = conversation_ids(
            processor.tokenizer,
            processor.chat_template,
            record.get("system") or processor.system_prompt,
            expand_image_tokens(query, processor.image_token, processor.image_seq_length),
            record["response"] if training else None,
        )
        rows["input_ids"].append(ids)
        rows["labels"].append(labels)
    return (rows if training else {"input_ids": rows["input_ids"]}), media


def check_lengths(sequences: list[list[int]], limit: int, image_token_id: int, image_seq_length: int) -> None:
    """ValueError for the first sequence longer than `limit`, naming its length and its number of images."""
    for index, ids in enumerate(sequences):
        if len(ids) > limit:
            num_images = ids.count(image_token_id) // image_seq_length
            raise ValueError(
                f"sample {index} is {len(ids)} tokens long after expanding {num_images} image(s) to "
                f"{image_seq_length} tokens each, more than the maximum length {limit}"
            )


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


def pad_rows(rows: dict[str, list[list[int]]], tokenizer, padding_side: str) -> dict[str, list[list[int]]]:
    """`input_ids` (padded with the pad token, else EOS), their `attention_mask` and, when given, `labels`
    (padded with `IGNORE_INDEX`), every row as long as the longest, padded on `padding_side` ("left" or
    "right")."""
    pad_id = tokenizer.eos_token_id if tokenizer.pad_token_id is None else tokenizer.pad_token_id
    longest = max(len(ids) for ids in rows["input_ids"])
    rows = {**rows, "attention_mask": [[1] * len(ids) for ids in rows["input_ids"]]}
    fill = {"input_ids": pad_id, "attention_mask": 0, "labels": IGNORE_INDEX}
    padded = {}
    for key, values in rows.items():
        fillers = [[fill[key]] * (longest - len(row)) for row in values]
        pairs = (
            zip(fillers, values, strict=True) if padding_side == "left" else zip(values, fillers, strict=True)
        )
        padded[key] = [first + second for first, second in pairs]
    return padded


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
    "check_lengths",
    "check_record",
    "conversation_ids",
    "emt_rows",
    "end_of_turn_id",
    "expand_image_tokens",
    "pad_rows",
    "query_and_media",
]
