"""Held-out evaluation (m2se.training.evaluation.Evaluator): the metric set comes from the processor's task
definition, and EmoVerse's closed tasks are generated under their answer constraint."""

from __future__ import annotations

import pytest

from m2se.metrics import msa_regression_metrics, sims_regression_metrics
from m2se.training.data import load_task_data
from m2se.training.evaluation import Evaluator
from m2se.training.models import build_emoverse, build_mse_adapter
from m2se.training.recipes import load_recipe
from processing_emoverse import CLOSED_TASK_ANSWERS


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
    evaluator = Evaluator(model, processor, data.test_rows, recipe.tasks, batch_size=8)
    metrics = evaluator.evaluate()
    predictions, references = evaluator.last_predictions["msa"]
    assert metrics == pytest.approx(expected(predictions, references))
    assert set(metrics) == set(expected([0.1, -0.2], [0.1, -0.3]))


def test_emoverse_closed_tasks_generate_only_admissible_answers(tmp_path):
    # An untrained model answers garbage without the constraint; with it every MSA / ER answer is in the set.
    recipe = load_recipe("tiny_emoverse_m2se", [])
    data = load_task_data(recipe, tmp_path)
    model, processor = build_emoverse(recipe)
    rows = data.test_rows.filter(lambda row: row["task"] in ("msa", "er"))
    evaluator = Evaluator(model, processor, rows, recipe.tasks, batch_size=4, max_new_tokens=8)
    metrics = evaluator.evaluate()
    for task in ("msa", "er"):
        answers, _ = evaluator.last_predictions[task]
        assert answers and set(answers) <= set(CLOSED_TASK_ANSWERS[task]), answers
        assert metrics[f"{task}_unparsable"] == 0
