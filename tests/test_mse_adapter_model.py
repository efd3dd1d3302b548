"""MSEAdapterForCausalLM on tiny Llama, Qwen2 and GPT-NeoX backbones: forward, loss masking, generation,
constrained prediction, the frozen backbone, save/load paths and bad input."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from conftest import build_tiny_tokenizer
from transformers import AutoModelForCausalLM

from modeling_mse_adapter import MSEAdapterForCausalLM
from processing_mse_adapter import IGNORE_INDEX, MSEAdapterProcessor

FAMILIES = ["llama", "qwen2", "gpt_neox"]
LABELS = ["negative", "neutral", "positive"]
AUDIO_DIM, VIDEO_DIM = 6, 4


def make_processor(task="classification", **kwargs):
    task_fields = {"label_names": LABELS} if task == "classification" else {"value_range": (-1.0, 1.0)}
    return MSEAdapterProcessor(
        build_tiny_tokenizer(),
        task=task,
        audio_feature_dim=AUDIO_DIM,
        video_feature_dim=VIDEO_DIM,
        **task_fields,
        **kwargs,
    )


def make_batch(processor, batch_size=3, labels=None, seed=0):
    generator = np.random.default_rng(seed)
    texts = ["I love this movie", "this is terrible and boring", "ok"][:batch_size]
    audio = [generator.normal(size=(length, AUDIO_DIM)) for length in (5, 3, 0)[:batch_size]]
    video = [generator.normal(size=(length, VIDEO_DIM)) for length in (2, 4, 1)[:batch_size]]
    return processor(text=texts, audio=audio, video=video, labels=labels)


@pytest.fixture(params=FAMILIES)
def family(request):
    return request.param


@pytest.fixture
def processor():
    return make_processor()


@pytest.fixture
def model(tiny_lm_factory, family, processor):
    torch.manual_seed(1)
    return MSEAdapterForCausalLM.from_language_model(tiny_lm_factory(family), processor).eval()


def trainable_names(model):
    return {name for name, parameter in model.named_parameters() if parameter.requires_grad}


def test_only_the_adapter_trains_and_the_loss_covers_label_tokens(model, processor):
    assert trainable_names(model) and all(name.startswith("adapter.") for name in trainable_names(model))
    batch = make_batch(processor, labels=["positive", "negative", 1])
    output = model(**batch)
    assert output.logits.shape[:2] == batch["input_ids"].shape
    # The loss equals cross-entropy over the supervised (label + EOS) positions, computed by hand.
    logits, targets = output.logits[:, :-1], batch["labels"][:, 1:]
    supervised = targets != IGNORE_INDEX
    expected = torch.nn.functional.cross_entropy(logits[supervised], targets[supervised])
    torch.testing.assert_close(output.loss, expected)
    output.loss.backward()
    grads = {name: p.grad for name, p in model.named_parameters() if p.grad is not None}
    assert set(grads) == trainable_names(model)
    assert all(g.abs().sum() > 0 for name, g in grads.items() if "projector" in name or "text_guide" in name)


def test_features_change_the_prediction_inputs(model, processor):
    batch = make_batch(processor)
    logits = model(**batch).logits[:, -1]
    changed = dict(batch, audio_values=batch["audio_values"] + 1.0)
    assert not torch.allclose(logits, model(**changed).logits[:, -1])


def test_left_padding_gives_the_same_logits_as_a_batch_of_one(model, processor):
    batch = make_batch(processor)
    with torch.no_grad():
        batched = model(**batch).logits[:, -1]
        for row in range(3):
            alone = make_batch(processor, batch_size=3)
            single = {key: value[row : row + 1] for key, value in alone.items()}
            keep = single["attention_mask"][0].bool()
            single["input_ids"] = single["input_ids"][:, keep]
            single["attention_mask"] = single["attention_mask"][:, keep]
            single["utterance_mask"] = single["utterance_mask"][:, keep]
            torch.testing.assert_close(
                model(**single).logits[:, -1], batched[row : row + 1], rtol=1e-4, atol=1e-4
            )


def test_padding_frames_beyond_the_true_length_are_ignored(model, processor):
    batch = make_batch(processor)
    noisy = dict(batch, audio_values=batch["audio_values"].clone())
    noisy["audio_values"][1, 3:] = 7.0  # sample 1 has 3 real audio frames
    noisy["audio_values"][2] = 7.0  # sample 2 has none
    with torch.no_grad():
        torch.testing.assert_close(model(**batch).logits, model(**noisy).logits)


def test_text_only_outputs_are_bit_identical_with_the_adapter_attached(tiny_lm_factory, family, processor):
    backbone = tiny_lm_factory(family)
    reference = copy.deepcopy(backbone)
    tokens = processor.tokenizer(["I love this movie", "ok"], return_tensors="pt", padding=True)
    with torch.no_grad():
        before = reference(**tokens).logits
        model = MSEAdapterForCausalLM.from_language_model(backbone, processor)
        assert model.language_model is backbone
        after_backbone = backbone(**tokens).logits
        single = {key: value[:1] for key, value in tokens.items()}
        through_wrapper = model(**single).logits
    assert torch.equal(before, after_backbone)
    assert torch.equal(reference(**single).logits, through_wrapper)
    for (name, original), (_, attached) in zip(
        reference.state_dict().items(), backbone.state_dict().items(), strict=True
    ):
        assert torch.equal(original, attached), name


def test_generate_runs_with_multimodal_inputs_and_matches_forward(model, processor):
    batch = make_batch(processor)
    with torch.no_grad():
        generated = model.generate(**batch, max_new_tokens=3, do_sample=False)
        first_step = model(**batch).logits[:, -1].argmax(-1)
    prompt_length = batch["input_ids"].shape[1]
    assert generated.shape == (3, prompt_length + 3)
    assert torch.equal(generated[:, prompt_length], first_step)
    assert torch.equal(generated[:, :prompt_length], batch["input_ids"])


def test_generate_without_cache_keeps_the_pseudo_tokens(model, processor):
    batch = make_batch(processor, batch_size=1)
    with torch.no_grad():
        cached = model.generate(**batch, max_new_tokens=3, do_sample=False)
        uncached = model.generate(**batch, max_new_tokens=3, do_sample=False, use_cache=False)
    assert torch.equal(cached, uncached)


def test_classification_predict_matches_greedy_decoding_over_the_label_set(model, processor):
    batch = make_batch(processor)
    predictions = model.predict(**batch, answer_constraint=processor.answer_logits_processor())
    assert len(predictions) == 3 and set(predictions) <= set(LABELS)
    # Single-token class indices: the prediction is the argmax over the index tokens after the prompt.
    index_tokens = [ids[0] for ids in processor.answer_logits_processor().answer_token_ids]
    with torch.no_grad():
        scores = model(**batch).logits[:, -1, index_tokens]
    assert predictions == [LABELS[i] for i in scores.argmax(-1).tolist()]


def test_regression_predict_is_always_a_value_in_range(tiny_lm_factory, family):
    processor = make_processor(task="regression")
    torch.manual_seed(3)
    model = MSEAdapterForCausalLM.from_language_model(tiny_lm_factory(family), processor).eval()
    predictions = model.predict(
        **make_batch(processor), answer_constraint=processor.answer_logits_processor()
    )
    assert len(predictions) == 3
    for value in predictions:
        assert isinstance(value, float) and -1.0 <= value <= 1.0 and round(value, 1) == value


def test_multi_token_labels_use_the_trie(tiny_lm_factory):
    labels = [f"class{i}" for i in range(12)]  # indices 10 and 11 need two digits
    processor = MSEAdapterProcessor(
        build_tiny_tokenizer(),
        task="classification",
        label_names=labels,
        task_prompt="The emotion is",
        audio_feature_dim=AUDIO_DIM,
        video_feature_dim=VIDEO_DIM,
    )
    model = MSEAdapterForCausalLM.from_language_model(tiny_lm_factory("llama"), processor).eval()
    assert any(len(ids) > 2 for ids in processor.answer_logits_processor().answer_token_ids)
    predictions = model.predict(
        **make_batch(processor), answer_constraint=processor.answer_logits_processor()
    )
    assert all(prediction in labels for prediction in predictions)


def test_predict_rejects_training_inputs(model, processor):
    with pytest.raises(ValueError, match="predict needs inputs built without labels"):
        model.predict(
            **make_batch(processor, labels=[0, 1, 2]), answer_constraint=processor.answer_logits_processor()
        )


def test_batch_of_one_and_all_modalities_missing(model, processor):
    single = processor(text=["only text"], audio=None, video=None, labels=[2])
    output = model(**single)
    assert torch.isfinite(output.loss)
    constraint = processor.answer_logits_processor()
    assert model.predict(**processor(text=["only text"]), answer_constraint=constraint)[0] in LABELS


def drop_one_placeholder(input_ids):
    pseudo_token_id = input_ids.max()  # added last to the tiny vocabulary
    row, column = (input_ids == pseudo_token_id).nonzero()[0].tolist()
    input_ids[row, column] = 5


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda b: b.update(audio_values=torch.zeros(3, 5, AUDIO_DIM + 1)), "feature dimension 6"),
        (lambda b: b.update(video_values=torch.zeros(3, 4, VIDEO_DIM + 2)), "feature dimension 4"),
        (lambda b: b["audio_values"].__setitem__((0, 0, 0), float("nan")), "audio_values must be finite"),
        (lambda b: b["video_values"].__setitem__((1, 0, 0), float("inf")), "video_values must be finite"),
        (lambda b: b.update(audio_lengths=torch.tensor([5, -1, 0])), "audio_lengths must lie in \\[0, 5\\]"),
        (lambda b: b.update(video_lengths=torch.tensor([2, 9, 1])), "video_lengths must lie in \\[0, 4\\]"),
        (
            lambda b: b.update(audio_values=b["audio_values"][:2], audio_lengths=b["audio_lengths"][:2]),
            "audio_values holds 2 samples but input_ids holds 3",
        ),
        (lambda b: drop_one_placeholder(b["input_ids"]), "exactly 4 <pseudo> placeholders"),
        (lambda b: b.update(input_ids=b["input_ids"].clamp(max=5)), "hold no <pseudo> placeholder"),
    ],
)
def test_bad_model_input_raises_before_compute(model, processor, change, message):
    batch = dict(make_batch(processor))
    change(batch)
    calls = []
    # Nothing runs, not even the embedding lookup.
    hook = model.get_input_embeddings().register_forward_pre_hook(lambda *args: calls.append(1))
    with pytest.raises(ValueError, match=message):
        model(**batch)
    hook.remove()
    assert not calls


def test_adapter_only_checkpoint_is_small_and_reloads_from_the_base_path(
    tmp_path, tiny_lm_factory, processor
):
    backbone = tiny_lm_factory("qwen2")
    backbone.save_pretrained(tmp_path / "backbone")
    backbone = AutoModelForCausalLM.from_pretrained(tmp_path / "backbone")
    model = MSEAdapterForCausalLM.from_language_model(backbone, processor)
    assert model.config.base_model_name_or_path == str(tmp_path / "backbone")
    model.save_pretrained(tmp_path / "adapter")
    from safetensors import safe_open

    with safe_open(tmp_path / "adapter" / "model.safetensors", framework="pt") as weights:
        assert weights.keys() and all(name.startswith("adapter.") for name in weights.keys())  # noqa: SIM118
    reloaded = MSEAdapterForCausalLM.from_pretrained(tmp_path / "adapter")
    assert trainable_names(reloaded) == trainable_names(model)
    assert reloaded.config.auto_map["AutoModel"] == reloaded.config.auto_map["AutoModelForCausalLM"]
    batch = make_batch(processor)
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**batch).logits, model(**batch).logits)
    constraint = processor.answer_logits_processor()
    assert reloaded.predict(**batch, answer_constraint=constraint) == model.predict(
        **batch, answer_constraint=constraint
    )


def test_two_adapters_share_one_backbone(tmp_path, tiny_lm_factory):
    backbone = tiny_lm_factory("llama")
    classification, regression = make_processor(), make_processor(task="regression")
    first = MSEAdapterForCausalLM.from_language_model(backbone, classification)
    first.save_pretrained(tmp_path / "first")
    second = MSEAdapterForCausalLM.from_language_model(backbone, regression)
    reloaded = MSEAdapterForCausalLM.from_pretrained(tmp_path / "first", language_model=backbone)
    assert reloaded.language_model is second.language_model is backbone
    assert not any(p.requires_grad for p in backbone.parameters())
    classes, values = classification.answer_logits_processor(), regression.answer_logits_processor()
    batch = make_batch(classification)
    assert reloaded.predict(**batch, answer_constraint=classes) == first.predict(
        **batch, answer_constraint=classes
    )
    assert all(-1 <= v <= 1 for v in second.predict(**make_batch(regression), answer_constraint=values))


def test_full_checkpoint_reloads_without_the_base_model_and_stays_frozen(
    tmp_path, tiny_lm_factory, processor
):
    model = MSEAdapterForCausalLM.from_language_model(tiny_lm_factory("gpt_neox"), processor)
    model.save_pretrained(tmp_path, save_full_model=True)
    reloaded = MSEAdapterForCausalLM.from_pretrained(tmp_path)
    assert all(name.startswith("adapter.") for name in trainable_names(reloaded))
    assert not any(p.requires_grad for p in reloaded.language_model.parameters())
    batch = make_batch(processor)
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**batch).logits, model(**batch).logits)
    with pytest.raises(ValueError, match="holds its own language model"):
        MSEAdapterForCausalLM.from_pretrained(tmp_path, language_model=model.language_model)


def test_adapter_only_checkpoint_without_base_path_needs_a_language_model(
    tmp_path, tiny_lm_factory, processor
):
    model = MSEAdapterForCausalLM.from_language_model(tiny_lm_factory("llama"), processor)
    assert model.config.base_model_name_or_path is None  # built from a config, not loaded from a path
    model.save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="pass language_model="):
        MSEAdapterForCausalLM.from_pretrained(tmp_path)


def test_config_and_processor_must_agree(tiny_lm_factory, processor):
    from configuration_mse_adapter import MSEAdapterConfig

    backbone = tiny_lm_factory("llama")
    config = MSEAdapterConfig(
        text_config=backbone.config,
        audio_feature_dim=AUDIO_DIM,
        video_feature_dim=VIDEO_DIM,
        num_pseudo_tokens=2,
    )
    with pytest.raises(
        ValueError,
        match=r"^config and processor disagree \(config value, processor value\): "
        r"\{'num_pseudo_tokens': \(2, 4\)\}$",
    ):
        MSEAdapterForCausalLM.from_language_model(backbone, processor, config=config)
    # The same disagreement given as config fields (it used to be resolved silently for the processor).
    with pytest.raises(ValueError, match=r"disagree .*\{'num_pseudo_tokens': \(2, 4\)\}$"):
        MSEAdapterForCausalLM.from_language_model(backbone, processor, num_pseudo_tokens=2)


def test_backbone_of_a_different_width_is_rejected(tiny_lm_factory, processor):
    from configuration_mse_adapter import MSEAdapterConfig

    config = MSEAdapterConfig(
        text_config={"model_type": "llama", "hidden_size": 128, "num_attention_heads": 4}
    )
    with pytest.raises(
        ValueError, match=r"language_model has width 64 but config\.text_config\.hidden_size is 128"
    ):
        MSEAdapterForCausalLM(config, language_model=tiny_lm_factory("llama"))


def test_activation_checkpointing_gives_the_same_adapter_gradients(tiny_lm_factory, processor):
    torch.manual_seed(0)
    model = MSEAdapterForCausalLM.from_language_model(tiny_lm_factory("llama"), processor)
    batch = make_batch(processor, labels=[0, 1, 2])
    model.train()
    model(**batch).loss.backward()
    plain = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    model.activation_checkpointing_enable()
    model(**batch).loss.backward()
    for name, grad in plain.items():
        torch.testing.assert_close(dict(model.named_parameters())[name].grad, grad)


def test_adapter_only_reload_in_bfloat16_follows_the_requested_dtype(tmp_path, tiny_lm_factory, processor):
    tiny_lm_factory("llama").save_pretrained(tmp_path / "backbone")
    backbone = AutoModelForCausalLM.from_pretrained(tmp_path / "backbone")
    MSEAdapterForCausalLM.from_language_model(backbone, processor).save_pretrained(tmp_path / "adapter")
    reloaded = MSEAdapterForCausalLM.from_pretrained(tmp_path / "adapter", dtype=torch.bfloat16)
    assert reloaded.adapter.dtype == reloaded.language_model.dtype == torch.bfloat16
    assert not any(p.requires_grad for p in reloaded.language_model.parameters())
    constraint = processor.answer_logits_processor()
    assert set(reloaded.predict(**make_batch(processor), answer_constraint=constraint)) <= set(LABELS)


def test_keeping_only_the_last_logits_gives_the_same_loss(model, processor):
    batch = make_batch(processor, labels=["positive", "negative", 1])
    first_label_column = int((batch["labels"] != IGNORE_INDEX).any(dim=0).nonzero()[0])
    keep = batch["labels"].shape[1] - first_label_column + 1
    with torch.no_grad():
        full = model(**batch)
        kept = model(**batch, logits_to_keep=keep)
    assert kept.logits.shape[1] == keep
    torch.testing.assert_close(kept.loss, full.loss)
    with pytest.raises(ValueError, match="drops supervised label positions"):
        model(**batch, logits_to_keep=keep - 1)
