"""The answer set as a LogitsProcessor: generate only yields admissible answers; predict's class scores."""

from __future__ import annotations

import pytest
import torch
from conftest import build_tiny_tokenizer
from test_mse_adapter_model import AUDIO_DIM, LABELS, VIDEO_DIM, make_batch, make_processor
from transformers import LogitsProcessor, LogitsProcessorList

from modeling_mse_adapter import MSEAdapterForCausalLM
from processing_mse_adapter import MSEAdapterProcessor


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
    constraint = processor.answer_logits_processor()
    scores = model.predict(**batch, answer_constraint=constraint, return_scores=True)
    predictions = model.predict(**batch, answer_constraint=constraint)
    first_tokens = [ids[0] for ids in processor.answer_logits_processor().answer_token_ids]
    with torch.no_grad():
        expected = model(**batch).logits[:, -1, first_tokens].softmax(-1)
    for row, (score, prediction) in enumerate(zip(scores, predictions, strict=True)):
        assert list(score) == LABELS and sum(score.values()) == pytest.approx(1.0)
        assert max(score, key=score.get) == prediction
        assert list(score.values()) == pytest.approx(expected[row].tolist(), abs=1e-5)


def multi_token_processor():
    """Twelve classes: the indices 10 and 11 take more tokens than 0..9."""
    return MSEAdapterProcessor(
        build_tiny_tokenizer(),
        task="classification",
        label_names=[f"class{index}" for index in range(12)],
        task_prompt="The emotion is",
        audio_feature_dim=AUDIO_DIM,
        video_feature_dim=VIDEO_DIM,
    )


def test_class_scores_of_multi_token_answers_equal_the_teacher_forced_likelihoods(tiny_lm_factory):
    processor = multi_token_processor()
    constraint = processor.answer_logits_processor()
    answer_token_ids = constraint.answer_token_ids
    assert any(len(ids) > 2 for ids in answer_token_ids) and any(len(ids) == 2 for ids in answer_token_ids)
    torch.manual_seed(0)
    model = MSEAdapterForCausalLM.from_language_model(tiny_lm_factory("llama"), processor).eval()
    batch = make_batch(processor)
    scores = model.predict(**batch, answer_constraint=constraint, return_scores=True)
    for row in range(3):
        # By hand: each sample alone (no padding), prompt + the whole answer in one forward pass, the sum of
        # the answer tokens' log-probabilities (terminator included), then the softmax over the answers.
        alone = {name: value[row : row + 1] for name, value in batch.items()}
        keep = alone["attention_mask"][0].bool()
        for name in ("input_ids", "attention_mask", "utterance_mask"):
            alone[name] = alone[name][:, keep]
        prompt_length = alone["input_ids"].shape[1]
        log_likelihoods = []
        for ids in answer_token_ids:
            answer = torch.tensor([ids])
            teacher_forced = dict(
                alone,
                input_ids=torch.cat([alone["input_ids"], answer], dim=1),
                attention_mask=torch.ones(1, prompt_length + len(ids), dtype=torch.long),
                utterance_mask=torch.nn.functional.pad(alone["utterance_mask"], (0, len(ids))),
            )
            with torch.no_grad():
                log_probs = model(**teacher_forced).logits[0].float().log_softmax(-1)
            positions = range(prompt_length - 1, prompt_length - 1 + len(ids))
            log_likelihoods.append(
                sum(log_probs[position, token] for position, token in zip(positions, ids, strict=True))
            )
        expected = torch.stack(log_likelihoods).softmax(-1).tolist()
        assert list(scores[row]) == processor.label_names
        assert list(scores[row].values()) == pytest.approx(expected, abs=1e-5)


class PushTowards(LogitsProcessor):
    """A model that wants `token` first and never wants to stop: the constraint must still end every row with
    one whole answer."""

    def __init__(self, token: int, eos: int):
        self.token, self.eos = token, eos

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        scores = scores.clone()
        scores[:, self.token] += 1000.0
        scores[:, self.eos] -= 1000.0
        return scores


def test_generate_with_multi_token_answers_spells_exactly_one_whole_answer(tiny_lm_factory):
    processor = multi_token_processor()
    constraint = processor.answer_logits_processor()
    eos = processor.tokenizer.eos_token_id
    two_digit = [ids for ids in constraint.answer_token_ids if len(ids) > 2]  # "10" and "11"
    torch.manual_seed(0)
    model = MSEAdapterForCausalLM.from_language_model(tiny_lm_factory("llama"), processor).eval()
    batch = make_batch(processor)
    for processors in ([constraint], [PushTowards(two_digit[0][0], eos), constraint]):
        with torch.no_grad():
            generated = model.generate(
                **batch, logits_processor=LogitsProcessorList(processors), max_new_tokens=6, do_sample=False
            )
        rows = generated[:, batch["input_ids"].shape[1] :].tolist()
        spelled = [row[: row.index(eos) + 1] for row in rows]
        assert all(answer in constraint.answer_token_ids for answer in spelled)
        assert all(
            token == eos for row, answer in zip(rows, spelled, strict=True) for token in row[len(answer) :]
        )
    # Pushed towards "1" and away from EOS, every row spells a two-digit answer and then stops.
    assert all(answer in two_digit for answer in spelled)
    assert constraint.decode(generated[:, batch["input_ids"].shape[1] :]) in (
        [processor.label_names[10]] * 3,
        [processor.label_names[11]] * 3,
    )
