"""The answer set as a LogitsProcessor: generate only yields admissible answers; predict's class scores."""

from __future__ import annotations

import pytest
import torch
from test_mse_adapter_model import LABELS, make_batch, make_processor
from transformers import LogitsProcessorList

from modeling_mse_adapter import MSEAdapterForCausalLM


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_generate_with_the_constraint_yields_only_admissible_answers(tiny_lm_factory, task):
    processor = make_processor(task=task)
    torch.manual_seed(0)
    model = MSEAdapterForCausalLM.from_language_model(tiny_lm_factory("llama"), processor).eval()
    batch = make_batch(processor)
    constraint = processor.answer_logits_processor()
    with torch.no_grad():
        generated = model.generate(
            **batch, logits_processor=LogitsProcessorList([constraint]), max_new_tokens=8, do_sample=False
        )
    answers = constraint.decode(generated[:, batch["input_ids"].shape[1] :])
    if task == "classification":
        assert set(answers) <= set(LABELS)
    else:
        assert all(-1.0 <= value <= 1.0 for value in answers)
    assert model.predict(**batch, answer_constraint=processor.answer_logits_processor()) == answers


def test_class_scores_sum_to_one_and_their_argmax_is_the_prediction(tiny_lm_factory):
    processor = make_processor()
    torch.manual_seed(0)
    model = MSEAdapterForCausalLM.from_language_model(tiny_lm_factory("llama"), processor).eval()
    batch = make_batch(processor)
    scores = model.predict(**batch, return_scores=True)
    predictions = model.predict(**batch)
    first_tokens = [ids[0] for ids in processor.answer_logits_processor().answer_token_ids]
    with torch.no_grad():
        expected = model(**batch).logits[:, -1, first_tokens].softmax(-1)
    for row, (score, prediction) in enumerate(zip(scores, predictions, strict=True)):
        assert list(score) == LABELS and sum(score.values()) == pytest.approx(1.0)
        assert max(score, key=score.get) == prediction
        assert list(score.values()) == pytest.approx(expected[row].tolist(), abs=1e-5)
