"""The task is the processor's, the architecture the config's: a model built the transformers way from a
config and a processor made separately works; a config and a processor that do not belong together fail at
the first use with one message naming both values."""

from __future__ import annotations

import pytest
import torch
from conftest import build_tiny_tokenizer
from test_mse_adapter_model import AUDIO_DIM, LABELS, VIDEO_DIM, make_batch, make_processor
from transformers import LogitsProcessorList

from configuration_mse_adapter import MSEAdapterConfig
from modeling_mse_adapter import MSEAdapterForCausalLM
from processing_mse_adapter import MSEAdapterProcessor


def separate_model(backbone, **config_fields):
    """`MSEAdapterForCausalLM(config, language_model=llm)` with a config written by hand."""
    fields = dict(text_config=backbone.config, audio_feature_dim=AUDIO_DIM, video_feature_dim=VIDEO_DIM)
    torch.manual_seed(0)
    return MSEAdapterForCausalLM(
        MSEAdapterConfig(**{**fields, **config_fields}), language_model=backbone
    ).eval()


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_a_config_and_a_processor_made_separately_predict_and_generate_valid_answers(tiny_lm_factory, task):
    processor = make_processor(task=task)
    model = separate_model(tiny_lm_factory("llama"), pseudo_token_id=processor.pseudo_token_id)
    batch = make_batch(processor)
    constraint = processor.answer_logits_processor()
    predictions = model.predict(**batch, answer_constraint=constraint)
    with torch.no_grad():
        generated = model.generate(
            **batch, logits_processor=LogitsProcessorList([constraint]), max_new_tokens=6, do_sample=False
        )
    generated_answers = constraint.decode(generated[:, batch["input_ids"].shape[1] :])
    assert predictions == generated_answers
    if task == "classification":
        assert set(predictions) <= set(LABELS)
    else:
        assert all(-1.0 <= value <= 1.0 and round(value, 1) == value for value in predictions)
    # The one-liner builds the same model (same seed, same fields).
    torch.manual_seed(0)
    one_liner = MSEAdapterForCausalLM.from_language_model(model.language_model, processor).eval()
    assert one_liner.predict(**batch, answer_constraint=constraint) == predictions


def test_a_paper_preset_builds_a_matching_config_and_processor(tiny_lm_factory):
    backbone = tiny_lm_factory("llama")
    tokenizer = build_tiny_tokenizer()
    processor = MSEAdapterProcessor.from_paper_preset(tokenizer, "meld", backbone="qwen")
    config = MSEAdapterConfig.from_paper_preset(
        "meld", backbone="qwen", text_config=backbone.config, pseudo_token_id=processor.pseudo_token_id
    )
    model = MSEAdapterForCausalLM(config, language_model=backbone).eval()
    batch = processor(
        text=["so happy", "no"],
        audio=[torch.randn(3, 64), None],
        video=[torch.randn(2, 64), torch.randn(1, 64)],
    )
    scores = model.predict(**batch, answer_constraint=processor.answer_logits_processor(), return_scores=True)
    assert [list(row) for row in scores] == [processor.label_names] * 2
    assert all(sum(row.values()) == pytest.approx(1.0) for row in scores)


def test_predict_needs_the_processors_answer_constraint(tiny_lm_factory):
    processor = make_processor()
    model = MSEAdapterForCausalLM.from_language_model(tiny_lm_factory("llama"), processor).eval()
    with pytest.raises(
        TypeError,
        match=r"^predict needs the task's answers: pass "
        r"answer_constraint=processor\.answer_logits_processor\(\), got NoneType$",
    ):
        model.predict(**make_batch(processor))


def mismatch_cases(processor):
    return [
        (
            {"pseudo_token_id": processor.pseudo_token_id, "num_pseudo_tokens": 2},
            r"^each row of input_ids must hold exactly 2 <pseudo> placeholders \(config\.num_pseudo_tokens; "
            rf"id {processor.pseudo_token_id}\), got \[4, 4, 4\]: build the processor with the config's "
            r"num_pseudo_tokens$",
        ),
        (
            {},
            r"^config\.pseudo_token_id is not set, so the <pseudo> placeholders cannot be found: set it to "
            r"the processor's pseudo_token_id \(MSEAdapterForCausalLM\.from_language_model does\)$",
        ),
        (
            {"pseudo_token_id": 3},  # the processor's id (400) lies past the tiny vocabulary
            r"^input_ids must lie in \[0, 399\] \(the backbone vocabulary\) apart from the <pseudo> id 3 "
            r"\(config\.pseudo_token_id, which must be the processor's pseudo_token_id\), "
            r"got ids from 0 to 400$",
        ),
        (
            {"pseudo_token_id": processor.pseudo_token_id, "audio_feature_dim": 74},
            r"^audio_values must have feature dimension 74 \(config\.audio_feature_dim\), got 6$",
        ),
    ]


@pytest.mark.parametrize("case", range(4))
def test_a_config_that_does_not_match_the_processor_fails_before_compute_naming_both_values(
    tiny_lm_factory, case
):
    processor = make_processor()
    config_fields, message = mismatch_cases(processor)[case]
    model = separate_model(tiny_lm_factory("llama"), **config_fields)
    batch = make_batch(processor)
    calls = []
    hook = model.get_input_embeddings().register_forward_pre_hook(lambda *args: calls.append(1))
    with pytest.raises(ValueError, match=message):
        model.predict(**batch, answer_constraint=processor.answer_logits_processor())
    with pytest.raises(ValueError, match=message):
        model(**batch)
    hook.remove()
    assert not calls


@pytest.mark.parametrize(
    ("metric_set", "expected_key", "absent_key"),
    [("sims", "Mult_acc_3", "Has0_acc_2"), ("mosei", "Has0_acc_2", "Mult_acc_3")],
)
def test_evaluation_scores_with_the_processors_metric_set(
    tiny_lm_factory, metric_set, expected_key, absent_key, tmp_path
):
    from test_evaluation import score_rows

    from m2se.data.synthetic import make_multimodal_dataset

    # The same [-1, 1] regression task: only the metric set tells SIMS metrics from MOSEI ones.
    processor = make_processor(task="regression", metric_set=metric_set)
    model = MSEAdapterForCausalLM.from_language_model(tiny_lm_factory("llama"), processor).eval()
    rows = make_multimodal_dataset(
        6, "regression", audio_dim=AUDIO_DIM, video_dim=VIDEO_DIM, value_range=(-1, 1)
    )
    metrics, _ = score_rows(model, processor, "mse_adapter", ["msa"], rows, tmp_path)
    assert expected_key in metrics and absent_key not in metrics
