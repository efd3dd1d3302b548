"""EmoVerse model: config, placeholder expansion, visual tokens, loss masking, LoRA, training, generation."""

from __future__ import annotations

import pytest
import torch
from test_emoverse_common import randomize_trained_parts, solid_image_path

from configuration_emoverse import EmoVerseConfig
from processing_emoverse import IGNORE_INDEX

pytest_plugins = ["test_emoverse_common"]  # the shared EmoVerse fixtures

RECORDS = [
    {"query": "The person says: 'I love it' Please determine the sentiment.", "response": "Positive."},
    {
        "query": "Detail the facial expressions used in the image.",
        "response": "Eyes narrowing; Slightly puzzled",
    },
]


@pytest.fixture
def records(tmp_path):
    return [
        {**RECORDS[0], "images": [solid_image_path(tmp_path, "red.png", (220, 20, 20))]},
        {**RECORDS[1], "images": [solid_image_path(tmp_path, "blue.png", (20, 20, 220), size=(17, 53))]},
    ]


def test_config_defaults_follow_the_paper_and_derive_visual_tokens():
    config = EmoVerseConfig()
    assert (config.lora_r, config.lora_alpha, config.image_token) == (8, 32, "<image>")
    assert config.vision_config.model_type == "timm_wrapper"
    assert (config.image_seq_length, config.num_vision_prefix_tokens) == (
        4,
        1,
    )  # 32/16 squared patches, 1 CLS
    assert EmoVerseConfig(vision_feature_select_strategy="full").image_seq_length == 5
    with pytest.raises(ValueError, match="vision_feature_select_strategy"):
        EmoVerseConfig(vision_feature_select_strategy="cls")
    with pytest.raises(ValueError, match="lora_r"):
        EmoVerseConfig(lora_r=0)


def test_processor_expands_each_placeholder_and_model_output_shapes(emoverse_model, emoverse_processor):
    from PIL import Image

    batch = emoverse_processor(
        text=["<image> The person says: I love it", "<image><image> Hi"],
        images=[Image.new("RGB", (32, 32)), Image.new("RGB", (64, 48)), Image.new("RGB", (10, 90))],
    )
    image_token_id = emoverse_processor.image_token_id
    assert image_token_id == emoverse_model.config.image_token_id
    assert (batch["input_ids"] == image_token_id).sum(dim=1).tolist() == [4, 8]
    assert batch["pixel_values"].shape == (3, 3, 32, 32)
    assert batch["input_ids"].shape == batch["attention_mask"].shape
    output = emoverse_model(**batch)
    vocab = emoverse_model.get_output_embeddings().weight.shape[0]
    assert output.logits.shape == (*batch["input_ids"].shape, vocab)
    assert output.image_hidden_states.shape == (3, 4, emoverse_model.config.text_config.hidden_size)


def test_visual_tokens_replace_the_placeholders_in_order(emoverse_model, emoverse_processor):
    from PIL import Image

    images = [Image.new("RGB", (32, 32), (250, 0, 0)), Image.new("RGB", (32, 32), (0, 0, 250))]
    batch = emoverse_processor(text=["a <image> b <image> c"], images=images)
    captured = {}
    hook = emoverse_model.language_model.register_forward_pre_hook(
        lambda module, args, kwargs: captured.update(embeds=kwargs["inputs_embeds"]), with_kwargs=True
    )
    with torch.no_grad():
        emoverse_model(**batch)
        features = emoverse_model.get_image_features(batch["pixel_values"])
    hook.remove()
    embeds = captured["embeds"][0]
    mask = batch["input_ids"][0] == emoverse_processor.image_token_id
    torch.testing.assert_close(embeds[mask], features.reshape(-1, features.shape[-1]))
    text_ids = batch["input_ids"][0][~mask]
    torch.testing.assert_close(embeds[~mask], emoverse_model.get_input_embeddings()(text_ids))


def test_labels_cover_only_the_response_and_loss_ignores_the_prompt(
    emoverse_model, emoverse_processor, records
):
    batch = emoverse_processor.process_emt_records(records, training=True)
    tokenizer = emoverse_processor.tokenizer
    for row, record in enumerate(records):
        kept = batch["labels"][row][batch["labels"][row] != IGNORE_INDEX].tolist()
        assert tokenizer.decode(kept).startswith(record["response"])
        first = int((batch["labels"][row] != IGNORE_INDEX).nonzero()[0])
        prompt = tokenizer.decode(batch["input_ids"][row][:first])
        assert (
            "You are an sentiment and emotion analysis expert." in prompt and record["response"] not in prompt
        )
        assert not (batch["labels"][row][:first] != IGNORE_INDEX).any()
    output = emoverse_model(**batch)
    logits = output.logits[:, :-1].reshape(-1, output.logits.shape[-1])
    targets = batch["labels"][:, 1:].reshape(-1)
    expected = torch.nn.functional.cross_entropy(logits, targets, ignore_index=IGNORE_INDEX)
    torch.testing.assert_close(output.loss, expected)


def test_only_lora_and_projector_are_trainable(emoverse_model):
    trainable = {name for name, parameter in emoverse_model.named_parameters() if parameter.requires_grad}
    assert trainable
    assert all("lora_" in name or name.startswith("multi_modal_projector.") for name in trainable)
    # PEFT trains a copy of the projector (a module to save) and keeps the initial one frozen beside it
    trained_projector = {f"multi_modal_projector.modules_to_save.default.{p}" for p in ("weight", "bias")}
    assert trained_projector <= trainable
    assert not any(".original_module." in name for name in trainable)
    assert not any(p.requires_grad for p in emoverse_model.vision_tower.parameters())
    lora_layers = [name for name in trainable if "lora_A" in name]
    # all-linear on 2 Llama blocks: q, k, v, o, gate, up, down per block
    assert len(lora_layers) == 2 * 7
    rank = {p.shape[0] for n, p in emoverse_model.named_parameters() if "lora_A" in n}
    assert rank == {8}


def test_one_training_step_lowers_the_loss_on_a_fixed_batch(emoverse_model, emoverse_processor, records):
    batch = emoverse_processor.process_emt_records(records, training=True)
    emoverse_model.train()
    optimizer = torch.optim.AdamW([p for p in emoverse_model.parameters() if p.requires_grad], lr=1e-2)
    vision_before = {k: v.clone() for k, v in emoverse_model.vision_tower.state_dict().items()}
    first = emoverse_model(**batch).loss
    first.backward()
    optimizer.step()
    optimizer.zero_grad()
    emoverse_model.eval()
    with torch.no_grad():
        second = emoverse_model(**batch).loss
    assert second < first.detach()
    for key, value in emoverse_model.vision_tower.state_dict().items():
        assert torch.equal(value, vision_before[key]), key


def test_generate_with_images_matches_before_and_after_saving(
    emoverse_model, emoverse_processor, records, tmp_path
):
    from modeling_emoverse import EmoVerseForConditionalGeneration

    randomize_trained_parts(emoverse_model)
    inputs = emoverse_processor.process_emt_records(records, training=False)
    assert "labels" not in inputs and inputs["attention_mask"][:, -1].all()  # left padding for generation
    generated = emoverse_model.generate(**inputs, max_new_tokens=6, do_sample=False)
    assert generated.shape[1] > inputs["input_ids"].shape[1]
    for merged in (False, True):
        folder = tmp_path / f"merged-{merged}"
        emoverse_model.save_pretrained(folder, save_full_model=merged)
        reloaded = EmoVerseForConditionalGeneration.from_pretrained(folder)
        assert reloaded.config.checkpoint_contents == ("merged" if merged else "trained")
        assert torch.equal(reloaded.generate(**inputs, max_new_tokens=6, do_sample=False), generated)
        trainable = {n for n, p in reloaded.named_parameters() if p.requires_grad}
        assert not any(p.requires_grad for p in reloaded.vision_tower.parameters())
        assert all("lora_" in n or n.startswith("multi_modal_projector.") for n in trainable)


def test_trained_parts_checkpoint_holds_only_projector_and_lora(emoverse_model, tmp_path):
    from safetensors.torch import load_file

    emoverse_model.save_pretrained(tmp_path)
    names = set(load_file(tmp_path / "model.safetensors"))
    assert names and all("lora_" in n or n.startswith("multi_modal_projector.") for n in names)
    config = EmoVerseConfig.from_pretrained(tmp_path)
    assert config.vision_model_name_or_path and config.text_model_name_or_path
    assert config.auto_map["AutoModelForImageTextToText"].endswith("EmoVerseForConditionalGeneration")


def test_save_writes_the_state_dict_it_is_given(emoverse_model, tmp_path):
    # The Trainer passes `state_dict=` (the weights gathered across ranks under ZeRO-3): save exactly those.
    from safetensors.torch import load_file

    given = {name: tensor + 1.0 for name, tensor in emoverse_model.state_dict().items()}
    emoverse_model.save_pretrained(tmp_path, state_dict=given)
    saved = load_file(tmp_path / "model.safetensors")
    trained = {name for name, parameter in emoverse_model.named_parameters() if parameter.requires_grad}
    assert set(saved) == trained
    for name, tensor in saved.items():
        torch.testing.assert_close(tensor, given[name], rtol=0, atol=0)
    # PEFT's names: from the root of a PeftModel, without the adapter name
    adapter = load_file(tmp_path / "adapter_model.safetensors")
    assert len(adapter) == len(trained)
    for name in trained:
        peft_name = "base_model.model." + name.replace(".default.", ".").replace(".modules_to_save.", ".")
        torch.testing.assert_close(adapter[peft_name], given[name], rtol=0, atol=0)


def test_model_rejects_placeholder_and_image_count_mismatch(emoverse_model, emoverse_processor):
    from PIL import Image

    batch = emoverse_processor(text=["<image> hello"], images=[Image.new("RGB", (32, 32))])
    with pytest.raises(
        ValueError, match=r"2 image\(s\) x 4 visual tokens = 8 placeholders expected.*4 image tokens"
    ):
        emoverse_model(input_ids=batch["input_ids"], pixel_values=batch["pixel_values"].repeat(2, 1, 1, 1))


@pytest.mark.parametrize(
    ("crop", "received"),
    [
        ((slice(None), slice(None), slice(None), slice(0, 5)), (1, 3, 32, 5)),  # width 5
        ((slice(None), slice(0, 1)), (1, 1, 32, 32)),  # one channel
    ],
)
def test_model_refuses_pixel_values_of_the_wrong_size_before_the_vision_tower(
    emoverse_model, emoverse_processor, crop, received
):
    from PIL import Image

    batch = emoverse_processor(text=["<image> hello"], images=[Image.new("RGB", (32, 32))])
    calls = []
    hook = emoverse_model.vision_tower.register_forward_pre_hook(lambda *args: calls.append(args))
    with pytest.raises(ValueError) as error:
        emoverse_model(**{**batch, "pixel_values": batch["pixel_values"][crop]})
    hook.remove()
    assert str(error.value) == (
        "pixel_values must have shape (num_images, 3, 32, 32) (channels, height, width of the vision "
        f"encoder's input), got {received}; build inputs with EmoVerseProcessor"
    )
    assert calls == []  # refused before the vision tower ran


NEITHER = "neither an existing folder nor a Hub model id ('name' or 'namespace/name')"


def test_a_missing_part_or_checkpoint_names_which_part_and_the_path(emoverse_parts, tmp_path):
    from modeling_emoverse import EmoVerseForConditionalGeneration

    vision_dir, text_dir = emoverse_parts
    missing = str(tmp_path / "no" / "such")
    cases = [
        (
            lambda: EmoVerseForConditionalGeneration.from_parts(missing, text_dir),
            "vision_model (the vision tower)",
        ),
        (
            lambda: EmoVerseForConditionalGeneration.from_parts(vision_dir, missing),
            "text_model_name_or_path (the language model)",
        ),
        (
            lambda: EmoVerseForConditionalGeneration.from_pretrained(missing),
            "pretrained_model_name_or_path (the EmoVerse checkpoint)",
        ),
    ]
    for load, part in cases:
        with pytest.raises(ValueError) as error:
            load()
        assert str(error.value) == f"{part} is {missing!r}: {NEITHER}"


def test_a_hub_id_that_cannot_be_loaded_offline_names_the_part(emoverse_parts, tmp_path, monkeypatch):
    from modeling_emoverse import EmoVerseForConditionalGeneration

    vision_dir, _ = emoverse_parts
    monkeypatch.chdir(tmp_path)  # a valid Hub id and no folder of that name here; the tests run offline
    with pytest.raises(OSError) as error:
        EmoVerseForConditionalGeneration.from_parts(vision_dir, "no-such-org/no-such-llm")
    assert str(error.value).startswith(
        "text_model_name_or_path (the language model) is 'no-such-org/no-such-llm': not an existing folder, "
        "and it could not be loaded as a Hub model id offline (HF_HUB_OFFLINE is set) ("
    )
    assert error.value.__suppress_context__


def test_config_built_vision_tower_cannot_be_saved_as_trained_parts(emoverse_parts, tmp_path):
    from modeling_emoverse import EmoVerseForConditionalGeneration

    _, text_dir = emoverse_parts
    model = EmoVerseForConditionalGeneration.from_parts(EmoVerseConfig().vision_config, text_dir)
    with pytest.raises(ValueError, match="save_full_model=True"):
        model.save_pretrained(tmp_path)


@pytest.mark.parametrize(
    ("model_args", "selection", "tokens_per_image"),
    [
        ({}, {"vision_feature_select_strategy": "full"}, 5),  # 4 patches + CLS
        ({}, {"vision_feature_layer": 0}, 4),  # timm intermediate layer: patch map only
        ({"reg_tokens": 2}, {}, 4),  # CLS + 2 register tokens dropped
        ({"reg_tokens": 2}, {"vision_feature_select_strategy": "full"}, 7),
    ],
)
def test_vision_feature_selection(emoverse_parts, tmp_path, model_args, selection, tokens_per_image):
    import timm
    from PIL import Image
    from transformers import AutoModel, TimmWrapperConfig

    from modeling_emoverse import EmoVerseForConditionalGeneration
    from processing_emoverse import EmoVerseProcessor

    _, text_dir = emoverse_parts
    args = {"img_size": 32, "depth": 2, **model_args}
    timm_model = timm.create_model("vit_tiny_patch16_224", pretrained=False, **args)
    vision_config = TimmWrapperConfig(
        architecture="vit_tiny_patch16_224",
        model_args=args,
        pretrained_cfg={**timm_model.pretrained_cfg, "input_size": (3, 32, 32)},
    )
    AutoModel.from_config(vision_config).save_pretrained(tmp_path / "vit")
    model = EmoVerseForConditionalGeneration.from_parts(tmp_path / "vit", text_dir, **selection)
    assert model.config.image_seq_length == tokens_per_image
    processor = EmoVerseProcessor.from_parts(
        tmp_path / "vit", text_dir, image_seq_length=tokens_per_image, max_length=256
    )
    batch = processor(text=["<image> hi"], images=[Image.new("RGB", (40, 40), (5, 6, 7))])
    output = model(**batch)
    assert output.image_hidden_states.shape[:2] == (1, tokens_per_image)


def test_peft_reads_the_trained_parts_checkpoint(emoverse_model, emoverse_processor, records, tmp_path):
    # The adapter files are PEFT's own format: peft's loaders rebuild the same model from a plain EmoVerse.
    from peft import LoraConfig, PeftConfig, PeftModel
    from safetensors.torch import load_file

    from modeling_emoverse import EmoVerseForConditionalGeneration

    base_folder, trained_folder = tmp_path / "base", tmp_path / "trained"
    emoverse_model.save_pretrained(base_folder, save_full_model=True)  # LoRA B = 0: the base weights
    randomize_trained_parts(emoverse_model)
    emoverse_model.save_pretrained(trained_folder)
    peft_config = PeftConfig.from_pretrained(trained_folder)
    assert isinstance(peft_config, LoraConfig)
    assert (peft_config.r, peft_config.lora_alpha, peft_config.lora_dropout) == (8, 32, 0.05)
    assert peft_config.modules_to_save == ["multi_modal_projector"]
    assert peft_config.base_model_name_or_path == emoverse_model.config.text_model_name_or_path

    base = EmoVerseForConditionalGeneration.from_pretrained(base_folder)
    assert not any("lora_" in name for name, _ in base.named_parameters())
    peft_model = PeftModel.from_pretrained(base, trained_folder).eval()
    batch = emoverse_processor.process_emt_records(records, training=True)
    with torch.no_grad():
        expected = emoverse_model.eval()(**batch).logits
        torch.testing.assert_close(peft_model(**batch).logits, expected)
        reloaded = EmoVerseForConditionalGeneration.from_pretrained(trained_folder)
        torch.testing.assert_close(reloaded(**batch).logits, expected, rtol=0, atol=0)
        merged = peft_model.merge_and_unload()
        torch.testing.assert_close(merged(**batch).logits, expected, rtol=1e-4, atol=1e-4)
    # save_full_model=True writes exactly the weights of PEFT's merge_and_unload
    emoverse_model.save_pretrained(tmp_path / "merged", save_full_model=True)
    saved = load_file(tmp_path / "merged" / "model.safetensors")
    reference = merged.state_dict()
    assert set(saved) <= set(reference) and not any("lora_" in name for name in saved)
    assert set(reference) - set(saved) <= {"language_model.lm_head.weight"}  # tied to the input embeddings
    for name, tensor in saved.items():
        torch.testing.assert_close(tensor, reference[name], rtol=1e-6, atol=1e-6, msg=name)


def test_trained_parts_checkpoint_with_damaged_adapter_files_names_the_file(emoverse_model, tmp_path):
    import json

    from modeling_emoverse import EmoVerseForConditionalGeneration

    emoverse_model.save_pretrained(tmp_path)
    adapter_config = tmp_path / "adapter_config.json"
    settings = json.loads(adapter_config.read_text())
    adapter_config.write_text(json.dumps({**settings, "r": 4}))
    with pytest.raises(
        ValueError, match=r"adapter_config\.json has LoRA r=4, alpha=32 but the model config says lora_r=8"
    ):
        EmoVerseForConditionalGeneration.from_pretrained(tmp_path)
    adapter_config.write_text(json.dumps(settings))
    weights = tmp_path / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(ValueError, match=f"{weights} is not a readable safetensors file"):
        EmoVerseForConditionalGeneration.from_pretrained(tmp_path)
    (tmp_path / "adapter_config.json").unlink()
    with pytest.raises(OSError, match=r"adapter_config\.json"):
        EmoVerseForConditionalGeneration.from_pretrained(tmp_path)
