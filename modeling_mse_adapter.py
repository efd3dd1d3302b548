"""MSE-Adapter (Yang, Dong, Qiang; AAAI 2025): a plug-in that turns audio/video features and the utterance
into a few pseudo tokens placed in the input of a frozen causal language model.

Hub remote code: this module imports only the standard library, torch, transformers and the other
`*_mse_adapter.py` modules.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from transformers import AutoModelForCausalLM, GenerationMixin, LogitsProcessorList, PreTrainedModel
from transformers.modeling_outputs import CausalLMOutputWithPast

try:
    from .answer_constraints import AnswerSetLogitsProcessor, answer_log_scores
    from .checkpoint_mse_adapter import MSEAdapterCheckpointMixin
    from .configuration_mse_adapter import MSEAdapterConfig
    from .layers_mse_adapter import MSEAdapterModalityEncoder, MSEAdapterMultiScaleFusion
    from .validation_mse_adapter import (
        check_modality_inputs,
        check_token_inputs,
        default_modality,
        find_placeholders,
        labels_for_kept_logits,
    )
except ImportError:  # imported as a top-level module (installed package or checkout), not as Hub code
    from answer_constraints import AnswerSetLogitsProcessor, answer_log_scores
    from checkpoint_mse_adapter import MSEAdapterCheckpointMixin
    from configuration_mse_adapter import MSEAdapterConfig
    from layers_mse_adapter import MSEAdapterModalityEncoder, MSEAdapterMultiScaleFusion
    from validation_mse_adapter import (
        check_modality_inputs,
        check_token_inputs,
        default_modality,
        find_placeholders,
        labels_for_kept_logits,
    )

MULTIMODAL_INPUT_NAMES = ("audio_values", "audio_lengths", "video_values", "video_lengths", "utterance_mask")


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


class MSEAdapterForCausalLM(MSEAdapterCheckpointMixin, MSEAdapterPreTrainedModel, GenerationMixin):
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
        """The model for an already loaded backbone and a processor, in one line.

        The processor gives `num_pseudo_tokens`, `pseudo_token_id` and (when it declares them) the feature
        widths; the task stays the processor's (pass `processor.answer_logits_processor()` to `predict` /
        `generate`). Same as `MSEAdapterForCausalLM(config, language_model=llm)` with those config fields.

        Args:
            language_model: the frozen backbone (shared, not copied).
            processor: an `MSEAdapterProcessor` whose tokenizer matches `language_model`.
            config: an `MSEAdapterConfig` (e.g. `MSEAdapterConfig.from_paper_preset(...)`) that must agree
                with the processor; built from the backbone, the processor and `config_kwargs` when omitted.
        """
        shared = {"num_pseudo_tokens": processor.num_pseudo_tokens}
        for name in ("audio_feature_dim", "video_feature_dim"):
            if getattr(processor, name) is not None:
                shared[name] = getattr(processor, name)
        if config is not None and config_kwargs:
            raise ValueError(
                f"pass either config or config fields, got both (fields {sorted(config_kwargs)})"
            )
        given = config_kwargs if config is None else {name: getattr(config, name) for name in shared}
        mismatched = {
            name: (given[name], value)
            for name, value in shared.items()
            if name in given and given[name] != value
        }
        if mismatched:
            raise ValueError(f"config and processor disagree (config value, processor value): {mismatched}")
        if config is None:
            backbone = {
                "text_config": language_model.config,
                "base_model_name_or_path": language_model.name_or_path or None,
            }
            config = MSEAdapterConfig(**{**backbone, **config_kwargs, **shared})
        else:
            config = copy.deepcopy(config)
        config.pseudo_token_id = processor.pseudo_token_id
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
        features = {
            "audio_values": audio_values,
            "audio_lengths": audio_lengths,
            "video_values": video_values,
            "video_lengths": video_lengths,
        }
        for name, value in features.items():
            if value is not None and not isinstance(value, torch.Tensor):
                raise TypeError(f"{name} must be a torch.Tensor or None, got {type(value).__name__}")
        has_features = any(value is not None for value in features.values())
        is_pseudo = find_placeholders(
            input_ids, utterance_mask, embedding.num_embeddings, self.config, has_features
        )
        if not is_pseudo.any():
            return embedding(input_ids)  # text only
        batch_size, seq_len = input_ids.shape
        if utterance_mask.shape[1] < seq_len:
            # Without a cache, generation re-reads the grown sequence; generated tokens are never utterance.
            utterance_mask = nn.functional.pad(utterance_mask, (0, seq_len - utterance_mask.shape[1]))
        audio_values, audio_lengths = default_modality(audio_values, audio_lengths, batch_size, input_ids)
        video_values, video_lengths = default_modality(video_values, video_lengths, batch_size, input_ids)
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
            labels = labels_for_kept_logits(labels, logits_to_keep)
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

    def prepare_inputs_for_generation(
        self,
        input_ids: torch.LongTensor,
        *args,
        inputs_embeds: torch.Tensor | None = None,
        is_first_iteration: bool | None = False,
        **kwargs,
    ):
        # `inputs_embeds` is named so that `generate` accepts it (from `embed_inputs`, as `predict` does).
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
        """Greedy `generate` restricted to the task's admissible answers: every output is valid.

        `model.predict(**processor(text=..., audio=..., video=...),
        answer_constraint=processor.answer_logits_processor())` returns label names (classification) or floats
        (regression: one-decimal values inside the processor's `value_range`). Generation stops once every row
        spells a whole answer: one forward pass when every class index is a single token, then one cached step
        per further answer token.

        Args:
            answer_constraint: `processor.answer_logits_processor()` of the processor that built the inputs.
            return_scores: classification -> per sample a dict label name -> probability, the softmax over the
                set of each answer's log-score (`answer_constraints.answer_log_scores`); regression -> the
                decoded value, as without it.
        """
        if labels is not None:
            raise ValueError(
                "predict needs inputs built without labels (their label tokens would be part of input_ids); "
                "call the processor with labels=None"
            )
        # Duck-typed: the processor's copy of the remote code may be another module than the model's.
        if not hasattr(answer_constraint, "answer_token_ids"):
            raise TypeError(
                "predict needs the task's answers: pass "
                "answer_constraint=processor.answer_logits_processor(), "
                f"got {type(answer_constraint).__name__}"
            )
        inputs_embeds = self.embed_inputs(
            input_ids, utterance_mask, audio_values, audio_lengths, video_values, video_lengths
        )
        if return_scores and not answer_constraint.answers_are_values:
            prompt = {"inputs_embeds": inputs_embeds, "attention_mask": attention_mask}
            scores = answer_log_scores(self, prompt, answer_constraint.answer_token_ids)
            return [
                dict(zip(answer_constraint.answers, row, strict=True)) for row in scores.softmax(-1).tolist()
            ]
        terminator = answer_constraint.answer_token_ids[0][-1]
        pad_token_id = self.generation_config.pad_token_id
        generated = self.generate(
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            logits_processor=LogitsProcessorList([answer_constraint]),
            # Enough to spell any answer; the terminator after it would cost one more forward pass.
            max_new_tokens=answer_constraint.max_answer_length,
            do_sample=False,
            num_beams=1,
            pad_token_id=terminator if pad_token_id is None else pad_token_id,
        )
        return answer_constraint.decode(generated)  # fed inputs_embeds, generate returns the new tokens only


MSEAdapterForCausalLM.register_for_auto_class("AutoModelForCausalLM")
