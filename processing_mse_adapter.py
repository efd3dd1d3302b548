"""Processor of MSE-Adapter: builds the LLM token sequence around the `<pseudo>` placeholders and pads the
audio/video features.

Hub remote code: this module imports only the standard library, torch, transformers and the other
`*_mse_adapter.py` modules.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from transformers import BatchFeature, PreTrainedTokenizerBase, ProcessorMixin

try:
    from .configuration_mse_adapter import (
        MULTIMODAL_MARKERS,
        MSEAdapterConfig,
        describe_value,
        format_regression_label,
        is_integer,
        is_real_number,
    )
except ImportError:  # imported as a top-level module (installed package or checkout), not as Hub code
    from configuration_mse_adapter import (
        MULTIMODAL_MARKERS,
        MSEAdapterConfig,
        describe_value,
        format_regression_label,
        is_integer,
        is_real_number,
    )
try:
    from .answer_constraints import AnswerSetLogitsProcessor
except ImportError:  # imported as a top-level module (installed package or checkout), not as Hub code
    from answer_constraints import AnswerSetLogitsProcessor

IGNORE_INDEX = -100


class MSEAdapterProcessor(ProcessorMixin):
    r"""
    Turns utterances, audio/video feature sequences and (for training) labels into the inputs of
    [`MSEAdapterForCausalLM`].

    Each sample becomes `[BOS] <Multimodal> <pseudo>*n utterance </Multimodal> task_prompt [label EOS]`
    (`<多模态>` markers for `language="zh"`), left-padded. The label text follows the released format: a
    regression value with one decimal and a sign (`+1.2`, `-0.4`, `+0.0`), a class as its index (`"3"`).

    Args:
        tokenizer: the backbone's tokenizer; the `<pseudo>` placeholder is added to it as a special token
            (the backbone's embedding table is never resized: the model replaces the placeholder itself).
        num_pseudo_tokens, task, label_names, value_range, task_prompt, language: as in `MSEAdapterConfig`
            (`task_prompt=None` gives the paper's prompt for the task and language).
        audio_feature_dim / video_feature_dim (`int`, *optional*): expected feature widths, checked on every
            call; when omitted, the samples of a batch only need to agree with each other.
        pseudo_token (`str`, defaults to `"<pseudo>"`): the placeholder string.

    Missing modalities: `audio=None` (or a `None` / zero-frame entry for one sample) gives length 0, which the
    model treats as a missing modality contributing nothing.
    """

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase | None = None,
        num_pseudo_tokens: int = 4,
        task: str = "regression",
        label_names: list[str] | None = None,
        value_range: Sequence[float] | None = (-3.0, 3.0),
        task_prompt: str | None = None,
        language: str = "en",
        audio_feature_dim: int | None = None,
        video_feature_dim: int | None = None,
        pseudo_token: str = "<pseudo>",
        **kwargs,
    ):
        if not isinstance(tokenizer, PreTrainedTokenizerBase):
            raise TypeError(f"tokenizer must be a transformers tokenizer, got {type(tokenizer).__name__}")
        super().__init__(tokenizer, **kwargs)
        # One validation path for the task fields and feature widths: the config's (it also fills the paper's
        # default prompt).
        declared_feature_dims = {
            name: dim
            for name, dim in (
                ("audio_feature_dim", audio_feature_dim),
                ("video_feature_dim", video_feature_dim),
            )
            if dim is not None
        }
        task_config = MSEAdapterConfig(
            num_pseudo_tokens=num_pseudo_tokens,
            task=task,
            label_names=label_names,
            value_range=value_range,
            task_prompt=task_prompt,
            language=language,
            **declared_feature_dims,
        )
        self.num_pseudo_tokens = task_config.num_pseudo_tokens
        self.task = task_config.task
        self.label_names = task_config.label_names
        self.value_range = task_config.value_range
        self.task_prompt = task_config.task_prompt
        self.language = task_config.language
        self.audio_feature_dim = audio_feature_dim
        self.video_feature_dim = video_feature_dim
        self.pseudo_token = pseudo_token
        self._answers = task_config.answers
        self.pseudo_token_id = self._add_pseudo_token()
        if tokenizer.eos_token_id is None:
            raise ValueError("the tokenizer needs an eos_token: it ends every label so that generation stops")
        open_marker, close_marker = MULTIMODAL_MARKERS[self.language]
        bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
        self._prefix_ids = bos + self._encode(open_marker) + [self.pseudo_token_id] * self.num_pseudo_tokens
        self._suffix_ids = self._encode(close_marker) + self._encode(self.task_prompt)
        self._answer_ids = [[*self._encode(answer), tokenizer.eos_token_id] for answer in self._answers]
        self._check_capacity()

    @classmethod
    def from_adapter_config(
        cls, tokenizer: PreTrainedTokenizerBase, config: MSEAdapterConfig
    ) -> MSEAdapterProcessor:
        """A processor with the task fields and feature widths of `config` (e.g. a paper preset)."""
        return cls(
            tokenizer,
            num_pseudo_tokens=config.num_pseudo_tokens,
            task=config.task,
            label_names=config.label_names,
            value_range=config.value_range,
            task_prompt=config.task_prompt,
            language=config.language,
            audio_feature_dim=config.audio_feature_dim,
            video_feature_dim=config.video_feature_dim,
        )

    def adapter_config_fields(self) -> dict[str, Any]:
        """The `MSEAdapterConfig` fields this processor determines, tokenizer-specific token ids included."""
        fields = dict(
            num_pseudo_tokens=self.num_pseudo_tokens,
            task=self.task,
            label_names=self.label_names,
            value_range=self.value_range,
            task_prompt=self.task_prompt,
            language=self.language,
            pseudo_token_id=self.pseudo_token_id,
            answer_token_ids=[list(ids) for ids in self._answer_ids],
        )
        for name in ("audio_feature_dim", "video_feature_dim"):
            if getattr(self, name) is not None:
                fields[name] = getattr(self, name)
        return fields

    def answer_logits_processor(self) -> AnswerSetLogitsProcessor:
        """The task's answer set as a `LogitsProcessor`: `model.generate(**inputs, logits_processor=
        LogitsProcessorList([processor.answer_logits_processor()]))` only produces admissible answers (a class
        index, or a one-decimal value in `value_range`, then EOS); its `decode` maps the generated tokens to
        label names (classification) or floats (regression)."""
        if self.task == "classification":
            return AnswerSetLogitsProcessor(self._answer_ids, self.label_names)
        return AnswerSetLogitsProcessor(self._answer_ids, [float(answer) for answer in self._answers])

    def _encode(self, text: str) -> list[int]:
        # Long utterances are truncated here, not by the tokenizer: its length warning would be misleading.
        return self.tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]

    def _add_pseudo_token(self) -> int:
        if self.pseudo_token not in self.tokenizer.get_vocab():
            self.tokenizer.add_special_tokens(
                {"extra_special_tokens": [self.pseudo_token]}, replace_extra_special_tokens=False
            )
        pseudo_token_id = self.tokenizer.convert_tokens_to_ids(self.pseudo_token)
        encoded = self._encode(self.pseudo_token)
        if pseudo_token_id is None or encoded != [pseudo_token_id]:
            raise ValueError(
                f"the tokenizer cannot hold the placeholder {self.pseudo_token!r} as one token: expected "
                f"[{pseudo_token_id}], got {encoded}"
            )
        return pseudo_token_id

    def _check_capacity(self) -> None:
        fixed_length = len(self._prefix_ids) + len(self._suffix_ids) + self._longest_answer
        if fixed_length > self.tokenizer.model_max_length:
            raise ValueError(
                f"tokenizer.model_max_length={self.tokenizer.model_max_length} cannot hold the placeholders, "
                f"prompt and longest label: they need at least {fixed_length} tokens"
            )

    @property
    def _longest_answer(self) -> int:
        return max(len(ids) for ids in self._answer_ids)

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
        if isinstance(text, str):
            texts = [text]
        elif isinstance(text, (list, tuple)):
            texts = list(text)
        else:
            raise TypeError(
                f"text must be a string or a non-empty list of strings, got {type(text).__name__}"
            )
        if not texts:
            raise ValueError("text must be a string or a non-empty list of strings, got an empty list")
        for index, utterance in enumerate(texts):
            if not isinstance(utterance, str):
                raise TypeError(f"text[{index}] must be a string, got {type(utterance).__name__}")
        batch_size = len(texts)
        audio_values, audio_lengths = self._pad_features("audio", audio, batch_size, self.audio_feature_dim)
        video_values, video_lengths = self._pad_features("video", video, batch_size, self.video_feature_dim)
        label_ids = None
        if labels is not None:
            labels = self._labels_per_sample(labels, single_sample=isinstance(text, str))
            if len(labels) != batch_size:
                raise ValueError(f"labels holds {len(labels)} values but text holds {batch_size}")
            label_ids = [self._answer_ids[self._answer_index(label)] for label in labels]
        encoded_utterances = [self._encode(utterance) for utterance in texts]
        for index, utterance_ids in enumerate(encoded_utterances):
            # Refused rather than escaped: the model would read the utterance's placeholder as a pseudo-token
            # slot, so the row would hold more placeholders than the adapter writes.
            if self.pseudo_token_id in utterance_ids:
                raise ValueError(
                    f"text[{index}] contains the placeholder {self.pseudo_token!r}, which the processor "
                    "reserves for the pseudo tokens; remove it from the utterance"
                )

        utterance_budget = self.tokenizer.model_max_length - (
            len(self._prefix_ids) + len(self._suffix_ids) + self._longest_answer
        )
        rows = []
        for index, utterance_ids in enumerate(encoded_utterances):
            utterance_ids = utterance_ids[:utterance_budget]
            input_ids = self._prefix_ids + utterance_ids + self._suffix_ids
            utterance_mask = (
                [0] * len(self._prefix_ids) + [1] * len(utterance_ids) + [0] * len(self._suffix_ids)
            )
            target = [IGNORE_INDEX] * len(input_ids)
            if label_ids is not None:
                input_ids = input_ids + label_ids[index]
                utterance_mask = utterance_mask + [0] * len(label_ids[index])
                target = target + label_ids[index]
            rows.append((input_ids, utterance_mask, target))

        seq_len = max(len(row[0]) for row in rows)
        pad_id = (
            self.tokenizer.pad_token_id
            if self.tokenizer.pad_token_id is not None
            else self.tokenizer.eos_token_id
        )
        batch: dict[str, torch.Tensor] = {
            "input_ids": torch.full((batch_size, seq_len), pad_id, dtype=torch.long),
            "attention_mask": torch.zeros(batch_size, seq_len, dtype=torch.long),
            "utterance_mask": torch.zeros(batch_size, seq_len, dtype=torch.long),
        }
        if label_ids is not None:
            batch["labels"] = torch.full((batch_size, seq_len), IGNORE_INDEX, dtype=torch.long)
        for index, (input_ids, utterance_mask, target) in enumerate(rows):
            start = seq_len - len(input_ids)  # left padding: generation continues right after the prompt
            batch["input_ids"][index, start:] = torch.tensor(input_ids)
            batch["attention_mask"][index, start:] = 1
            batch["utterance_mask"][index, start:] = torch.tensor(utterance_mask)
            if label_ids is not None:
                batch["labels"][index, start:] = torch.tensor(target)
        batch.update(
            audio_values=audio_values,
            audio_lengths=audio_lengths,
            video_values=video_values,
            video_lengths=video_lengths,
        )
        return BatchFeature(data=batch)

    @staticmethod
    def _labels_per_sample(labels: Any, single_sample: bool) -> list[Any]:
        """`labels` as a list of Python scalars: a list, tuple, 1-D array or tensor, or (when `text` is one
        string) a single label."""
        if hasattr(labels, "tolist"):  # numpy array or torch tensor (0-d gives a scalar)
            labels = labels.tolist()
        if isinstance(labels, (list, tuple)):
            return list(labels)
        if single_sample:
            return [labels]
        raise TypeError(f"labels must be a list with one label per text, got {describe_value(labels)}")

    def _answer_index(self, label: float | int | str) -> int:
        """Position of `label` among the admissible answers; ValueError outside the label set or range, or for
        a label of the wrong type (a float or bool class, a non-number regression target)."""
        if self.task == "classification":
            if isinstance(label, str):
                if label not in self.label_names:
                    raise ValueError(f"label {label!r} is not one of label_names {self.label_names}")
                return self.label_names.index(label)
            # A float class (1.0) usually means regression targets were given to a classification processor.
            if not is_integer(label) or not 0 <= label < len(self.label_names):
                raise ValueError(
                    f"class label must be a name in {self.label_names} or an index in "
                    f"[0, {len(self.label_names) - 1}], got {describe_value(label)}"
                )
            return int(label)
        if not is_real_number(label):
            raise ValueError(
                f"regression label must be a number in {self.value_range}, got {describe_value(label)}"
            )
        value = float(label)
        low, high = self.value_range
        if not math.isfinite(value) or not low <= value <= high:
            raise ValueError(f"regression label must lie in value_range {self.value_range}, got {value}")
        first, last = float(self._answers[0]), float(self._answers[-1])
        return self._answers.index(format_regression_label(min(max(value, first), last)))

    @staticmethod
    def _pad_features(
        name: str, samples: Sequence[Any] | None, batch_size: int, feature_dim: int | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Right-pad per-sample `(frames, feature_dim)` arrays of real numbers to `(batch, max_frames,
        feature_dim)` float32; also return the true lengths `(batch,)`.

        A sample with zero frames (`None`, `[]`, shape `(0, d)`) is a missing modality. Anything else that is
        not a finite `(frames >= 1, feature_dim >= 1)` array of ints or floats raises a TypeError (wrong kind
        or dtype: bool, complex, strings, objects) or a ValueError (wrong shape or values).
        """
        if samples is None:
            samples = [None] * batch_size
        if isinstance(samples, (str, bytes)) or not (
            isinstance(samples, Sequence) or getattr(samples, "ndim", 0) >= 1
        ):
            raise TypeError(
                f"{name} must be a list with one (frames, feature_dim) array or None per sample, "
                f"got {type(samples).__name__}"
            )
        if len(samples) != batch_size:
            raise ValueError(f"{name} holds {len(samples)} samples but text holds {batch_size}")
        tensors = []
        for index, sample in enumerate(samples):
            if sample is None:
                tensors.append(None)
                continue
            try:
                values = torch.as_tensor(sample)
            except (TypeError, ValueError, RuntimeError) as error:
                raise TypeError(
                    f"{name}[{index}] must be a (frames, feature_dim) array of numbers, got "
                    f"{type(sample).__name__} that is not one ({error})"
                ) from None
            if values.dtype == torch.bool or values.is_complex():
                raise TypeError(
                    f"{name}[{index}] must hold real numbers (float or int), got dtype {values.dtype}"
                )
            if (values.ndim == 1 and values.numel() == 0) or (values.ndim == 2 and values.shape[0] == 0):
                tensors.append(None)  # zero frames, e.g. [] from JSON or a datasets column
                continue
            if values.ndim != 2:
                raise ValueError(
                    f"{name}[{index}] must be a (frames, feature_dim) array, got shape {tuple(values.shape)}"
                )
            if values.shape[1] == 0 and feature_dim is None:
                raise ValueError(f"{name}[{index}] must have feature dimension of at least 1, got 0")
            if feature_dim is None:
                feature_dim = values.shape[1]
            if values.shape[1] != feature_dim:
                raise ValueError(
                    f"{name}[{index}] must have feature dimension {feature_dim}, got {values.shape[1]}"
                )
            if not torch.isfinite(values).all():
                raise ValueError(
                    f"{name}[{index}] holds NaN or Inf; expected finite features (clean them first)"
                )
            values = values.to(torch.float32)
            if not torch.isfinite(values).all():
                raise ValueError(
                    f"{name}[{index}] holds values beyond the float32 range (|x| > 3.4e38); expected "
                    "features the model can represent (rescale them first)"
                )
            tensors.append(values)
        lengths = torch.tensor(
            [0 if values is None else values.shape[0] for values in tensors], dtype=torch.long
        )
        padded = torch.zeros(batch_size, int(lengths.max()), feature_dim or 0)
        for index, values in enumerate(tensors):
            if values is not None and values.shape[0] > 0:
                padded[index, : values.shape[0]] = values
        return padded, lengths


MSEAdapterProcessor.register_for_auto_class()
