"""MSE-Adapter (Yang, Dong, Qiang; AAAI 2025): a plug-in that turns audio/video features and the utterance
into a few pseudo tokens placed in the input of a frozen causal language model.

Hub remote code: this module imports only the standard library, torch, transformers and the other
`*_mse_adapter.py` modules.
"""

from __future__ import annotations

import copy
import json
import os
import re
import struct

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence
from transformers import AutoModelForCausalLM, GenerationMixin, LogitsProcessorList, PreTrainedModel
from transformers.modeling_outputs import CausalLMOutputWithPast
from transformers.modeling_utils import load_state_dict
from transformers.utils import SAFE_WEIGHTS_INDEX_NAME, SAFE_WEIGHTS_NAME, cached_file

try:
    from .configuration_mse_adapter import MSEAdapterConfig
except (
    ImportError
):  # imported as a top-level module (installed package or repository checkout), not as Hub code
    from configuration_mse_adapter import MSEAdapterConfig
try:
    from .answer_constraints import AnswerSetLogitsProcessor
except ImportError:  # imported as a top-level module, not as Hub code
    from answer_constraints import AnswerSetLogitsProcessor

MULTIMODAL_INPUT_NAMES = ("audio_values", "audio_lengths", "video_values", "video_lengths", "utterance_mask")
_BACKBONE_KWARG_NAMES = ("dtype", "device_map", "attn_implementation")
_HUB_KWARG_NAMES = (
    "cache_dir",
    "force_download",
    "local_files_only",
    "token",
    "revision",
    "subfolder",
    "proxies",
)
# A Hub model id: "name" or "namespace/name", each part of letters, digits, "_", "-", "." that neither starts
# nor ends with "-" or "." (huggingface_hub's rule, which would otherwise fail deep inside the download code).
_HUB_ID_PART = r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,94}[A-Za-z0-9_])?"
_HUB_MODEL_ID = re.compile(rf"(?:{_HUB_ID_PART}/)?{_HUB_ID_PART}")


def check_folder_or_hub_id(path: str | os.PathLike, description: str, remedy: str = "") -> None:
    """Raise a ValueError when `path` is neither an existing folder nor shaped like a Hub model id.

    `description` names where the path comes from (an argument, a config field); `remedy` ends the message.
    """
    path = os.fspath(path)
    if os.path.isdir(path) or (_HUB_MODEL_ID.fullmatch(path) and ".." not in path and "--" not in path):
        return
    raise ValueError(
        f"{description} is {path!r}: neither an existing folder nor a Hub model id ('name' or "
        f"'namespace/name'){remedy}"
    )


def read_safetensors_header(weights_file: str) -> dict[str, dict]:
    """The tensor entries of a safetensors file's header, checked against the file size without reading any
    tensor.

    The format is an 8-byte little-endian header length, a JSON header mapping each tensor name to its dtype,
    shape and `data_offsets` into the data bytes that follow, then exactly those data bytes. A truncated
    download, an empty file or another format raises a ValueError naming the file instead of a `MemoryError`
    (a random header length) or an error from inside the reader.
    """
    file_size = os.path.getsize(weights_file)

    def invalid(reason: str) -> ValueError:
        return ValueError(
            f"{weights_file} is not a valid safetensors file ({reason}); re-download or re-save the "
            "checkpoint"
        )

    if file_size < 8:
        raise invalid(f"{file_size} bytes, shorter than the 8-byte header length")
    with open(weights_file, "rb") as weights:
        (header_length,) = struct.unpack("<Q", weights.read(8))
        if header_length > file_size - 8:
            raise invalid(f"its header length {header_length} exceeds the file size {file_size}")
        try:
            header = json.loads(weights.read(header_length))
        except ValueError:  # JSONDecodeError and UnicodeDecodeError
            raise invalid("its header is not JSON") from None
    if not isinstance(header, dict):
        raise invalid(f"its header is a JSON {type(header).__name__}, not an object")
    header.pop("__metadata__", None)
    data_size = file_size - 8 - header_length
    data_end = 0
    for name, entry in header.items():
        offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
        if not (
            isinstance(offsets, list)
            and len(offsets) == 2
            and all(isinstance(offset, int) for offset in offsets)
            and 0 <= offsets[0] <= offsets[1] <= data_size
        ):
            raise invalid(f"tensor {name!r} has data_offsets {offsets} outside the {data_size} data bytes")
        data_end = max(data_end, offsets[1])
    if data_end != data_size:
        raise invalid(f"the tensors cover {data_end} of its {data_size} data bytes")
    return header


def check_modality_inputs(
    name: str,
    values: torch.Tensor,
    lengths: torch.Tensor,
    feature_dim: int,
    batch_size: int,
    compute_dtype: torch.dtype = torch.float32,
) -> None:
    """Raise a TypeError or ValueError naming what was expected and received when padded features or their
    lengths are invalid.

    Args:
        name: "audio" or "video" (used in messages).
        values: `(batch, max_frames, feature_dim)` real numbers; `max_frames` may be 0 (modality missing for
            the whole batch).
        lengths: `(batch,)` integer true lengths, each in `[0, max_frames]`; 0 marks a missing modality.
        compute_dtype: the adapter's dtype; the values must stay finite once cast to it.
    """
    for input_name, tensor in ((f"{name}_values", values), (f"{name}_lengths", lengths)):
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"{input_name} must be a torch.Tensor, got {type(tensor).__name__}")
    if values.dtype == torch.bool or values.is_complex():
        raise TypeError(f"{name}_values must hold real numbers (float or int), got dtype {values.dtype}")
    if values.ndim != 3:
        raise ValueError(
            f"{name}_values must be (batch, frames, {feature_dim}), got shape {tuple(values.shape)}"
        )
    if values.shape[0] != batch_size:
        raise ValueError(f"{name}_values holds {values.shape[0]} samples but input_ids holds {batch_size}")
    if values.shape[1] > 0 and values.shape[2] != feature_dim:
        raise ValueError(
            f"{name}_values must have feature dimension {feature_dim} (config.{name}_feature_dim), "
            f"got {values.shape[2]}"
        )
    if (
        lengths.shape != (batch_size,)
        or lengths.is_floating_point()
        or lengths.is_complex()
        or lengths.dtype == torch.bool
    ):
        raise ValueError(
            f"{name}_lengths must be an integer tensor of shape ({batch_size},), "
            f"got {lengths.dtype} of shape {tuple(lengths.shape)}"
        )
    if (lengths < 0).any() or (lengths > values.shape[1]).any():
        raise ValueError(
            f"{name}_lengths must lie in [0, {values.shape[1]}] (the padded frame count), "
            f"got {lengths.tolist()}"
        )
    if not torch.isfinite(values).all():
        raise ValueError(
            f"{name}_values must be finite, got NaN or Inf (clean the features, e.g. set them to 0)"
        )
    if not torch.isfinite(values.to(compute_dtype)).all():
        raise ValueError(
            f"{name}_values must be finite in the adapter's dtype {compute_dtype}, got values beyond its "
            f"range (largest magnitude {values.abs().max().item():.3g}; rescale the features)"
        )


def check_token_inputs(
    input_ids: torch.Tensor,
    utterance_mask: torch.Tensor | None,
    labels: torch.Tensor | None,
    vocab_size: int,
    pseudo_token_id: int | None,
) -> None:
    """Raise a TypeError or ValueError naming what was expected and received when the token inputs are not
    what `MSEAdapterProcessor` builds.

    Args:
        input_ids: `(batch, seq_len)` integer ids in `[0, vocab_size)`, apart from the `<pseudo>` placeholder
            (which may lie outside the backbone vocabulary).
        utterance_mask: `(batch, <= seq_len)` of 0/1, or None.
        labels: `(batch, seq_len)` integer ids in `[0, vocab_size)` or -100, or None.
    """
    if not isinstance(input_ids, torch.Tensor):
        raise TypeError(f"input_ids must be a torch.Tensor, got {type(input_ids).__name__}")
    if input_ids.is_floating_point() or input_ids.is_complex() or input_ids.dtype == torch.bool:
        raise TypeError(f"input_ids must hold integer token ids, got dtype {input_ids.dtype}")
    if input_ids.ndim != 2 or 0 in input_ids.shape:
        raise ValueError(
            f"input_ids must be (batch, seq_len) with at least one row and one token, got shape "
            f"{tuple(input_ids.shape)}"
        )
    token_ids = input_ids[input_ids != pseudo_token_id] if pseudo_token_id is not None else input_ids
    if token_ids.numel() and (token_ids.min() < 0 or token_ids.max() >= vocab_size):
        raise ValueError(
            f"input_ids must lie in [0, {vocab_size - 1}] (the backbone vocabulary) apart from the <pseudo> "
            f"id {pseudo_token_id}, got ids from {int(token_ids.min())} to {int(token_ids.max())}"
        )
    if utterance_mask is not None:
        if not isinstance(utterance_mask, torch.Tensor):
            raise TypeError(f"utterance_mask must be a torch.Tensor, got {type(utterance_mask).__name__}")
        if utterance_mask.ndim != 2 or utterance_mask.shape[0] != input_ids.shape[0]:
            raise ValueError(
                f"utterance_mask must be ({input_ids.shape[0]}, seq_len), "
                f"got shape {tuple(utterance_mask.shape)}"
            )
        if not ((utterance_mask == 0) | (utterance_mask == 1)).all():
            raise ValueError("utterance_mask must hold only 0 and 1 (1 on the utterance tokens)")
    if labels is not None:
        if not isinstance(labels, torch.Tensor):
            raise TypeError(f"labels must be a torch.Tensor, got {type(labels).__name__}")
        if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
            raise TypeError(f"labels must hold integer token ids or -100, got dtype {labels.dtype}")
        if labels.shape != input_ids.shape:
            raise ValueError(
                f"labels must have the shape of input_ids {tuple(input_ids.shape)}, got {tuple(labels.shape)}"
            )
        supervised = labels[labels != -100]
        if supervised.numel() and (supervised.min() < 0 or supervised.max() >= vocab_size):
            raise ValueError(
                f"labels must be -100 or token ids in [0, {vocab_size - 1}], got ids from "
                f"{int(supervised.min())} to {int(supervised.max())}"
            )


class MSEAdapterModalityEncoder(nn.Module):
    """1-layer LSTM over the true-length frames of one modality; its final hidden state goes through a Linear
    layer."""

    def __init__(self, feature_dim: int, hidden_size: int, fusion_size: int):
        super().__init__()
        self.lstm = nn.LSTM(feature_dim, hidden_size, num_layers=1, batch_first=True)
        self.projection = nn.Linear(hidden_size, fusion_size)

    def forward(self, values: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """`values` (batch, frames, feature_dim), `lengths` (batch,) -> (batch, fusion_size).

        A sample with length 0 is a missing modality: its output is exactly zero, so it adds nothing to the
        fusion.
        """
        batch_size = values.shape[0]
        present = lengths > 0
        if values.shape[1] == 0 or not present.any():
            return self.projection.weight.new_zeros(batch_size, self.projection.out_features)
        # Packing rejects length 0; those rows run over one padding frame and are zeroed below.
        packed = pack_padded_sequence(
            values.to(self.projection.weight.dtype),
            lengths.clamp(min=1).cpu(),
            batch_first=True,
            enforce_sorted=False,
        )
        _, (final_hidden, _) = self.lstm(packed)
        encoded = self.projection(final_hidden[-1])
        return encoded * present.unsqueeze(-1).to(encoded.dtype)


class MSEAdapterMultiScaleFusion(nn.Module):
    """Three bottleneck branches `Linear(fusion -> d/k) - GELU - Linear(d/k -> fusion)`, merged by a (1, 3)
    convolution over the stacked branch outputs, then `Linear(fusion -> d)`."""

    def __init__(self, fusion_size: int, hidden_size: int, ratios: list[int]):
        super().__init__()
        self.branches = nn.ModuleList(
            nn.Sequential(
                nn.Linear(fusion_size, hidden_size // ratio),
                nn.GELU(),
                nn.Linear(hidden_size // ratio, fusion_size),
            )
            for ratio in ratios
        )
        self.merge = nn.Conv2d(1, 1, kernel_size=(1, len(ratios)))
        self.output_projection = nn.Linear(fusion_size, hidden_size)

    def forward(self, fused: torch.Tensor) -> torch.Tensor:
        """`fused` (batch, fusion_size) -> (batch, hidden_size)."""
        scales = torch.stack([branch(fused) for branch in self.branches], dim=-1)  # (batch, fusion, 3)
        merged = self.merge(scales.unsqueeze(1)).flatten(1)  # (batch, 1, fusion, 1) -> (batch, fusion)
        return self.output_projection(merged)


class MSEAdapterPreTrainedModel(PreTrainedModel):
    config_class = MSEAdapterConfig
    base_model_prefix = "adapter"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = True  # checkpoints the backbone's layers; the adapter is tiny
    _supports_sdpa = True
    _supports_flash_attn = True

    def _init_weights(self, module: nn.Module) -> None:
        # PyTorch's default initialisation, as in the released code.
        if isinstance(module, (nn.Linear, nn.Conv2d, nn.LSTM)):
            module.reset_parameters()


class MSEAdapterModel(MSEAdapterPreTrainedModel):
    """The plug-in alone: modality encoders, Text-Guide-Mixer (TGM), Multi-Scale-Fusion (MSF) and projector.

    Built from the config alone, it has exactly the trainable-parameter count of the released code for the
    same hyper-parameters (e.g. 2,631,692 for MOSEI at d = 4096).
    """

    def __init__(self, config: MSEAdapterConfig):
        super().__init__(config)
        hidden_size = config.hidden_size
        if hidden_size is None:
            raise ValueError("config.text_config must define hidden_size (the backbone width d)")
        self.audio_encoder = MSEAdapterModalityEncoder(
            config.audio_feature_dim, config.audio_hidden_size, config.fusion_size
        )
        self.video_encoder = MSEAdapterModalityEncoder(
            config.video_feature_dim, config.video_hidden_size, config.fusion_size
        )
        self.text_guide = nn.Linear(hidden_size, config.fusion_size)
        self.multi_scale_fusion = MSEAdapterMultiScaleFusion(
            config.fusion_size, hidden_size, config.msf_ratios
        )
        self.projector = nn.Linear(1, config.num_pseudo_tokens)
        self.post_init()

    def forward(
        self,
        text_embeds: torch.Tensor,
        utterance_mask: torch.Tensor,
        audio_values: torch.Tensor,
        audio_lengths: torch.Tensor,
        video_values: torch.Tensor,
        video_lengths: torch.Tensor,
    ) -> torch.Tensor:
        """Compute the pseudo tokens.

        Args:
            text_embeds: `(batch, seq_len, d)` the backbone's input embeddings of the token sequence.
            utterance_mask: `(batch, seq_len)`, 1 on the utterance tokens (the TGM mean-pools them; an empty
                utterance pools to zero).
            audio_values / video_values: `(batch, frames, feature_dim)`, right-padded (frames may be 0).
            audio_lengths / video_lengths: `(batch,)` true frame counts; 0 = missing modality, which
                contributes exactly zero to the fusion `audio * t + video * t`.

        Returns:
            `(batch, num_pseudo_tokens, d)` pseudo-token embeddings.
        """
        batch_size = text_embeds.shape[0]
        dtype = self.text_guide.weight.dtype
        check_modality_inputs(
            "audio", audio_values, audio_lengths, self.config.audio_feature_dim, batch_size, dtype
        )
        check_modality_inputs(
            "video", video_values, video_lengths, self.config.video_feature_dim, batch_size, dtype
        )
        if utterance_mask.shape != text_embeds.shape[:2]:
            raise ValueError(
                f"utterance_mask must have shape {tuple(text_embeds.shape[:2])}, "
                f"got {tuple(utterance_mask.shape)}"
            )
        mask = utterance_mask.to(dtype).unsqueeze(-1)
        pooled = (text_embeds.to(dtype) * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)  # (batch, d)
        text_guide = self.text_guide(pooled)  # (batch, fusion)
        audio = self.audio_encoder(audio_values, audio_lengths)
        video = self.video_encoder(video_values, video_lengths)
        fused = audio * text_guide + video * text_guide
        sentence = self.multi_scale_fusion(fused)  # (batch, d)
        return self.projector(sentence.unsqueeze(-1)).transpose(1, 2)  # (batch, d, n) -> (batch, n, d)


class MSEAdapterForCausalLM(MSEAdapterPreTrainedModel, GenerationMixin):
    """MSE-Adapter plugged into a frozen causal language model.

    `adapter` (trainable) computes `num_pseudo_tokens` embeddings that replace the `<pseudo>` placeholders of
    the processor's `input_ids`; `language_model` (any `AutoModelForCausalLM`, frozen, never resized) does the
    rest. Only the adapter is saved unless `save_pretrained(..., save_full_model=True)`.
    """

    def __init__(self, config: MSEAdapterConfig, language_model: PreTrainedModel | None = None):
        super().__init__(config)
        self.adapter = MSEAdapterModel(config)
        if language_model is None:
            if getattr(config.text_config, "backbone_model_type", None):
                raise ValueError(
                    f"the backbone type {config.text_config.backbone_model_type!r} is remote code that this "
                    "config "
                    "cannot rebuild; pass language_model= (e.g. AutoModelForCausalLM.from_pretrained(..., "
                    "trust_remote_code=True))"
                )
            language_model = AutoModelForCausalLM.from_config(config.text_config)
        else:
            backbone_width = language_model.get_input_embeddings().embedding_dim
            if backbone_width != config.hidden_size:
                raise ValueError(
                    f"language_model has width {backbone_width} but config.text_config.hidden_size is "
                    f"{config.hidden_size}"
                )
            # A given backbone is already trained: post_init must never re-initialise any of its weights.
            for module in language_model.modules():
                module._is_hf_initialized = True
        self.language_model = language_model
        self.post_init()
        self.generation_config = language_model.generation_config
        self.freeze_language_model()

    def freeze_language_model(self) -> None:
        """Freeze the backbone (called after construction and after every load path)."""
        self.language_model.requires_grad_(False)

    def get_input_embeddings(self) -> nn.Module:
        return self.language_model.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.language_model.set_input_embeddings(value)

    def get_output_embeddings(self) -> nn.Module | None:
        return self.language_model.get_output_embeddings()

    @classmethod
    def from_language_model(
        cls,
        language_model: PreTrainedModel,
        processor,
        config: MSEAdapterConfig | None = None,
        **config_kwargs,
    ) -> MSEAdapterForCausalLM:
        """Build an adapter for an already loaded backbone, taking the task and token ids from `processor`.

        Args:
            language_model: the frozen backbone (shared, not copied).
            processor: an `MSEAdapterProcessor` whose tokenizer matches `language_model`.
            config: an `MSEAdapterConfig` (e.g. `MSEAdapterConfig.from_paper_preset(...)`) whose task fields
                must agree with the processor; built from the processor and `config_kwargs` when omitted.
        """
        processor_fields = processor.adapter_config_fields()
        if config is None:
            fields = {
                "text_config": language_model.config,
                "base_model_name_or_path": language_model.name_or_path or None,
            }
            config = MSEAdapterConfig(**{**fields, **config_kwargs, **processor_fields})
        else:
            if config_kwargs:
                raise ValueError(
                    f"pass either config or config fields, got both (fields {sorted(config_kwargs)})"
                )
            mismatched = {
                name: (getattr(config, name), value)
                for name, value in processor_fields.items()
                if name not in ("pseudo_token_id", "answer_token_ids") and getattr(config, name) != value
            }
            if mismatched:
                raise ValueError(
                    f"config and processor disagree (config value, processor value): {mismatched}"
                )
            config = copy.deepcopy(config)
            config.pseudo_token_id = processor_fields["pseudo_token_id"]
            config.answer_token_ids = processor_fields["answer_token_ids"]
        return cls(config, language_model=language_model)

    def embed_inputs(
        self,
        input_ids: torch.LongTensor,
        utterance_mask: torch.Tensor | None = None,
        audio_values: torch.Tensor | None = None,
        audio_lengths: torch.Tensor | None = None,
        video_values: torch.Tensor | None = None,
        video_lengths: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """`input_ids` (batch, seq_len) -> `inputs_embeds` (batch, seq_len, d) with the pseudo tokens in
        place.

        Without placeholders in `input_ids` this is the backbone's own embedding lookup (text-only inputs).
        """
        embedding = self.get_input_embeddings()
        pseudo_token_id = self.config.pseudo_token_id
        check_token_inputs(input_ids, utterance_mask, None, embedding.num_embeddings, pseudo_token_id)
        for name, value in (
            ("audio_values", audio_values),
            ("audio_lengths", audio_lengths),
            ("video_values", video_values),
            ("video_lengths", video_lengths),
        ):
            if value is not None and not isinstance(value, torch.Tensor):
                raise TypeError(f"{name} must be a torch.Tensor or None, got {type(value).__name__}")
        is_pseudo = (
            input_ids == pseudo_token_id
            if pseudo_token_id is not None
            else torch.zeros_like(input_ids).bool()
        )
        if not is_pseudo.any():
            if any(value is not None for value in (audio_values, video_values)):
                raise ValueError(
                    f"audio/video features were given but input_ids hold no <pseudo> placeholder "
                    f"(config.pseudo_token_id={pseudo_token_id}); build the inputs with MSEAdapterProcessor"
                )
            return embedding(input_ids)
        batch_size, seq_len = input_ids.shape
        counts = is_pseudo.sum(dim=-1)
        if (counts != self.config.num_pseudo_tokens).any():
            raise ValueError(
                f"each row of input_ids must hold exactly {self.config.num_pseudo_tokens} <pseudo> "
                f"placeholders "
                f"(id {pseudo_token_id}), got {counts.tolist()}"
            )
        if utterance_mask is None:
            raise ValueError("utterance_mask (from MSEAdapterProcessor) is required with multimodal inputs")
        if utterance_mask.shape[1] < seq_len:
            # Without a cache, generation re-reads the grown sequence; generated tokens are never utterance.
            utterance_mask = nn.functional.pad(utterance_mask, (0, seq_len - utterance_mask.shape[1]))
        audio_values, audio_lengths = self._default_modality(
            audio_values, audio_lengths, batch_size, input_ids
        )
        video_values, video_lengths = self._default_modality(
            video_values, video_lengths, batch_size, input_ids
        )
        # Checked here as well as in the adapter so that bad input fails before the embedding lookup.
        adapter_dtype = self.adapter.text_guide.weight.dtype
        check_modality_inputs(
            "audio", audio_values, audio_lengths, self.config.audio_feature_dim, batch_size, adapter_dtype
        )
        check_modality_inputs(
            "video", video_values, video_lengths, self.config.video_feature_dim, batch_size, adapter_dtype
        )
        # The placeholder id may lie outside the frozen backbone's vocabulary, which is never resized.
        text_embeds = embedding(input_ids.masked_fill(is_pseudo, 0))
        pseudo_embeds = self.adapter(
            text_embeds, utterance_mask, audio_values, audio_lengths, video_values, video_lengths
        )
        return text_embeds.masked_scatter(is_pseudo.unsqueeze(-1), pseudo_embeds.to(text_embeds.dtype))

    @staticmethod
    def _default_modality(
        values: torch.Tensor | None, lengths: torch.Tensor | None, batch_size: int, input_ids: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Missing features become zero frames; missing lengths mean every frame is real."""
        if values is None:
            values = torch.zeros(batch_size, 0, 0, device=input_ids.device)
            lengths = torch.zeros(batch_size, dtype=torch.long, device=input_ids.device)
        elif lengths is None:
            lengths = torch.full((values.shape[0],), values.shape[1], dtype=torch.long, device=values.device)
        return values, lengths

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        audio_values: torch.Tensor | None = None,
        audio_lengths: torch.LongTensor | None = None,
        video_values: torch.Tensor | None = None,
        video_lengths: torch.LongTensor | None = None,
        utterance_mask: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        position_ids: torch.LongTensor | None = None,
        past_key_values=None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        **kwargs,
    ) -> CausalLMOutputWithPast:
        """Run the backbone on the text with the pseudo tokens in place of the `<pseudo>` placeholders.

        Args:
            input_ids: `(batch, seq_len)` from `MSEAdapterProcessor` (left-padded).
            attention_mask: `(batch, past + seq_len)`; position ids are derived from it so that left padding
                gives the same positions in training and in generation.
            audio_values / video_values: `(batch, frames, feature_dim)`; audio_lengths / video_lengths
                `(batch,)`.
            utterance_mask: `(batch, seq_len)`, 1 on utterance tokens.
            labels: `(batch, seq_len)` with -100 everywhere but the label (+EOS) tokens; the loss covers only
                those. With `logits_to_keep=k` the loss uses the last `k` positions (enough when every label
                sits at the end, as with left padding); dropping a supervised token raises an error.

        Returns:
            `CausalLMOutputWithPast` with `loss` (when labels are given) and `logits` `(batch, seq_len,
            vocab)`.
        """
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of input_ids and inputs_embeds")
        if labels is not None and input_ids is not None:
            # embed_inputs checks the other token inputs; labels only reach forward.
            vocab_size = self.get_input_embeddings().num_embeddings
            check_token_inputs(input_ids, None, labels, vocab_size, self.config.pseudo_token_id)
            labels = labels.long()  # the backbone's loss takes int64 targets only
        if inputs_embeds is None:
            inputs_embeds = self.embed_inputs(
                input_ids, utterance_mask, audio_values, audio_lengths, video_values, video_lengths
            )
        if position_ids is None and attention_mask is not None and attention_mask.ndim == 2:
            position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)[:, -inputs_embeds.shape[1] :]
        if labels is not None and isinstance(logits_to_keep, int) and logits_to_keep > 0:
            labels = self._labels_for_kept_logits(labels, logits_to_keep)
        outputs = self.language_model(
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            position_ids=position_ids,
            past_key_values=past_key_values,
            use_cache=use_cache,
            labels=labels,
            logits_to_keep=logits_to_keep,
            **kwargs,
        )
        return CausalLMOutputWithPast(
            loss=outputs.loss,
            logits=outputs.logits,
            past_key_values=outputs.past_key_values,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )

    @staticmethod
    def _labels_for_kept_logits(labels: torch.Tensor, logits_to_keep: int) -> torch.Tensor:
        """Labels aligned with logits of the last `logits_to_keep` positions only.

        With left padding every label sits at the end, so keeping the last few logits skips most of the output
        layer's cost on a large vocabulary; the loss is unchanged as long as no supervised token is dropped.
        """
        dropped = labels[:, : labels.shape[1] - logits_to_keep + 1]
        if (dropped != -100).any():
            raise ValueError(
                f"logits_to_keep={logits_to_keep} drops supervised label positions: keep at least the "
                "position before the first label token"
            )
        return labels[:, -logits_to_keep:]

    def prepare_inputs_for_generation(
        self,
        input_ids: torch.LongTensor,
        *args,
        inputs_embeds: torch.Tensor | None = None,
        is_first_iteration: bool | None = False,
        **kwargs,
    ):
        # `inputs_embeds` is named so that `generate` accepts it (e.g. from `embed_inputs`, as `predict` does).
        model_inputs = super().prepare_inputs_for_generation(
            input_ids, *args, inputs_embeds=inputs_embeds, is_first_iteration=is_first_iteration, **kwargs
        )
        # The pseudo tokens live in the cache after the first step; generation only drops inputs it knows
        # about.
        if not is_first_iteration and kwargs.get("use_cache", True):
            for name in MULTIMODAL_INPUT_NAMES:
                model_inputs.pop(name, None)
        return model_inputs

    @torch.no_grad()
    def predict(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.Tensor,
        audio_values: torch.Tensor | None = None,
        audio_lengths: torch.LongTensor | None = None,
        video_values: torch.Tensor | None = None,
        video_lengths: torch.LongTensor | None = None,
        utterance_mask: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        answer_constraint: AnswerSetLogitsProcessor | None = None,
        return_scores: bool = False,
    ) -> list[float] | list[str] | list[dict[str, float]]:
        """Greedy `generate` restricted to the admissible answers; every output is valid by construction.

        Classification returns label names, regression floats (every one-decimal value of `value_range` in the
        released format `+1.2`, so the value is always inside the range). Generation stops once every row
        spells a whole answer: one forward pass when every class index is a single token, then one cached step
        per further answer token.

        Args:
            answer_constraint: `processor.answer_logits_processor()` of the processor made for this task and
                tokenizer; defaults to the answer set in `config.answer_token_ids` (filled by
                `from_language_model`).
            return_scores: classification -> per sample a dict label name -> probability, from the model's
                likelihood of each admissible answer (see `answer_probabilities`); regression -> the decoded
                value, as without it.
        """
        if labels is not None:
            raise ValueError(
                "predict needs inputs built without labels (their label tokens would be part of input_ids); "
                "call the processor with labels=None"
            )
        constraint = answer_constraint if answer_constraint is not None else self._config_answer_constraint()
        inputs_embeds = self.embed_inputs(
            input_ids, utterance_mask, audio_values, audio_lengths, video_values, video_lengths
        )
        if return_scores and self.config.task == "classification":
            return self.answer_probabilities(inputs_embeds, attention_mask, constraint)
        terminator = constraint.answer_token_ids[0][-1]
        pad_token_id = self.generation_config.pad_token_id
        generated = self.generate(
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            logits_processor=LogitsProcessorList([constraint]),
            # Enough to spell any answer; the terminator after it would cost one more forward pass.
            max_new_tokens=constraint.max_answer_length,
            do_sample=False,
            num_beams=1,
            pad_token_id=terminator if pad_token_id is None else pad_token_id,
        )
        return constraint.decode(generated)  # fed inputs_embeds, generate returns the new tokens only

    def _config_answer_constraint(self) -> AnswerSetLogitsProcessor:
        if self.config.answer_token_ids is None:
            raise ValueError(
                "predict needs the task's answers: pass "
                "answer_constraint=processor.answer_logits_processor() (config.answer_token_ids is not set; "
                "MSEAdapterForCausalLM.from_language_model fills it)"
            )
        if self.config.task == "classification":
            answers = self.config.label_names
        else:
            answers = [float(answer) for answer in self.config.answers]
        return AnswerSetLogitsProcessor(self.config.answer_token_ids, answers)

    def answer_probabilities(
        self,
        inputs_embeds: torch.Tensor,
        attention_mask: torch.Tensor,
        constraint: AnswerSetLogitsProcessor,
    ) -> list[dict]:
        """Per sample a probability for each admissible answer, from the model's likelihood of that answer.

        When every answer is one token before its terminator, this is one forward pass: the softmax of the
        last position's logits restricted to those tokens. Otherwise each answer's teacher-forced
        log-likelihood, terminator included, comes from the cached prompt continued by all answers at once;
        the softmax runs over the set.

        Args:
            inputs_embeds: `(batch, seq_len, d)` from `embed_inputs`; attention_mask `(batch, seq_len)`.
            constraint: the answer set (`processor.answer_logits_processor()`).

        Returns:
            One dict per sample, `constraint.answers[i]` -> probability (summing to 1).
        """
        answer_token_ids = constraint.answer_token_ids
        single_token = all(len(ids) == 2 for ids in answer_token_ids)
        outputs = self(
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            use_cache=not single_token,
            logits_to_keep=1,
        )
        last_logits = outputs.logits[:, -1].float()  # (batch, vocab)
        if single_token:
            scores = last_logits[:, [ids[0] for ids in answer_token_ids]]  # (batch, answers)
        else:
            scores = self._answer_log_likelihoods(
                last_logits, outputs.past_key_values, attention_mask, answer_token_ids
            )
        probabilities = scores.softmax(dim=-1).tolist()
        return [dict(zip(constraint.answers, row, strict=True)) for row in probabilities]

    def _answer_log_likelihoods(
        self,
        last_logits: torch.Tensor,
        past_key_values,
        attention_mask: torch.Tensor,
        answer_token_ids: list[list[int]],
    ) -> torch.Tensor:
        """`(batch, answers)` sum of each answer's token log-probabilities (terminator included) after the
        prompt whose last-position logits `(batch, vocab)` and cache are given."""
        batch_size, num_answers = last_logits.shape[0], len(answer_token_ids)
        longest = max(len(ids) for ids in answer_token_ids)
        targets = torch.full((num_answers, longest), -1, dtype=torch.long, device=last_logits.device)
        for index, ids in enumerate(answer_token_ids):
            targets[index, : len(ids)] = torch.tensor(ids)
        first = last_logits.log_softmax(dim=-1)[:, targets[:, 0]]  # (batch, answers)
        # Every (sample, answer) pair continues the cached prompt with the answer's tokens (right-padded:
        # the padding comes after the scored positions, so causal attention never sees it).
        past_key_values.batch_repeat_interleave(num_answers)
        continuation = targets[:, :-1].clamp(min=0).repeat(batch_size, 1)  # (batch * answers, longest - 1)
        mask = torch.cat(
            [
                attention_mask.repeat_interleave(num_answers, dim=0),
                attention_mask.new_ones(batch_size * num_answers, longest - 1),
            ],
            dim=-1,
        )
        logits = self(
            input_ids=continuation, attention_mask=mask, past_key_values=past_key_values, use_cache=False
        ).logits.float()
        next_targets = targets[:, 1:].repeat(batch_size, 1)  # (batch * answers, longest - 1)
        log_probs = logits.log_softmax(dim=-1).gather(-1, next_targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        rest = log_probs.masked_fill(next_targets < 0, 0.0).sum(dim=-1).view(batch_size, num_answers)
        return first + rest

    def save_pretrained(self, save_directory: str | os.PathLike, save_full_model: bool = False, **kwargs):
        """Write the config, the remote code and the adapter weights (a few MB at d = 4096).

        With `save_full_model=True` the backbone weights are written too and the folder no longer needs
        `base_model_name_or_path`.
        """
        if not save_full_model:
            state_dict = kwargs.pop("state_dict", None) or self.state_dict()
            kwargs["state_dict"] = {
                name: value for name, value in state_dict.items() if name.startswith("adapter.")
            }
        # register_for_auto_class keeps one auto class; users load with AutoModel as well.
        auto_map = dict(getattr(self.config, "auto_map", None) or {})
        auto_map["AutoModel"] = f"{type(self).__module__.split('.')[-1]}.{type(self).__name__}"
        self.config.auto_map = auto_map
        super().save_pretrained(save_directory, **kwargs)

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: str | os.PathLike,
        *model_args,
        language_model: PreTrainedModel | None = None,
        language_model_kwargs: dict | None = None,
        config: MSEAdapterConfig | None = None,
        **kwargs,
    ) -> MSEAdapterForCausalLM:
        """Load a saved adapter; the backbone comes from the folder (if saved with it), from `language_model`
        (shared, not copied) or from `config.base_model_name_or_path` (loaded with `language_model_kwargs`,
        e.g. `{"trust_remote_code": True}`, plus `dtype`). The backbone is frozen on every path."""
        check_folder_or_hub_id(pretrained_model_name_or_path, "pretrained_model_name_or_path")
        hub_kwargs = {name: kwargs[name] for name in _HUB_KWARG_NAMES if name in kwargs}
        if config is None:
            config = cls.config_class.from_pretrained(pretrained_model_name_or_path, **hub_kwargs)
        if cls._saved_with_language_model(pretrained_model_name_or_path, hub_kwargs):
            if language_model is not None:
                raise ValueError(
                    f"{pretrained_model_name_or_path} holds its own language model; "
                    "load it without language_model="
                )
            model = super().from_pretrained(
                pretrained_model_name_or_path, *model_args, config=config, **kwargs
            )
            model.freeze_language_model()
            return model
        if language_model is None:
            if not config.base_model_name_or_path:
                raise ValueError(
                    f"{pretrained_model_name_or_path} holds only adapter weights and "
                    "config.base_model_name_or_path is not set; pass language_model= (the backbone it was "
                    "trained on)"
                )
            backbone_kwargs = dict(language_model_kwargs or {})
            for name in _BACKBONE_KWARG_NAMES:
                if name in kwargs:
                    backbone_kwargs.setdefault(name, kwargs[name])
            language_model = cls._load_language_model(
                config.base_model_name_or_path, pretrained_model_name_or_path, backbone_kwargs
            )
        model = cls(config, language_model=language_model)
        weights_file = cached_file(pretrained_model_name_or_path, SAFE_WEIGHTS_NAME, **hub_kwargs)
        adapter_state = load_state_dict(weights_file)
        missing, unexpected = model.load_state_dict(adapter_state, strict=False)
        missing_adapter = [name for name in missing if name.startswith("adapter.")]
        if missing_adapter or unexpected:
            raise ValueError(
                f"{weights_file} does not match the adapter: missing {missing_adapter}, "
                f"unexpected {unexpected}"
            )
        embedding_weight = language_model.get_input_embeddings().weight
        # The adapter follows the backbone's device; its dtype changes only when one is asked for explicitly.
        dtype = kwargs.get("dtype")
        if dtype == "auto":
            dtype = embedding_weight.dtype
        elif isinstance(dtype, str):
            dtype = getattr(torch, dtype)
        model.adapter.to(device=embedding_weight.device, dtype=dtype)
        model.freeze_language_model()
        return model.eval()

    @staticmethod
    def _load_language_model(
        backbone_path: str, pretrained_model_name_or_path: str | os.PathLike, backbone_kwargs: dict
    ) -> PreTrainedModel:
        """The backbone named by an adapter-only checkpoint, with one error naming the field when it cannot be
        found (instead of the download code's chain of tracebacks)."""
        source = (
            "the backbone path config.base_model_name_or_path of the adapter at "
            f"{os.fspath(pretrained_model_name_or_path)}"
        )
        remedy = "; pass language_model= or correct the path"
        check_folder_or_hub_id(backbone_path, source, remedy)
        try:
            return AutoModelForCausalLM.from_pretrained(backbone_path, **backbone_kwargs)
        except OSError as error:
            raise OSError(
                f"{source} is {backbone_path!r}, which could not be loaded ({error}){remedy}"
            ) from None

    @staticmethod
    def _saved_with_language_model(
        pretrained_model_name_or_path: str | os.PathLike, hub_kwargs: dict
    ) -> bool:
        """True when the folder's weights include the backbone (sharded, or keys under `language_model.`).

        Every weights file's header is checked here, before any backbone is loaded: a missing, truncated or
        corrupted file raises a ValueError naming it.
        """
        index_file = cached_file(
            pretrained_model_name_or_path,
            SAFE_WEIGHTS_INDEX_NAME,
            _raise_exceptions_for_missing_entries=False,
            **hub_kwargs,
        )
        if index_file is not None:
            try:
                with open(index_file, encoding="utf-8") as index:
                    shard_names = sorted(set(json.load(index)["weight_map"].values()))
            except (ValueError, KeyError, TypeError, AttributeError) as error:
                raise ValueError(
                    f"{index_file} is not a valid safetensors index (expected JSON with a 'weight_map' "
                    f"of tensor name -> shard file): {error!r}"
                ) from None
            for shard_name in shard_names:
                read_safetensors_header(cached_file(pretrained_model_name_or_path, shard_name, **hub_kwargs))
            return True
        weights_file = cached_file(
            pretrained_model_name_or_path,
            SAFE_WEIGHTS_NAME,
            _raise_exceptions_for_missing_entries=False,
            **hub_kwargs,
        )
        if weights_file is None:
            raise ValueError(
                f"{os.fspath(pretrained_model_name_or_path)} holds neither {SAFE_WEIGHTS_NAME} nor "
                f"{SAFE_WEIGHTS_INDEX_NAME}; expected a checkpoint written by "
                "MSEAdapterForCausalLM.save_pretrained"
            )
        return any(name.startswith("language_model.") for name in read_safetensors_header(weights_file))


MSEAdapterForCausalLM.register_for_auto_class("AutoModelForCausalLM")
