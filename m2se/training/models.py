"""Build the model and processor a recipe names: MSE-Adapter on a frozen LLM, or EmoVerse (ViT + projector +
LLM with LoRA).

Backbone names: ``smollm2`` (the offline SmolLM2-135M-Instruct, ``m2se.backbones.smollm2_path``),
``tiny-llama`` and ``tiny-vit`` (seeded two-layer models built from a config and cached next to SmolLM2, for
tests and CI), or
any local folder / Hub id.
"""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    LlamaConfig,
    PreTrainedModel,
    PreTrainedTokenizerFast,
    ViTConfig,
    ViTImageProcessor,
    ViTModel,
)

from feature_extraction_mse_adapter import PROCESSOR_PARTS
from m2se.backbones import default_cache_dir, smollm2_path
from processing_mse_adapter import MSEAdapterProcessor

if TYPE_CHECKING:
    from m2se.training.data import TaskData
    from m2se.training.recipes import Recipe

TINY_LLAMA = "tiny-llama"
TINY_VIT = "tiny-vit"
# Recipe keys of an mse_adapter ``model.config`` that go to the processor: its own arguments (the task's
# text side, the pseudo-token count, the feature widths), less those the builder fills from the data (the
# task, the extractors of a feature folder).
PROCESSOR_FIELDS = tuple(
    name
    for name in inspect.signature(MSEAdapterProcessor.__init__).parameters
    if name not in ("self", "tokenizer", "task", "label_names", "kwargs", *PROCESSOR_PARTS)
)
# Configuration fields the builders fill from the backbones, the data and the processor (not recipe keys).
BUILDER_FIELDS = {
    "mse_adapter": (
        "text_config",
        "base_model_name_or_path",
        "pseudo_token_id",
    ),
    "emoverse": (
        "vision_config",
        "text_config",
        "image_token_id",
        "vision_model_name_or_path",
        "text_model_name_or_path",
        "checkpoint_contents",
    ),
}
LORA_PREFIX = "lora_"


def _config_class(kind: str) -> type:
    if kind == "mse_adapter":
        from configuration_mse_adapter import MSEAdapterConfig

        return MSEAdapterConfig
    from configuration_emoverse import EmoVerseConfig

    return EmoVerseConfig


def _own_config_fields(kind: str) -> list[str]:
    """The fields the model's configuration class declares itself (not ``PretrainedConfig``'s)."""
    config_class = _config_class(kind)
    own = vars(config_class).get("__annotations__", {})
    return [field.name for field in dataclasses.fields(config_class) if field.name in own]


def model_config_keys(kind: str) -> list[str]:
    """The keys ``model.config`` may hold: the configuration class's fields less those the builder fills and,
    for EmoVerse, the LoRA fields (``model.lora``); for MSE-Adapter also the processor's prompt fields."""
    own = [
        name
        for name in _own_config_fields(kind)
        if name not in BUILDER_FIELDS[kind] and not name.startswith(LORA_PREFIX)
    ]
    return sorted({*own, *(PROCESSOR_FIELDS if kind == "mse_adapter" else ())})


def lora_keys() -> list[str]:
    """The keys ``model.lora`` may hold: EmoVerseConfig's ``lora_*`` fields without the prefix."""
    return [
        name[len(LORA_PREFIX) :] for name in _own_config_fields("emoverse") if name.startswith(LORA_PREFIX)
    ]


def check_model_recipe(recipe: Recipe) -> None:
    """``model.config`` and ``model.lora`` keys against the configuration class; raises ``ValueError`` naming
    the key path and the valid keys before any model is built."""
    from m2se.training.recipes import check_known_keys

    kind = recipe.model.kind
    config_name = _config_class(kind).__name__
    check_known_keys(recipe.model.config, model_config_keys(kind), "model.config", config_name)
    if kind == "mse_adapter" and recipe.model.lora:
        raise ValueError(
            f"model.lora: an mse_adapter recipe trains the adapter only (no LoRA); got {recipe.model.lora}"
        )
    check_known_keys(recipe.model.lora, lora_keys(), "model.lora", f"LoRA ({config_name}.lora_*)")
    for key in ("backbone", "vision_backbone"):
        check_backbone_name(getattr(recipe.model, key), f"model.{key}")
    # The values too: the configuration class checks them when built, which is cheap next to the backbone.
    config_fields = _own_config_fields(kind)
    fields = {key: value for key, value in recipe.model.config.items() if key in config_fields}
    fields.update({f"{LORA_PREFIX}{key}": value for key, value in recipe.model.lora.items()})
    try:
        _config_class(kind)(**fields)
    except (TypeError, ValueError) as error:
        section = "model.lora" if str(error).startswith(LORA_PREFIX) else "model.config"
        raise type(error)(f"{section}: {error}") from error


def check_backbone_name(name: str | None, where: str) -> None:
    """A backbone is a built-in name, an existing folder or a well-formed Hub model id; transformers would
    report anything else as a malformed repo id without naming the recipe key."""
    if name is None or name in ("smollm2", TINY_LLAMA, TINY_VIT) or Path(name).expanduser().is_dir():
        return
    try:
        validate_repo_id(name)
    except HFValidationError:
        raise ValueError(
            f"{where}: {name!r} is neither an existing folder nor a Hub model id ('name' or "
            f"'namespace/name'); expected one of those or a built-in name (smollm2, {TINY_LLAMA}, {TINY_VIT})"
        ) from None


def backbone_path(name: str) -> str:
    """Resolve a recipe backbone name to something ``from_pretrained`` accepts."""
    if name == "smollm2":
        return str(smollm2_path())
    if name == TINY_LLAMA:
        return str(_tiny_llama_path())
    if name == TINY_VIT:
        return str(_tiny_vit_path())
    return name


def _tiny_tokenizer() -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer (1,024 tokens, ChatML special tokens) trained on the project's prompts.

    Any text stays encodable (byte level); a small vocabulary keeps the output layer of a tiny model cheap.
    """
    from m2se.emt import templates

    corpus = [
        templates.DEFAULT_SYSTEM_PROMPT,
        templates.FER_QUERY,
        templates.ERI_QUERY,
        templates.ECPE_HEADER,
        templates.ECPE_FOOTER,
        templates.msa_query("The train arrives at noon."),
        templates.er_query("The meeting starts on Monday."),
        "Positive. Negative. Joy. Neutral. Anger. Sadness.",
        "Surprise. Disgust. Fear. Happy. Eyes narrowing; Slightly puzzled; Brow lowerer; Lip corner puller",
        "Please predict the sentiment intensity of the above multimodal content in the range [-3.0, 3.0]. "
        "response: The sentiment is +1.2 -0.4 +0.0 0 1 2 3 4 5 6 7 8 9 <Multimodal> </Multimodal>",
        "Please recognize the emotion of the above multimodal content from the target set "
        "<neutral:0, surprise:1, fear:2, sadness:3, joy:4, disgust:5, anger:6>. response: The emotion is",
    ]
    specials = ["<|im_start|>", "<|im_end|>", "<|endoftext|>"]
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=1024, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tokenizer.train_from_iterator(corpus * 4, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=specials[0],
        eos_token=specials[1],
        pad_token=specials[2],
        model_max_length=1024,
    )


def _tiny_llama_path() -> Path:
    """A 2-layer Llama (width 64) with a 1,024-token tokenizer, seeded, saved once in the cache."""
    target = default_cache_dir() / "tiny-llama"
    if not (target / "config.json").is_file():
        tokenizer = _tiny_tokenizer()
        config = LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=1024,
            tie_word_embeddings=True,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
        # A private RNG: building the cache on a first run must not change what the run initialises next.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            AutoModelForCausalLM.from_config(config).save_pretrained(target)
        tokenizer.save_pretrained(target)
    return target


def _tiny_vit_path() -> Path:
    """A 2-layer ViT on 32 x 32 images (16 patches), seeded, with its image processor, saved once in the
    cache."""
    target = default_cache_dir() / "tiny-vit-32"
    if not (target / "config.json").is_file():
        config = ViTConfig(
            image_size=32,
            patch_size=8,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
        )
        with torch.random.fork_rng(devices=[]):  # as for the tiny LLM: leave the caller's RNG alone
            torch.manual_seed(0)
            ViTModel(config, add_pooling_layer=False).save_pretrained(target)
        ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(target)
    return target


def build_mse_adapter(recipe: Recipe, data: TaskData) -> tuple[PreTrainedModel, Any]:
    """Frozen backbone + fresh MSE-Adapter, and its processor, for the recipe's task and the data's feature
    sizes: the processor takes its own arguments from ``model.config``, the model config the rest. A feature
    folder's extractors (``data.source: arrow``) become the processor's, so the saved processor reads raw
    media as the folder was made."""
    from m2se.features.extract import load_extractors
    from modeling_mse_adapter import MSEAdapterForCausalLM

    path = backbone_path(recipe.model.backbone)
    tokenizer = AutoTokenizer.from_pretrained(path)
    language_model = AutoModelForCausalLM.from_pretrained(path)
    # The widths come from the schema (Array2D (None, D)): a first row without audio or video frames has none.
    features = data.eval_rows.features
    config = dict(recipe.model.config)
    config.setdefault("audio_feature_dim", features["audio"].shape[1])
    config.setdefault("video_feature_dim", features["video"].shape[1])
    processor_fields = {key: config.pop(key) for key in PROCESSOR_FIELDS if key in config}
    if recipe.tasks[0] == "msa":
        task = {"task": "regression"}
    else:
        task = {"task": "classification", "label_names": data.label_names}
    extractors = load_extractors(recipe.data.paths["dataset"]) if recipe.data.source == "arrow" else {}
    processor = MSEAdapterProcessor(tokenizer, **extractors, **task, **processor_fields)
    model = MSEAdapterForCausalLM.from_language_model(language_model, processor, **config)
    return model, processor


def build_emoverse(recipe: Recipe) -> tuple[PreTrainedModel, Any]:
    """EmoVerse from the recipe's vision encoder and LLM, with the recipe's LoRA settings, and its
    processor."""
    from modeling_emoverse import EmoVerseForConditionalGeneration
    from processing_emoverse import EmoVerseProcessor

    if recipe.model.vision_backbone is None:
        raise ValueError("an emoverse recipe needs model.vision_backbone (e.g. tiny-vit or a Hub id)")
    vision_path = backbone_path(recipe.model.vision_backbone)
    text_path = backbone_path(recipe.model.backbone)
    lora = {f"lora_{key}": value for key, value in recipe.model.lora.items()}
    model = EmoVerseForConditionalGeneration.from_parts(vision_path, text_path, **lora, **recipe.model.config)
    processor = EmoVerseProcessor.from_parts(
        vision_path, text_path, image_seq_length=model.config.image_seq_length
    )
    return model, processor
