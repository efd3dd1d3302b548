"""Processor for EmoVerse: an image processor, the LLM's tokenizer and a chat template with the paper's
system prompt.

Hub remote code: imports only transformers, torch and the standard library. Videos are decoded with
`transformers.video_utils.load_video` (PyAV backend).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from typing import Any

import torch
from transformers import AutoImageProcessor, AutoTokenizer, BatchFeature, ProcessorMixin
from transformers.image_utils import PILImageResampling, is_pil_image, load_image
from transformers.video_utils import load_video

DEFAULT_SYSTEM_PROMPT = "You are an sentiment and emotion analysis expert."
VIDEO_TAG = "<video>"
IGNORE_INDEX = -100

# ChatML, used when the tokenizer brings no chat template of its own.
DEFAULT_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

TIMM_RESAMPLING = {"bicubic": PILImageResampling.BICUBIC, "bilinear": PILImageResampling.BILINEAR}

ImageInput = Any  # a path, a PIL image, or an (H, W, C) / (C, H, W) array or tensor


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


class EmoVerseProcessor(ProcessorMixin):
    r"""Builds EmoVerse inputs: expands each `<image>` into `image_seq_length` image tokens, preprocesses the
    images / video frames into `pixel_values` and, for EMT records, renders the chat and masks the labels.

    Args:
        image_processor: the vision encoder's image processor (images are converted to RGB and resized).
        tokenizer: the LLM's tokenizer, holding `image_token` as a special token (see `from_parts`).
        chat_template (`str`, *optional*): Jinja chat template; defaults to the tokenizer's, else ChatML.
        image_token (`str`, defaults to `"<image>"`).
        image_seq_length (`int`, defaults to 4): visual tokens per image (`model.config.image_seq_length`).
        system_prompt (`str`): the paper's system prompt unless a record brings its own `system`.
        num_video_frames (`int`, defaults to 8): frames sampled uniformly from a video without given indices.
        max_length (`int`, *optional*): longest allowed sequence after expansion; defaults to the tokenizer's
            `model_max_length`.
    """

    def __init__(
        self,
        image_processor=None,
        tokenizer=None,
        chat_template: str | None = None,
        image_token: str = "<image>",
        image_seq_length: int = 4,
        system_prompt: str = DEFAULT_SYSTEM_PROMPT,
        num_video_frames: int = 8,
        max_length: int | None = None,
        **kwargs,
    ):
        if image_seq_length <= 0 or num_video_frames <= 0:
            raise ValueError(
                f"image_seq_length and num_video_frames must be positive, got {image_seq_length} and "
                f"{num_video_frames}"
            )
        self.image_token = image_token
        self.image_seq_length = image_seq_length
        self.system_prompt = system_prompt
        self.num_video_frames = num_video_frames
        self.max_length = max_length
        if chat_template is None:
            chat_template = getattr(tokenizer, "chat_template", None) or DEFAULT_CHAT_TEMPLATE
        super().__init__(image_processor, tokenizer, chat_template=chat_template)
        image_token_id = tokenizer.convert_tokens_to_ids(image_token)
        if image_token_id is None or image_token_id == tokenizer.unk_token_id:
            raise ValueError(
                f"the tokenizer has no token {image_token!r}; build the processor with "
                "EmoVerseProcessor.from_parts"
            )
        self.image_token_id = image_token_id

    @classmethod
    def from_parts(
        cls, image_processor, tokenizer, *, image_seq_length: int, image_token: str = "<image>", **kwargs
    ) -> EmoVerseProcessor:
        """Build the processor from the vision encoder's image processor and the LLM's tokenizer.

        Args:
            image_processor: an image processor or a name/path for `AutoImageProcessor` (timm processors are
                converted by [`portable_image_processor`] so the processor can be saved).
            tokenizer: a tokenizer or a name/path for `AutoTokenizer`; a copy gets `image_token` as a special
                token (its id is `len(tokenizer)`, the id `EmoVerseForConditionalGeneration.from_parts`
                expects).
            image_seq_length: `model.config.image_seq_length`.
            kwargs: other `__init__` arguments (`system_prompt`, `num_video_frames`, `max_length`...).
        """
        if isinstance(image_processor, (str, os.PathLike)):
            image_processor = AutoImageProcessor.from_pretrained(str(image_processor))
        if isinstance(tokenizer, (str, os.PathLike)):
            tokenizer = AutoTokenizer.from_pretrained(str(tokenizer))
        else:
            tokenizer = copy.deepcopy(tokenizer)
        if image_token not in tokenizer.get_vocab():
            tokenizer.add_tokens([image_token], special_tokens=True)
        return cls(
            portable_image_processor(image_processor),
            tokenizer,
            image_token=image_token,
            image_seq_length=image_seq_length,
            **kwargs,
        )

    @staticmethod
    def load_image(image: ImageInput):
        """A path or PIL image as an RGB PIL image (grayscale, RGBA and palette images are converted)."""
        if isinstance(image, (str, os.PathLike)):
            path = os.fspath(image)
            if not os.path.isfile(path):
                raise FileNotFoundError(f"image file not found: {path}")
            try:
                return load_image(path)
            except Exception as error:  # PIL raises several unrelated types for unreadable files
                raise ValueError(f"cannot read image file {path}: {error}") from error
        if is_pil_image(image):
            return load_image(image)
        return image

    def load_video_frames(
        self,
        path: str | os.PathLike,
        num_frames: int | None = None,
        frame_indices: Sequence[int] | None = None,
    ) -> list:
        """Decode a video with PyAV and return frames as (H, W, 3) uint8 arrays.

        Args:
            path: the video file.
            num_frames: frames sampled uniformly over the clip (default `self.num_video_frames`; fewer when
                the clip is shorter).
            frame_indices: 0-based frames to take instead, in the given order, e.g. the OpenFace peak
                frame: `m2se.facial.peak_frame` returns OpenFace's 1-based `frame`, so pass `[frame - 1]`.
        """
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"video file not found: {path}")
        num_frames = num_frames or self.num_video_frames
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
            raise VideoDecodingError(
                f"decoded {len(frames)} of the requested frames {unique} of video {path}"
            )
        by_index = dict(zip(unique, frames, strict=True))
        return [by_index[index] for index in requested]

    def _expand(self, text: str) -> str:
        return text.replace(self.image_token, self.image_token * self.image_seq_length)

    def _check_length(self, sequences: list[list[int]], max_length: int | None) -> None:
        limit = max_length or self.max_length or self.tokenizer.model_max_length
        for index, ids in enumerate(sequences):
            if len(ids) > limit:
                num_images = ids.count(self.image_token_id) // self.image_seq_length
                raise ValueError(
                    f"sample {index} is {len(ids)} tokens long after expanding {num_images} image(s) to "
                    f"{self.image_seq_length} tokens each, more than the maximum length {limit}"
                )

    def _pixel_values(self, images: list) -> torch.Tensor | None:
        if not images:
            return None
        loaded = [self.load_image(image) for image in images]
        return self.image_processor(loaded, return_tensors="pt")["pixel_values"]

    def _pad(
        self,
        input_ids: list[list[int]],
        labels: list[list[int]] | None,
        padding_side: str,
        return_tensors: str | None,
    ) -> BatchFeature:
        longest = max(len(ids) for ids in input_ids)
        pad_id = (
            self.tokenizer.pad_token_id
            if self.tokenizer.pad_token_id is not None
            else self.tokenizer.eos_token_id
        )

        def pad(row: list[int], value: int) -> list[int]:
            filler = [value] * (longest - len(row))
            return filler + row if padding_side == "left" else row + filler

        data = {
            "input_ids": [pad(ids, pad_id) for ids in input_ids],
            "attention_mask": [pad([1] * len(ids), 0) for ids in input_ids],
        }
        if labels is not None:
            data["labels"] = [pad(row, IGNORE_INDEX) for row in labels]
        return BatchFeature(data, tensor_type=return_tensors)

    def __call__(
        self,
        text: str | list[str],
        images: ImageInput | list | None = None,
        return_tensors: str | None = "pt",
        padding_side: str = "left",
        max_length: int | None = None,
        add_special_tokens: bool = True,
        **kwargs,
    ) -> BatchFeature:
        """Tokenize `text` with each `<image>` expanded and preprocess `images` (Llava-style call).

        Args:
            text: one string or a batch; each `<image>` marks where one image's visual tokens go.
            images: all images of the batch in placeholder order (a flat list, or one list per text).

        Returns:
            `BatchFeature` with `input_ids` and `attention_mask` of shape `(batch_size, sequence_length)` and
            `pixel_values` of shape `(num_images, 3, height, width)` when there are images.
        """
        texts = [text] if isinstance(text, str) else list(text)
        if images is None:
            flat_images = []
        elif isinstance(images, (list, tuple)):
            flat_images = [
                image for item in images for image in (item if isinstance(item, (list, tuple)) else [item])
            ]
        else:
            flat_images = [images]
        num_placeholders = sum(sample.count(self.image_token) for sample in texts)
        if num_placeholders != len(flat_images):
            raise ValueError(
                f"got {len(flat_images)} image(s) but the text holds {num_placeholders} {self.image_token!r} "
                "placeholder(s); pass one image per placeholder"
            )
        input_ids = [
            self.tokenizer(self._expand(sample), add_special_tokens=add_special_tokens)["input_ids"]
            for sample in texts
        ]
        self._check_length(input_ids, max_length)
        batch = self._pad(input_ids, None, padding_side, return_tensors)
        pixel_values = self._pixel_values(flat_images)
        if pixel_values is not None:
            batch["pixel_values"] = pixel_values
        return batch

    def _record_query_and_media(self, record: dict, index: int) -> tuple[str, list]:
        """The record's query with one `<image>` per image / video frame, and those images / frames."""
        if "query" not in record:
            raise ValueError(
                f"EMT record {index} has no 'query' (expected keys query, response, images|videos); "
                f"got keys {sorted(record)}"
            )
        query = record["query"]
        images = list(record.get("images") or [])
        videos = list(record.get("videos") or [])
        if images and videos:
            raise ValueError(f"EMT record {index} has both 'images' and 'videos'; expected one of them")
        if images:
            count = query.count(self.image_token)
            if count == 0:
                query = f"{self.image_token}\n" * len(images) + query
            elif count != len(images):
                raise ValueError(
                    f"EMT record {index} has {len(images)} image(s) but its query holds {count} "
                    f"{self.image_token!r} placeholder(s)"
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
            clip = self.load_video_frames(path, frame_indices=indices)
            frames.extend(clip)
            blocks.append(self.image_token * len(clip) + "\n")
        count = query.count(VIDEO_TAG)
        if count == 0:
            query = "".join(blocks) + query
        elif count == len(videos):
            for block in blocks:
                query = query.replace(VIDEO_TAG, block.rstrip("\n"), 1)
        else:
            raise ValueError(
                f"EMT record {index} has {len(videos)} video(s) but its query holds {count} "
                f"{VIDEO_TAG!r} tags"
            )
        return query, frames

    def _render(self, messages: list[dict], add_generation_prompt: bool) -> str:
        return self.tokenizer.apply_chat_template(
            messages,
            chat_template=self.chat_template,
            tokenize=False,
            add_generation_prompt=add_generation_prompt,
        )

    def process_emt_records(
        self,
        records: Sequence[dict],
        training: bool = True,
        return_tensors: str | None = "pt",
        max_length: int | None = None,
    ) -> BatchFeature:
        """Turn EMT records (`query`, `response`, `images` or `videos`, optional `system`) into a model batch.

        A record may also carry `video_frame_indices`: one list of 0-based frame indices per video (e.g. the
        OpenFace peak frame); otherwise `num_video_frames` frames are sampled uniformly. A still image is a
        one-frame video.

        Args:
            training: True -> prompt + response, right-padded, with `labels` equal to the response tokens (the
                answer and its end-of-turn token) and -100 elsewhere; False -> the prompt ending with the
                assistant turn header, left-padded, for `generate`.

        Returns:
            `BatchFeature` with `input_ids`, `attention_mask` (and `labels`) of shape `(batch_size,
            sequence_length)`
            and `pixel_values` of shape `(num_images, 3, height, width)`.
        """
        if isinstance(records, dict):
            raise TypeError("process_emt_records expects a list of EMT records, got a single dict")
        prompts, media = [], []
        for index, record in enumerate(records):
            if training and "response" not in record:
                raise ValueError(
                    f"EMT record {index} has no 'response', which training needs; got keys {sorted(record)}"
                )
            query, record_media = self._record_query_and_media(record, index)
            prompts.append((record, self._expand(query)))
            media.extend(record_media)
        input_ids, labels = [], []
        for record, query in prompts:
            messages = [
                {"role": "system", "content": record.get("system") or self.system_prompt},
                {"role": "user", "content": query},
            ]
            prompt = self._render(messages, add_generation_prompt=True)
            prompt_ids = self.tokenizer(prompt, add_special_tokens=False)["input_ids"]
            if not training:
                input_ids.append(prompt_ids)
                continue
            full = self._render([*messages, {"role": "assistant", "content": record["response"]}], False)
            if not full.startswith(prompt):
                raise ValueError(
                    "the chat template must render the prompt as a prefix of the full conversation"
                )
            response_ids = self.tokenizer(full[len(prompt) :], add_special_tokens=False)["input_ids"]
            input_ids.append(prompt_ids + response_ids)
            labels.append([IGNORE_INDEX] * len(prompt_ids) + response_ids)
        self._check_length(input_ids, max_length)
        batch = self._pad(
            input_ids, labels if training else None, "right" if training else "left", return_tensors
        )
        pixel_values = self._pixel_values(media)
        if pixel_values is not None:
            batch["pixel_values"] = pixel_values
        return batch


EmoVerseProcessor.register_for_auto_class("AutoProcessor")

__all__ = ["DEFAULT_SYSTEM_PROMPT", "EmoVerseProcessor", "VideoDecodingError", "portable_image_processor"]
