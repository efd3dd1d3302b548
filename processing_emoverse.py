"""Processor for EmoVerse: an image processor, the LLM's tokenizer and a chat template with the paper's
system prompt; it holds the answer sets of the closed EMT tasks and builds their generation constraint.

Hub remote code: imports only transformers, torch, the standard library and its sibling modules (images and
videos in `media_emoverse`, EMT records, chat turns and padding in `records_emoverse`, the EMT text (system
prompt, answer sets) in `templates_emoverse`, the answer constraint in `answer_constraints`).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence

from transformers import AutoImageProcessor, AutoTokenizer, BatchFeature, ProcessorMixin

try:
    from .answer_constraints import AnswerSetLogitsProcessor
    from .media_emoverse import (
        ImageInput,
        VideoDecodingError,
        flat_images,
        load_pretrained_part,
        load_video_frames,
        pixel_values,
        portable_image_processor,
    )
    from .records_emoverse import (
        DEFAULT_CHAT_TEMPLATE,
        IGNORE_INDEX,
        check_lengths,
        emt_rows,
        end_of_turn_id,
        expand_image_tokens,
        pad_rows,
    )
    from .templates_emoverse import CLOSED_TASK_ANSWERS, DEFAULT_SYSTEM_PROMPT
except ImportError:  # imported as a top-level module (installed package or checkout), not as Hub code
    from answer_constraints import AnswerSetLogitsProcessor
    from media_emoverse import (
        ImageInput,
        VideoDecodingError,
        flat_images,
        load_pretrained_part,
        load_video_frames,
        pixel_values,
        portable_image_processor,
    )
    from records_emoverse import (
        DEFAULT_CHAT_TEMPLATE,
        IGNORE_INDEX,
        check_lengths,
        emt_rows,
        end_of_turn_id,
        expand_image_tokens,
        pad_rows,
    )
    from templates_emoverse import CLOSED_TASK_ANSWERS, DEFAULT_SYSTEM_PROMPT


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
            image_processor = load_pretrained_part(
                AutoImageProcessor, image_processor, "image_processor (the vision tower's)"
            )
        if isinstance(tokenizer, (str, os.PathLike)):
            tokenizer = load_pretrained_part(AutoTokenizer, tokenizer, "tokenizer (the language model's)")
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

    def load_video_frames(
        self,
        path: str | os.PathLike,
        num_frames: int | None = None,
        frame_indices: Sequence[int] | None = None,
    ) -> list:
        """[`media_emoverse.load_video_frames`] with `num_frames` defaulting to `self.num_video_frames`."""
        return load_video_frames(path, num_frames or self.num_video_frames, frame_indices)

    def answer_logits_processor(self, task: str) -> AnswerSetLogitsProcessor:
        """The answer set of a closed EMT task ("msa" or "er") as a `LogitsProcessor`: `model.generate(
        **inputs, logits_processor=LogitsProcessorList([processor.answer_logits_processor(task)]))` only
        produces one of `CLOSED_TASK_ANSWERS[task]` followed by the end of the assistant turn; its `decode`
        maps the generated tokens (after the prompt) back to the answers."""
        if task not in CLOSED_TASK_ANSWERS:
            raise ValueError(
                f"task {task!r} has no closed answer set; the closed tasks are {sorted(CLOSED_TASK_ANSWERS)} "
                "(the other EMT tasks answer in free text)"
            )
        end_of_turn = end_of_turn_id(self.tokenizer, self.chat_template)
        answers = CLOSED_TASK_ANSWERS[task]
        token_ids = [self.tokenizer(answer, add_special_tokens=False)["input_ids"] for answer in answers]
        return AnswerSetLogitsProcessor([[*ids, end_of_turn] for ids in token_ids], list(answers))

    def _batch(self, rows: dict, images: list, padding_side: str, max_length: int | None, return_tensors):
        """Check the lengths, pad `rows` (`input_ids`, `labels`) and add the `pixel_values` of `images`."""
        limit = max_length or self.max_length or self.tokenizer.model_max_length
        check_lengths(rows["input_ids"], limit, self.image_token_id, self.image_seq_length)
        batch = BatchFeature(pad_rows(rows, self.tokenizer, padding_side), tensor_type=return_tensors)
        if images:
            batch["pixel_values"] = pixel_values(self.image_processor, images)
        return batch

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
        texts = [text] if isinstance(text, str) else text
        if not isinstance(texts, (list, tuple)) or not texts or not all(isinstance(t, str) for t in texts):
            raise TypeError(f"text must be a string or a non-empty list of strings, got {text!r:.200}")
        blank = [index for index, sample in enumerate(texts) if not sample.strip()]
        if blank:  # it would tokenize to no ids (or only special tokens): nothing for the model to read
            raise ValueError(f"text[{blank[0]}] is {texts[blank[0]]!r}; expected a non-blank prompt")
        images = flat_images(
            images, sum(sample.count(self.image_token) for sample in texts), self.image_token
        )
        input_ids = [
            self.tokenizer(
                expand_image_tokens(sample, self.image_token, self.image_seq_length),
                add_special_tokens=add_special_tokens,
            )["input_ids"]
            for sample in texts
        ]
        return self._batch({"input_ids": input_ids}, images, padding_side, max_length, return_tensors)

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
            sequence_length)` and `pixel_values` of shape `(num_images, 3, height, width)`.
        """
        rows, media = emt_rows(self, records, training)
        return self._batch(rows, media, "right" if training else "left", max_length, return_tensors)


EmoVerseProcessor.register_for_auto_class("AutoProcessor")

__all__ = [
    "CLOSED_TASK_ANSWERS",
    "DEFAULT_SYSTEM_PROMPT",
    "IGNORE_INDEX",
    "EmoVerseProcessor",
    "VideoDecodingError",
    "portable_image_processor",
]
