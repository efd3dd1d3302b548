"""Processor of MSE-Adapter: builds the LLM token sequence around the `<pseudo>` placeholders and pads the
audio/video features.

Hub remote code: this module imports only the standard library, torch, transformers and the other
`*_mse_adapter.py` modules.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import torch
from torch.nn.utils.rnn import pad_sequence
from transformers import BatchFeature, PreTrainedTokenizerBase, ProcessorMixin

try:
    from .answer_constraints import AnswerSetLogitsProcessor
    from .feature_extraction_mse_adapter import PROCESSOR_PARTS, ExtractorPartsMixin, check_part_width
    from .tasks_mse_adapter import MULTIMODAL_MARKERS, answer_index, check_task, paper_preset, task_answers
    from .validation_mse_adapter import (
        add_placeholder_token,
        check_positive_integer,
        labels_per_sample,
        pad_features,
        texts_per_sample,
    )
except ImportError:  # imported as a top-level module (installed package or checkout), not as Hub code
    from answer_constraints import AnswerSetLogitsProcessor
    from feature_extraction_mse_adapter import PROCESSOR_PARTS, ExtractorPartsMixin, check_part_width
    from tasks_mse_adapter import MULTIMODAL_MARKERS, answer_index, check_task, paper_preset, task_answers
    from validation_mse_adapter import (
        add_placeholder_token,
        check_positive_integer,
        labels_per_sample,
        pad_features,
        texts_per_sample,
    )

IGNORE_INDEX = -100
# Padding value of each token-level output (input_ids: the pad token, filled in per tokenizer).
PAD_VALUES = {"input_ids": None, "attention_mask": 0, "utterance_mask": 0, "labels": IGNORE_INDEX}


class MSEAdapterProcessor(ExtractorPartsMixin, ProcessorMixin):
    r"""
    Turns utterances, audio/video feature sequences and (for training) labels into the inputs of
    [`MSEAdapterForCausalLM`]; owns the task: its prompt, label format and set of admissible answers; holds
    the extractors that make the features from raw media, when the features come from this library.

    Each sample becomes `[BOS] <Multimodal> <pseudo>*n utterance </Multimodal> task_prompt [label EOS]`
    (`<多模态>` markers for `language="zh"`), left-padded. The label text follows the released format: a
    regression value with one decimal and a sign (`+1.2`, `-0.4`, `+0.0`), a class as its index (`"3"`).

    Args:
        tokenizer: the backbone's tokenizer; the `<pseudo>` placeholder is added to it as a special token
            (the backbone's embedding table is never resized: the model replaces the placeholder itself).
        feature_extractor (`MSEAdapterAudioFeatureExtractor`, *optional*) / video_processor
            (`MSEAdapterVideoProcessor`, *optional*): raw media -> audio / video features (the pipeline reads
            media files with them); saved in `processor_config.json`. Each declares its `feature_size`.
        num_pseudo_tokens (`int`, defaults to 4): placeholders per sample (the config's `num_pseudo_tokens`).
        task (`str`, defaults to `"regression"`): `"regression"` (sentiment intensity) or `"classification"`.
        label_names (`list[str]`, *optional*): class names, required for classification.
        value_range (`tuple[float, float]`, defaults to `(-3.0, 3.0)`): inclusive range of regression targets;
            predictions always lie inside it.
        task_prompt (`str`, *optional*): text after the multimodal block; defaults to the paper's prompt for
            the task and language (`tasks_mse_adapter.default_task_prompt`).
        language (`str`, defaults to `"en"`): `"en"` or `"zh"`, for the markers and the default prompt.
        metric_set (`str`, *optional*): metrics that score the task (`tasks_mse_adapter.METRIC_SETS`):
            `"mosei"` (default of regression) or `"sims"`; `"erc"` for classification.
        audio_feature_dim / video_feature_dim (`int`, *optional*): expected feature widths, checked on every
            call; the extractor's width when there is one (a different value is an error naming both); when
            omitted without an extractor, the samples of a batch only need to agree with each other.
        pseudo_token (`str`, defaults to `"<pseudo>"`): the placeholder string.

    Missing modalities: `audio=None` (or a `None` / zero-frame entry for one sample) gives length 0, which the
    model treats as a missing modality contributing nothing.
    """

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase | None = None,
        feature_extractor: Any = None,
        video_processor: Any = None,
        num_pseudo_tokens: int = 4,
        task: str = "regression",
        label_names: list[str] | None = None,
        value_range: Sequence[float] | None = (-3.0, 3.0),
        task_prompt: str | None = None,
        language: str = "en",
        metric_set: str | None = None,
        audio_feature_dim: int | None = None,
        video_feature_dim: int | None = None,
        pseudo_token: str = "<pseudo>",
        **kwargs,
    ):
        if not isinstance(tokenizer, PreTrainedTokenizerBase):
            raise TypeError(f"tokenizer must be a transformers tokenizer, got {type(tokenizer).__name__}")
        super().__init__(tokenizer, feature_extractor, video_processor, **kwargs)
        check_positive_integer("num_pseudo_tokens", num_pseudo_tokens)
        for name, dim in (("audio_feature_dim", audio_feature_dim), ("video_feature_dim", video_feature_dim)):
            if dim is not None:
                check_positive_integer(name, dim)
        widths = {
            name: check_part_width(name, getattr(self, name), width, type(self).__name__)
            for name, width in zip(PROCESSOR_PARTS, (audio_feature_dim, video_feature_dim), strict=True)
        }
        # task, label_names, value_range, task_prompt, language, metric_set: checked, defaults filled in.
        for name, value in check_task(
            task, label_names, value_range, task_prompt, language, metric_set
        ).items():
            setattr(self, name, value)
        self.num_pseudo_tokens = num_pseudo_tokens
        self.audio_feature_dim, self.video_feature_dim = widths.values()
        self.pseudo_token = pseudo_token
        self._answers = task_answers(self.task, self.label_names, self.value_range)
        self.pseudo_token_id = add_placeholder_token(tokenizer, pseudo_token)
        if tokenizer.eos_token_id is None:
            raise ValueError("the tokenizer needs an eos_token: it ends every label so that generation stops")
        open_marker, close_marker = MULTIMODAL_MARKERS[self.language]
        bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
        self._prefix_ids = bos + self._encode(open_marker) + [self.pseudo_token_id] * self.num_pseudo_tokens
        self._suffix_ids = self._encode(close_marker) + self._encode(self.task_prompt)
        self._answer_ids = [[*self._encode(answer), tokenizer.eos_token_id] for answer in self._answers]
        # Every row holds these whatever the utterance: long utterances are truncated to leave room for them.
        self._fixed_length = len(self._prefix_ids) + len(self._suffix_ids) + max(map(len, self._answer_ids))
        if self._fixed_length > tokenizer.model_max_length:
            raise ValueError(
                f"tokenizer.model_max_length={tokenizer.model_max_length} cannot hold the placeholders, "
                f"prompt and longest label: they need at least {self._fixed_length} tokens"
            )

    @classmethod
    def from_paper_preset(
        cls, tokenizer: PreTrainedTokenizerBase, dataset: str, backbone: str = "llama2", **kwargs
    ) -> MSEAdapterProcessor:
        """A processor with the task, pseudo-token count and feature widths of the released setting of
        `dataset` ("mosei", "sims-v2", "meld", "cherma") on the paper's `backbone`; `kwargs` override them.
        `MSEAdapterConfig.from_paper_preset` takes the architecture from the same preset."""
        own_fields = inspect.signature(cls.__init__).parameters
        preset = {
            name: value for name, value in paper_preset(dataset, backbone).items() if name in own_fields
        }
        return cls(tokenizer, **{**preset, **kwargs})

    def answer_logits_processor(self) -> AnswerSetLogitsProcessor:
        """The task's answer set as a `LogitsProcessor`: `model.generate(**inputs, logits_processor=
        LogitsProcessorList([processor.answer_logits_processor()]))` only produces admissible answers (a class
        index, or a one-decimal value in `value_range`, then EOS); its `decode` maps the generated tokens to
        label names (classification) or floats (regression)."""
        if self.task == "classification":
            return AnswerSetLogitsProcessor(self._answer_ids, self.label_names)
        values = [float(answer) for answer in self._answers]
        return AnswerSetLogitsProcessor(self._answer_ids, values, answers_are_values=True)

    def _encode(self, text: str) -> list[int]:
        # Long utterances are truncated here, not by the tokenizer: its length warning would be misleading.
        return self.tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]

    def __call__(
        self,
        text: str | list[str],
        audio: Sequence[Any] | None = None,
        video: Sequence[Any] | None = None,
        labels: Sequence[float | int | str] | None = None,
        return_tensors: str = "pt",
        **kwargs,
    ) -> BatchFeature:
        """Build a batch.

        Args:
            text: utterance(s); an utterance longer than `tokenizer.model_max_length` allows is truncated
                (never the placeholders, the prompt or the label).
            audio / video: per sample an array-like `(frames, feature_dim)` (numpy, torch or nested lists), or
                `None` for a missing modality; `None` instead of the list means missing for every sample.
            labels: floats within `value_range` (regression), class names or indices (classification). With
                labels the label tokens and EOS are appended and `labels` is returned; leave them out for
                prediction.
            return_tensors: only `"pt"`.

        Returns:
            `BatchFeature` with `input_ids`, `attention_mask`, `utterance_mask` (all `(batch, seq_len)`, left
            padded), `audio_values` `(batch, max_audio_frames, audio_dim)`, `audio_lengths` `(batch,)`,
            `video_values`, `video_lengths` and, with labels, `labels` `(batch, seq_len)` (-100 except on
            the label and EOS tokens).
        """
        if kwargs:
            raise TypeError(f"unexpected arguments {sorted(kwargs)}")
        if return_tensors != "pt":
            raise ValueError(f"only return_tensors='pt' is supported, got {return_tensors!r}")
        texts = texts_per_sample(text)
        batch_size = len(texts)
        audio_values, audio_lengths = pad_features("audio", audio, batch_size, self.audio_feature_dim)
        video_values, video_lengths = pad_features("video", video, batch_size, self.video_feature_dim)
        label_ids = None
        if labels is not None:
            labels = labels_per_sample(labels, single_sample=isinstance(text, str))
            if len(labels) != batch_size:
                raise ValueError(f"labels holds {len(labels)} values but text holds {batch_size}")
            label_ids = [
                self._answer_ids[answer_index(label, self._answers, self.label_names, self.value_range)]
                for label in labels
            ]
        encoded_utterances = [self._encode(utterance) for utterance in texts]
        for index, utterance_ids in enumerate(encoded_utterances):
            # Refused rather than escaped: the model would read the utterance's placeholder as a pseudo-token
            # slot, so the row would hold more placeholders than the adapter writes.
            if self.pseudo_token_id in utterance_ids:
                raise ValueError(
                    f"text[{index}] contains the placeholder {self.pseudo_token!r}, which the processor "
                    "reserves for the pseudo tokens; remove it from the utterance"
                )

        budget = self.tokenizer.model_max_length - self._fixed_length
        rows: dict[str, list[torch.Tensor]] = {name: [] for name in PAD_VALUES}
        for index, utterance_ids in enumerate(encoded_utterances):
            utterance_ids = utterance_ids[:budget]
            answer_ids = label_ids[index] if label_ids is not None else []
            input_ids = self._prefix_ids + utterance_ids + self._suffix_ids + answer_ids
            prompt_length = len(input_ids) - len(answer_ids)
            rows["input_ids"].append(torch.tensor(input_ids))
            rows["attention_mask"].append(torch.ones(len(input_ids), dtype=torch.long))
            rows["utterance_mask"].append(torch.zeros(len(input_ids), dtype=torch.long))
            rows["utterance_mask"][-1][len(self._prefix_ids) : len(self._prefix_ids) + len(utterance_ids)] = 1
            rows["labels"].append(torch.tensor([IGNORE_INDEX] * prompt_length + answer_ids, dtype=torch.long))
        pad_id = self.tokenizer.pad_token_id
        pad_values = {**PAD_VALUES, "input_ids": self.tokenizer.eos_token_id if pad_id is None else pad_id}
        # Left padding: generation continues right after the prompt.
        batch = {
            name: pad_sequence(rows[name], batch_first=True, padding_value=value, padding_side="left")
            for name, value in pad_values.items()
            if name != "labels" or label_ids is not None
        }
        batch.update(
            audio_values=audio_values,
            audio_lengths=audio_lengths,
            video_values=video_values,
            video_lengths=video_lengths,
        )
        return BatchFeature(data=batch)


MSEAdapterProcessor.register_for_auto_class()
