"""EmoVerse answer constraints: the closed tasks' answer sets (one home in processing_emoverse, read by the
EMT builders) and `generate` restricted to them, batched and left-padded."""

from __future__ import annotations

import pytest
import torch
from test_emoverse_common import randomize_trained_parts, solid_image_path
from transformers import LogitsProcessorList

from m2se.emt import templates
from processing_emoverse import CLOSED_TASK_ANSWERS

pytest_plugins = ["test_emoverse_common"]  # the shared EmoVerse fixtures


def test_answer_sets_are_the_papers_and_the_builders_write_them():
    assert CLOSED_TASK_ANSWERS["msa"] == ("Positive.", "Negative.")
    assert set(CLOSED_TASK_ANSWERS["er"]) == {
        "Anger.", "Sadness.", "Surprise.", "Disgust.", "Joy.", "Neutral.", "Fear."
    }  # fmt: skip
    assert {templates.msa_response(2.0), templates.msa_response(-0.5)} == set(CLOSED_TASK_ANSWERS["msa"])
    assert tuple(templates.label_answer(e) for e in templates.ER_EMOTIONS) == CLOSED_TASK_ANSWERS["er"]
    # the ER query lists the emotions in the answer set's order
    assert "anger, sadness, surprise, disgust, joy, neutral or fear" in templates.er_query("x")
    with pytest.raises(ValueError, match=r"'Happy\.' is not an answer of EmoVerse's closed tasks"):
        templates.label_answer("happy")


@pytest.mark.parametrize("task", ["msa", "er"])
def test_generate_with_the_constraint_yields_only_admissible_answers(
    task, emoverse_model, emoverse_processor, tmp_path
):
    randomize_trained_parts(emoverse_model, seed=3)
    query = templates.msa_query if task == "msa" else templates.er_query
    colors = [(200, 10, 10), (10, 200, 10), (10, 10, 200), (90, 90, 90)]
    records = [
        {
            "query": query("I love it" if row % 2 else "It went on and on, and nobody said a word"),
            "images": [solid_image_path(tmp_path, f"{row}.png", color)],
        }
        for row, color in enumerate(colors)
    ]
    inputs = emoverse_processor.process_emt_records(records, training=False)
    assert not inputs["attention_mask"][:, 0].all()  # rows of different lengths: left padding in the batch
    constraint = emoverse_processor.answer_logits_processor(task)
    generated = emoverse_model.generate(
        **inputs,
        logits_processor=LogitsProcessorList([constraint]),
        max_new_tokens=constraint.max_answer_length + 1,
        do_sample=False,
    )
    new_tokens = generated[:, inputs["input_ids"].shape[1] :]
    answers = constraint.decode(new_tokens)
    assert all(answer in CLOSED_TASK_ANSWERS[task] for answer in answers)
    tokenizer = emoverse_processor.tokenizer
    for row, answer in enumerate(answers):  # the tokens spell the answer, then end the turn
        answer_ids = tokenizer(answer, add_special_tokens=False)["input_ids"]
        assert new_tokens[row, : len(answer_ids)].tolist() == answer_ids
        assert new_tokens[row, len(answer_ids)].item() == tokenizer.eos_token_id
    # greedy decoding inside the set: row 0 starts with the model's best admissible first token
    with torch.no_grad():
        logits = emoverse_model(**inputs).logits[0, -1]
    first_tokens = {ids[0] for ids in constraint.answer_token_ids}
    assert new_tokens[0, 0].item() == max(first_tokens, key=lambda token: logits[token].item())


def test_free_text_tasks_have_no_answer_constraint(emoverse_processor):
    with pytest.raises(
        ValueError, match=r"task 'fer' has no closed answer set; the closed tasks are \['er', 'msa'\]"
    ):
        emoverse_processor.answer_logits_processor("fer")


def test_the_end_of_a_chatml_turn_ends_an_answer_when_it_is_one_token(emoverse_parts):
    from processing_emoverse import EmoVerseProcessor

    vision_dir, text_dir = emoverse_parts
    processor = EmoVerseProcessor.from_parts(vision_dir, text_dir, image_seq_length=4)
    processor.tokenizer.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    end_of_turn = processor.tokenizer.convert_tokens_to_ids("<|im_end|>")
    constraint = processor.answer_logits_processor("msa")
    assert (
        {ids[-1] for ids in constraint.answer_token_ids}
        == {end_of_turn}
        != {processor.tokenizer.eos_token_id}
    )
