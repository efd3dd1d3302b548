"""Held-out evaluation (m2se.training.evaluation.HeldOutEvaluator through M2SETrainer's evaluation loop): the
metric set comes from the processor's task definition, and EmoVerse's closed tasks are generated under their
answer constraint."""

from __future__ import annotations

import pytest
from transformers import TrainingArguments

from m2se.collators import EmoVerseCollator, MSEAdapterCollator
from m2se.metrics import msa_regression_metrics, sims_regression_metrics
from m2se.training.data import load_task_data
from m2se.training.evaluation import HeldOutEvaluator
from m2se.training.models import build_emoverse, build_mse_adapter
from m2se.training.recipes import load_recipe
from m2se.training.trainer import M2SETrainer
from processing_emoverse import CLOSED_TASK_ANSWERS


def score_rows(
    model, processor, kind, tasks, rows, tmp_path, batch_size=4, max_new_tokens=16, **training_arguments
):
    """The held-out metrics of ``rows`` as train_m2se.py computes them (the Trainer's evaluation loop), and
    the evaluator (its ``last_predictions``)."""
    collator = (MSEAdapterCollator if kind == "mse_adapter" else EmoVerseCollator)(processor, tasks)
    evaluator = HeldOutEvaluator(processor, kind, tasks, {"test": rows}, collator, max_new_tokens)
    args = TrainingArguments(
        output_dir=str(tmp_path / "trainer"),
        use_cpu=True,
        per_device_eval_batch_size=batch_size,
        remove_unused_columns=False,
        report_to=[],
        **training_arguments,
    )
    trainer = M2SETrainer(model=model, args=args, data_collator=collator, evaluator=evaluator)
    return trainer.score(evaluator.datasets["test"]), evaluator


@pytest.mark.parametrize(
    ("metric_set", "expected"), [("sims", sims_regression_metrics), ("mosei", msa_regression_metrics)]
)
def test_regression_metric_set_is_the_processors_not_guessed_from_the_value_range(
    metric_set, expected, tmp_path
):
    # value_range stays (-3, 3) (MOSEI's) in both cases: only metric_set decides.
    recipe = load_recipe("tiny_mse_adapter", [f"model.config.metric_set={metric_set}"])
    data = load_task_data(recipe, tmp_path)
    model, processor = build_mse_adapter(recipe, data)
    assert processor.value_range == [-3.0, 3.0] and processor.metric_set == metric_set
    metrics, evaluator = score_rows(
        model, processor, "mse_adapter", recipe.tasks, data.test_rows, tmp_path, batch_size=8
    )
    predictions, references = evaluator.last_predictions["msa"]
    assert metrics == pytest.approx(expected(predictions, references))
    assert set(metrics) == set(expected([0.1, -0.2], [0.1, -0.3]))


def test_emoverse_closed_tasks_generate_only_admissible_answers(tmp_path):
    # An untrained model answers garbage without the constraint; with it every MSA / ER answer is in the set.
    recipe = load_recipe("tiny_emoverse_m2se", [])
    data = load_task_data(recipe, tmp_path)
    model, processor = build_emoverse(recipe)
    rows = data.test_rows.filter(lambda row: row["task"] in ("msa", "er"))
    metrics, evaluator = score_rows(
        model, processor, "emoverse", recipe.tasks, rows, tmp_path, max_new_tokens=8
    )
    for task in ("msa", "er"):
        answers, _ = evaluator.last_predictions[task]
        assert answers and set(answers) <= set(CLOSED_TASK_ANSWERS[task]), answers
        assert metrics[f"{task}_unparsable"] == 0


def test_rows_left_out_of_the_evaluation_loop_are_an_error_not_a_smaller_score(tmp_path):
    # 6 rows in batches of 4 with the last incomplete batch dropped: 4 predictions for 6 rows.
    recipe = load_recipe("tiny_mse_adapter", [])
    data = load_task_data(recipe, tmp_path)
    model, processor = build_mse_adapter(recipe, data)
    rows = data.test_rows.select(range(6))
    with pytest.raises(ValueError, match="returned 4 predictions for 6 held-out rows"):
        score_rows(model, processor, "mse_adapter", recipe.tasks, rows, tmp_path, dataloader_drop_last=True)
