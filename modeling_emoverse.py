"""EmoVerse (M2SE, arXiv 2412.08049) as a transformers model: frozen vision encoder -> linear projector W_v
-> causal LLM with PEFT LoRA, X = [W_v T_v ; T_t] with one block of visual tokens per image or video frame.

Hub remote code: imports only transformers, torch, the standard library and its sibling modules; the LoRA
layers, the projector's training and the adapter files come from PEFT's public API (`peft_emoverse`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from peft import inject_adapter_in_model
from torch import nn
from transformers import (
    AutoModel,
    AutoModelForCausalLM,
    AutoTokenizer,
    GenerationMixin,
    PretrainedConfig,
    PreTrainedModel,
)
from transformers.modeling_outputs import CausalLMOutputWithPast

try:
    from .configuration_emoverse import EmoVerseConfig, vision_layout
    from .media_emoverse import load_pretrained_part
    from .peft_emoverse import (
        LORA_ADAPTER_NAME,
        is_trained_parameter,
        load_adapter_files,
        lora_config,
        merged_state_dict,
        save_adapter_files,
    )
    from .pipeline_emoverse import custom_pipelines
except ImportError:  # imported as a top-level module from a checkout instead of as Hub remote code
    from configuration_emoverse import EmoVerseConfig, vision_layout
    from media_emoverse import load_pretrained_part
    from peft_emoverse import (
        LORA_ADAPTER_NAME,
        is_trained_parameter,
        load_adapter_files,
        lora_config,
        merged_state_dict,
        save_adapter_files,
    )
    from pipeline_emoverse import custom_pipelines


@dataclass
class EmoVerseCausalLMOutputWithPast(CausalLMOutputWithPast):
    """Output of [`EmoVerseForConditionalGeneration`]: the LLM's output fields (loss over the tokens whose
    label is not -100, logits, the key/value cache under the installed transformers' name...) plus

    Args:
        image_hidden_states (`torch.FloatTensor` of shape `(num_images, image_seq_length, text_hidden_size)`):
            projected visual tokens W_v T_v of this step's images.
    """

    image_hidden_states: torch.FloatTensor | None = None


def _vision_width(vision_tower: nn.Module) -> int:
    """Channel width of the encoder's output tokens (timm models keep it on the wrapped module)."""
    timm_model = getattr(vision_tower, "timm_model", None)
    if timm_model is not None:
        return timm_model.num_features
    return vision_tower.config.hidden_size


def _vision_tower(
    vision_model: str | os.PathLike | PreTrainedModel | PretrainedConfig, load_kwargs: dict
) -> tuple[PreTrainedModel, str | None]:
    """The encoder `from_parts` is given (a name/path, a loaded model or a config) and the name/path a
    trained-parts checkpoint reloads it from (None for an encoder built from a config)."""
    if isinstance(vision_model, (str, os.PathLike)):
        name_or_path = str(vision_model)
        return load_pretrained_part(
            AutoModel, name_or_path, "vision_model (the vision tower)", **load_kwargs
        ), name_or_path
    if isinstance(vision_model, PreTrainedModel):
        return vision_model, vision_model.name_or_path or None
    if isinstance(vision_model, PretrainedConfig):
        return AutoModel.from_config(vision_model), None
    raise TypeError(
        "vision_model must be a name/path, a PreTrainedModel or a vision config, "
        f"got {type(vision_model).__name__}"
    )


def check_inputs(
    config: EmoVerseConfig, input_ids: torch.LongTensor, pixel_values: torch.FloatTensor | None
) -> None:
    """ValueError before any compute: malformed `pixel_values`, or placeholders that do not match them."""
    if pixel_values is not None:
        if pixel_values.dim() != 4 or not pixel_values.is_floating_point():
            raise ValueError(
                "pixel_values must be a float tensor of shape (num_images, channels, height, width), got "
                f"{pixel_values.dtype} of shape {tuple(pixel_values.shape)}"
            )
        expected_shape = vision_layout(config.vision_config)[0]
        if expected_shape is not None and tuple(pixel_values.shape[1:]) != tuple(expected_shape):
            raise ValueError(
                f"pixel_values must have shape (num_images, {', '.join(map(str, expected_shape))}) "
                "(channels, height, width of the vision encoder's input), got "
                f"{tuple(pixel_values.shape)}; build inputs with EmoVerseProcessor"
            )
        non_finite = (~torch.isfinite(pixel_values)).flatten(1).any(dim=1).nonzero().flatten().tolist()
        if non_finite:
            raise ValueError(f"pixel_values of images {non_finite} hold NaN or Inf; expected finite")
    num_placeholders = int((input_ids == config.image_token_id).sum())
    num_images = 0 if pixel_values is None else pixel_values.shape[0]
    expected = num_images * config.image_seq_length
    if num_placeholders != expected:
        raise ValueError(
            f"the batch has {num_images} image(s) x {config.image_seq_length} visual tokens = "
            f"{expected} "
            f"placeholders expected, but input_ids hold {num_placeholders} image tokens "
            f"(id {config.image_token_id}); build inputs with EmoVerseProcessor"
        )


class EmoVersePreTrainedModel(PreTrainedModel):
    config_class = EmoVerseConfig
    base_model_prefix = ""
    input_modalities = ("image", "text")
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _skip_keys_device_placement = ("past_key_values", "cache")  # the cache's name before / since v5.24


class EmoVerseForConditionalGeneration(EmoVersePreTrainedModel, GenerationMixin):
    """Frozen `vision_tower`, trainable `multi_modal_projector` (W_v), `language_model` with LoRA adapters.

    The LoRA layers and the projector come from PEFT ([`peft_emoverse.lora_config`]).
    `model.save_pretrained(d)` writes the trained parts as PEFT adapter files (`adapter_config.json`,
    `adapter_model.safetensors`) next to a config naming the base encoder and LLM;
    `model.save_pretrained(d, save_full_model=True)` writes every weight with LoRA merged in.
    `from_pretrained` restores either and re-freezes the vision tower and the LLM's base weights.
    """

    def __init__(
        self,
        config: EmoVerseConfig,
        vision_tower: PreTrainedModel | None = None,
        language_model: PreTrainedModel | None = None,
    ):
        super().__init__(config)
        self.vision_tower = (
            vision_tower if vision_tower is not None else AutoModel.from_config(config.vision_config)
        )
        self.language_model = (
            language_model
            if language_model is not None
            else AutoModelForCausalLM.from_config(config.text_config)
        )
        self.multi_modal_projector = nn.Linear(
            _vision_width(self.vision_tower), config.text_config.hidden_size, bias=config.projector_bias
        )
        self.post_init()
        if config.checkpoint_contents == "trained":
            # after post_init, so that PEFT's own initialisation (LoRA B = 0) is kept
            inject_adapter_in_model(lora_config(config), self, adapter_name=LORA_ADAPTER_NAME)
        self.freeze_base_parts()

    @classmethod
    def from_parts(
        cls,
        vision_model: str | os.PathLike | PreTrainedModel | PretrainedConfig,
        text_model_name_or_path: str | os.PathLike,
        *,
        image_token_id: int | None = None,
        config: EmoVerseConfig | None = None,
        dtype: torch.dtype | None = None,
        trust_remote_code: bool = False,
        **config_kwargs,
    ) -> EmoVerseForConditionalGeneration:
        """Build EmoVerse from a separately pretrained vision encoder and causal LM.

        Args:
            vision_model: a name/path for `AutoModel.from_pretrained` (recorded in the config, so that a
                checkpoint of the trained parts can reload it), a loaded model, or a vision config (a randomly
                initialised encoder; such a model can only be saved with `save_full_model=True`).
            text_model_name_or_path: a name/path for `AutoModelForCausalLM` and `AutoTokenizer`.
            image_token_id: id of the image placeholder; by default the id of `config.image_token` in the
                LLM's tokenizer, or `len(tokenizer)`: the id [`EmoVerseProcessor.from_parts`] gives it.
            config: an `EmoVerseConfig` to start from (its sub-configs are replaced by the loaded parts').
            dtype: dtype of both parts.
            trust_remote_code: passed to the loaders (InternViT, InternLM-2.5 are remote code on the Hub).
            config_kwargs: other `EmoVerseConfig` fields (`lora_r`, `vision_feature_layer`...).
        """
        load_kwargs = {"trust_remote_code": trust_remote_code}
        if dtype is not None:
            load_kwargs["dtype"] = dtype
        vision_tower, vision_model_name_or_path = _vision_tower(vision_model, load_kwargs)
        text_model_name_or_path = str(text_model_name_or_path)
        language_model = load_pretrained_part(
            AutoModelForCausalLM,
            text_model_name_or_path,
            "text_model_name_or_path (the language model)",
            **load_kwargs,
        )

        config_fields = config.to_dict() if config is not None else {}
        for derived in (
            "vision_config",
            "text_config",
            "model_type",
            "transformers_version",
            "architectures",
        ):
            config_fields.pop(derived, None)
        config_fields.update(config_kwargs)
        timm_model = getattr(vision_tower, "timm_model", None)
        if config is None and timm_model is not None and "num_vision_prefix_tokens" not in config_kwargs:
            # the built timm model knows its class/register tokens (SigLIP-GAP towers have none)
            config_fields["num_vision_prefix_tokens"] = timm_model.num_prefix_tokens
        image_token = config_fields.get("image_token", EmoVerseConfig.image_token)
        if image_token_id is None:
            tokenizer = AutoTokenizer.from_pretrained(
                text_model_name_or_path, trust_remote_code=trust_remote_code
            )
            known_id = tokenizer.convert_tokens_to_ids(image_token)
            image_token_id = (
                known_id if known_id != tokenizer.unk_token_id and known_id is not None else len(tokenizer)
            )
        _extend_vocabulary(language_model, image_token_id + 1)
        # Building the composite config clears the sub-configs' attention choice; restore the LLM's.
        attn_implementation = language_model.config._attn_implementation
        config_fields.update(
            vision_config=vision_tower.config,
            text_config=language_model.config,
            image_token_id=image_token_id,
            vision_model_name_or_path=vision_model_name_or_path,
            text_model_name_or_path=text_model_name_or_path,
            checkpoint_contents="trained",
        )
        model = cls(EmoVerseConfig(**config_fields), vision_tower=vision_tower, language_model=language_model)
        model.set_attn_implementation(attn_implementation)
        model.eval()  # like from_pretrained; the Trainer switches to train mode
        if model.config.image_seq_length is None:
            raise ValueError(
                "could not derive image_seq_length (visual tokens per image) from the vision config "
                f"{type(vision_tower.config).__name__}; pass image_seq_length=... explicitly"
            )
        return model

    def freeze_base_parts(self) -> None:
        """Train only W_v and the LoRA weights (transformers 5 re-enables gradients on loaded parameters)."""
        for name, parameter in self.named_parameters():
            parameter.requires_grad_(is_trained_parameter(name))

    def get_input_embeddings(self) -> nn.Module:
        return self.language_model.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.language_model.set_input_embeddings(value)

    def get_output_embeddings(self) -> nn.Module:
        return self.language_model.get_output_embeddings()

    def get_image_features(self, pixel_values: torch.FloatTensor) -> torch.FloatTensor:
        """Visual tokens W_v T_v.

        Args:
            pixel_values (`torch.FloatTensor` of shape `(num_images, channels, height, width)`): every image
                or video frame of the batch, in placeholder order.

        Returns:
            `torch.FloatTensor` of shape `(num_images, image_seq_length, text_hidden_size)`.
        """
        vision_dtype = next(self.vision_tower.parameters()).dtype
        pixel_values = pixel_values.to(vision_dtype)
        if self.config.vision_feature_layer == -1:
            features = self.vision_tower(pixel_values, return_dict=True).last_hidden_state
        else:
            outputs = self.vision_tower(pixel_values, output_hidden_states=True, return_dict=True)
            features = outputs.hidden_states[self.config.vision_feature_layer]
        if features.dim() == 4:  # timm intermediate layers: (N, C, H, W) patch maps without prefix tokens
            features = features.flatten(2).transpose(1, 2)
        elif self.config.vision_feature_select_strategy == "default":
            features = features[:, self.config.num_vision_prefix_tokens or 0 :]
        if features.shape[1] != self.config.image_seq_length:
            raise ValueError(
                f"the vision encoder gave {features.shape[1]} tokens per image but config.image_seq_length "
                f"is {self.config.image_seq_length}; set image_seq_length / num_vision_prefix_tokens to "
                "match the encoder"
            )
        return self.multi_modal_projector(features.to(self.multi_modal_projector.weight.dtype))

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        pixel_values: torch.FloatTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        **kwargs,
    ) -> EmoVerseCausalLMOutputWithPast:
        r"""
        Args:
            input_ids (`torch.LongTensor` of shape `(batch_size, sequence_length)`): text with each `<image>`
                expanded to `image_seq_length` image-token ids.
            pixel_values (`torch.FloatTensor` of shape `(num_images, channels, height, width)`): the images /
                frames of the whole batch in placeholder order.
            attention_mask (`torch.Tensor` of shape `(batch_size, sequence_length)`).
            labels (`torch.LongTensor` of shape `(batch_size, sequence_length)`): target ids, -100 where no
                loss is taken (prompt, visual tokens, padding); shifted inside the LLM.
            kwargs: passed to the LLM, among them its key/value cache under whichever name the installed
                transformers uses (`past_key_values`, `cache` since 5.24).
        """
        kwargs.pop("return_dict", None)  # outputs are always a ModelOutput
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of input_ids or inputs_embeds")
        if input_ids is not None:
            check_inputs(self.config, input_ids, pixel_values)
        image_features = None
        if inputs_embeds is None:
            image_mask = input_ids == self.config.image_token_id
            inputs_embeds = self.get_input_embeddings()(input_ids.masked_fill(image_mask, 0))
            if pixel_values is not None:
                image_features = self.get_image_features(pixel_values)
                inputs_embeds = inputs_embeds.masked_scatter(
                    image_mask.unsqueeze(-1), image_features.to(inputs_embeds.dtype)
                )
        outputs = self.language_model(
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            position_ids=position_ids,
            labels=labels,
            use_cache=use_cache,
            logits_to_keep=logits_to_keep,
            return_dict=True,
            **kwargs,
        )
        return EmoVerseCausalLMOutputWithPast(**outputs, image_hidden_states=image_features)

    def save_pretrained(
        self,
        save_directory: str | os.PathLike,
        save_full_model: bool = False,
        state_dict: dict[str, torch.Tensor] | None = None,
        **kwargs,
    ) -> None:
        """Save the trained parts (default) or, with `save_full_model=True`, every weight with LoRA merged in.

        The trained parts are PEFT's adapter files (`adapter_config.json`, `adapter_model.safetensors`: the
        LoRA weights and the projector), readable by `peft` tools, plus `model.safetensors` holding the same
        tensors under the model's own names, which is what the Trainer reads when it resumes from a
        checkpoint. The config always names the base encoder and LLM; a trained-parts checkpoint needs both to
        be loadable by name/path when it is reloaded. `state_dict` (default: the model's own) is what the
        Trainer passes, e.g. the weights gathered across ranks under ZeRO-3.
        """
        state_dict = self.state_dict() if state_dict is None else state_dict
        has_lora = self.config.checkpoint_contents == "trained"
        if save_full_model or not has_lora:
            state_dict = merged_state_dict(self, state_dict) if has_lora else state_dict
            contents = "merged"
        else:
            missing = [
                field
                for field in ("vision_model_name_or_path", "text_model_name_or_path")
                if not getattr(self.config, field)
            ]
            if missing:
                raise ValueError(
                    f"saving only the trained parts needs the base models' names/paths, but {missing} is "
                    "unset (the part was built from a config); save with save_full_model=True or build with "
                    "from_parts(<name/path>)"
                )
            full_state_dict = state_dict
            state_dict = {name: tensor for name, tensor in state_dict.items() if is_trained_parameter(name)}
            contents = "trained"
        original_contents = self.config.checkpoint_contents
        self.config.checkpoint_contents = contents
        self.config.auto_map = {
            "AutoConfig": "configuration_emoverse.EmoVerseConfig",
            "AutoModel": "modeling_emoverse.EmoVerseForConditionalGeneration",
            "AutoModelForImageTextToText": "modeling_emoverse.EmoVerseForConditionalGeneration",
        }
        # `pipeline(model=folder, trust_remote_code=True)` finds the pipeline here; the import above makes
        # save_pretrained copy its module.
        self.config.custom_pipelines = custom_pipelines()
        try:
            super().save_pretrained(save_directory, state_dict=state_dict, **kwargs)
        finally:
            self.config.checkpoint_contents = original_contents
        if contents == "trained" and kwargs.get("is_main_process", True):
            save_adapter_files(self, save_directory, full_state_dict, self.config.text_model_name_or_path)

    @classmethod
    def from_pretrained(
        cls, pretrained_model_name_or_path: str | os.PathLike, *model_args, **kwargs
    ) -> EmoVerseForConditionalGeneration:
        """Load a folder written by `save_pretrained` (either kind); the base parts stay frozen."""
        hub_kwargs = {
            k: kwargs[k] for k in ("cache_dir", "revision", "token", "local_files_only") if k in kwargs
        }
        config = kwargs.pop("config", None)
        if config is None:
            config = load_pretrained_part(
                EmoVerseConfig,
                pretrained_model_name_or_path,
                "pretrained_model_name_or_path (the EmoVerse checkpoint)",
                **hub_kwargs,
            )
        if config.checkpoint_contents == "merged":
            model = super().from_pretrained(
                pretrained_model_name_or_path, *model_args, config=config, **kwargs
            )
        else:
            model = cls.from_parts(
                config.vision_model_name_or_path,
                config.text_model_name_or_path,
                image_token_id=config.image_token_id,
                config=config,
                dtype=kwargs.get("dtype"),
                trust_remote_code=kwargs.get("trust_remote_code", False),
            )
            load_adapter_files(model, pretrained_model_name_or_path, **hub_kwargs)
            model.eval()
        model.freeze_base_parts()
        return model


def _extend_vocabulary(language_model: PreTrainedModel, vocab_size: int) -> None:
    """Grow the LLM's embeddings to hold the image token, filling new rows with the mean embedding.

    Deterministic on purpose: a trained-parts checkpoint rebuilds these rows from the base LLM on every load.
    """
    old_size = language_model.get_input_embeddings().weight.shape[0]
    if vocab_size <= old_size:
        return
    language_model.resize_token_embeddings(vocab_size, mean_resizing=False)
    with torch.no_grad():
        for embeddings in {language_model.get_input_embeddings(), language_model.get_output_embeddings()}:
            if embeddings is not None:
                embeddings.weight[old_size:] = embeddings.weight[:old_size].mean(dim=0)


EmoVerseConfig.register_for_auto_class()
EmoVerseForConditionalGeneration.register_for_auto_class("AutoModelForImageTextToText")

__all__ = [
    "EmoVerseCausalLMOutputWithPast",
    "EmoVerseForConditionalGeneration",
    "EmoVersePreTrainedModel",
]
