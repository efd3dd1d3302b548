"""The M2SE curriculum pieces with a toy model: stage layout, per-stage LR schedule, per-task loss, state."""

from __future__ import annotations

import json
import math

import datasets
import pytest
import torch
from transformers import Trainer, TrainingArguments

from m2se.emt.stage import Stage
from m2se.training.curriculum import build_curriculum
from m2se.training.loss import TaskAwareLoss
from trainer_callbacks import CURRICULUM_FILE, M2SECurriculumCallback, StageWarmupCosine

TASKS = ["msa", "er", "fer"]


def toy_pools(sizes: dict[str, int]) -> dict[str, datasets.Dataset]:
    return {
        task: datasets.Dataset.from_dict(
            {"id": [f"{task}-{i}" for i in range(size)], "text": [f"{task} sample {i}" for i in range(size)]}
        )
        for task, size in sizes.items()
    }


class ToyCollator:
    """Tokenized text with the whole sequence as the target, and the row's task id."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def __call__(self, rows):
        batch = self.tokenizer([row["text"] for row in rows], return_tensors="pt", padding=True)
        labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
        batch["labels"] = labels
        batch["task_ids"] = torch.tensor([TASKS.index(row["task"]) for row in rows])
        return batch


def test_stage_warmup_cosine_restarts_at_every_stage():
    schedule = StageWarmupCosine([0, 10, 30], warmup=0.2)
    assert schedule(0) < 0.5 and schedule(10) < 0.5  # both stages start warming up
    assert schedule(2) == pytest.approx(1.0)  # 2 warm-up steps in stage 1, then the cosine peak
    assert schedule(14) == pytest.approx(1.0)  # 4 warm-up steps in stage 2
    assert schedule(9) < 0.1 and schedule(29) < 0.05  # each stage decays towards 0
    assert all(schedule(step) >= schedule(step + 1) for step in range(14, 29))


def test_task_aware_loss_equals_the_models_loss_without_weighting(tiny_lm_factory, tiny_tokenizer):
    model = tiny_lm_factory("llama")
    loss = TaskAwareLoss(TASKS)
    loss.attach(model)
    batch = ToyCollator(tiny_tokenizer)(
        [{"text": "msa sample one", "task": "msa"}, {"text": "er two", "task": "er"}]
    )
    labels = batch.pop("labels")
    with torch.no_grad():
        reference = model(**{k: v for k, v in batch.items() if k != "task_ids"}, labels=labels).loss
        outputs = model(**batch)  # the hook removes task_ids
    assert loss(outputs, labels) == pytest.approx(reference.item(), rel=1e-5)
    num_items = int(labels[:, 1:].ne(-100).sum())
    model(**batch)
    assert loss(outputs, labels, num_items_in_batch=2 * num_items) == pytest.approx(
        reference.item() / 2, rel=1e-5
    )


def test_task_aware_loss_needs_task_ids(tiny_lm_factory, tiny_tokenizer):
    model = tiny_lm_factory("llama")
    loss = TaskAwareLoss(TASKS)
    batch = ToyCollator(tiny_tokenizer)([{"text": "msa sample", "task": "msa"}])
    labels = batch.pop("labels")
    del batch["task_ids"]
    with pytest.raises(ValueError, match="without task_ids"):
        loss(model(**batch), labels)


def test_difficulty_weights_favour_the_harder_task_and_average_one():
    loss = TaskAwareLoss(TASKS, difficulty_weighting=True, difficulty_temperature=0.5)
    assert loss.task_weights().tolist() == [1.0, 1.0, 1.0]
    loss.loss_ema = {"msa": 1.0, "er": 2.0}
    weights = loss.task_weights()
    expected_er = 2 * math.exp(4.0) / (math.exp(2.0) + math.exp(4.0))
    assert weights[1].item() == pytest.approx(expected_er)
    assert (weights[0] + weights[1]).item() == pytest.approx(2.0)
    assert weights[2].item() == 1.0  # not seen yet
    uniform = TaskAwareLoss(TASKS, difficulty_weighting=False)
    uniform.loss_ema = {"msa": 1.0, "er": 2.0}
    assert uniform.task_weights().tolist() == [1.0, 1.0, 1.0]
    with pytest.raises(ValueError, match="difficulty_temperature must be > 0"):
        TaskAwareLoss(TASKS, difficulty_temperature=0)


def test_difficulty_weighting_scales_each_samples_loss(tiny_lm_factory, tiny_tokenizer):
    model = tiny_lm_factory("llama")
    weighted_loss = TaskAwareLoss(TASKS, difficulty_weighting=True)
    plain_loss = TaskAwareLoss(TASKS)
    weighted_loss.attach(model)
    weighted_loss.loss_ema = {"msa": 0.0, "er": 1.0}
    weights = weighted_loss.task_weights()
    batch = ToyCollator(tiny_tokenizer)(
        [{"text": "msa sample one", "task": "msa"}, {"text": "er two", "task": "er"}]
    )
    labels = batch.pop("labels")
    with torch.no_grad():
        outputs = model(**batch)
        weighted = weighted_loss(outputs, labels, num_items_in_batch=1)
        per_sample = []
        for row in range(2):
            plain_loss._task_ids = torch.tensor([row])
            per_sample.append(plain_loss({"logits": outputs.logits[row : row + 1]}, labels[row : row + 1], 1))
    expected = weights[0] * per_sample[0] + weights[1] * per_sample[1]
    assert weights[1] > 1 > weights[0]
    assert weighted.item() == pytest.approx(expected.item(), rel=1e-5)


def test_build_curriculum_lays_out_stages_and_counts_samples():
    pools = toy_pools({"msa": 40, "er": 40, "fer": 40})
    stages = [
        Stage(name="one", rates={"msa": 0.5, "er": 0.1, "fer": 0.4}, epochs=2, budget=20),
        Stage(name="two", rates={"msa": 0.1, "er": 0.9}, epochs=1),
    ]
    plan = build_curriculum(pools, stages, global_batch_size=8, seed=3)
    one, two = plan.stages
    assert sum(one.samples.values()) == 20 and one.samples["msa"] > one.samples["er"]
    assert (one.start_step, one.end_step) == (0, 2 * math.ceil(20 / 8))
    assert two.start_step == one.end_step
    assert len(plan.dataset) == plan.total_steps * 8
    first_stage_ids = set(plan.dataset.select(range(one.end_step * 8))["id"])
    second_stage_ids = set(plan.dataset.select(range(one.end_step * 8, len(plan.dataset)))["id"])
    assert not first_stage_ids & second_stage_ids  # stage 2 takes the remaining samples
    assert {row_id.split("-")[0] for row_id in second_stage_ids} <= {"msa", "er"}
    again = build_curriculum(pools, stages, global_batch_size=8, seed=3)
    assert again.dataset["id"] == plan.dataset["id"]
    other_seed = build_curriculum(pools, stages, global_batch_size=8, seed=4)
    assert other_seed.dataset["id"] != plan.dataset["id"]


def test_max_steps_cuts_the_curriculum_in_order_and_unpinned_stages_take_the_epochs():
    pools = toy_pools({"msa": 40, "er": 40, "fer": 40})
    stages = [
        Stage(name="one", rates={"msa": 0.5, "er": 0.1, "fer": 0.4}, budget=16),  # 2 steps per epoch
        Stage(name="two", rates={"msa": 0.1, "er": 0.9}, epochs=1, budget=16),
    ]
    full = build_curriculum(pools, stages, global_batch_size=8, seed=3, epochs=3)
    layout = [(stage.epochs, stage.start_step, stage.end_step) for stage in full.stages]
    assert layout == [(3, 0, 6), (1, 6, 8)]
    assert not any(stage.truncated for stage in full.stages)

    inside_stage_one = build_curriculum(pools, stages, global_batch_size=8, seed=3, epochs=3, max_steps=5)
    one, two = inside_stage_one.stages
    assert (one.start_step, one.end_step, one.planned_steps, one.truncated) == (0, 5, 6, True)
    assert (two.start_step, two.end_step, two.planned_steps, two.truncated) == (5, 5, 2, True)
    assert inside_stage_one.total_steps == 5 and len(inside_stage_one.dataset) == 5 * 8
    # The cap only cuts: the steps that run are those of the uncapped run.
    assert inside_stage_one.dataset["id"] == full.dataset.select(range(5 * 8))["id"]

    inside_stage_two = build_curriculum(pools, stages, global_batch_size=8, seed=3, epochs=3, max_steps=7)
    assert [(s.end_step, s.truncated) for s in inside_stage_two.stages] == [(6, False), (7, True)]
    beyond = build_curriculum(pools, stages, global_batch_size=8, seed=3, epochs=3, max_steps=100)
    assert beyond.total_steps == 8 and beyond.dataset["id"] == full.dataset["id"]
    with pytest.raises(ValueError, match="max_steps must be >= 1 or None, got 0"):
        build_curriculum(pools, stages, global_batch_size=8, seed=3, max_steps=0)


def test_build_curriculum_rejects_a_stage_without_data():
    pools = toy_pools({"msa": 4})
    with pytest.raises(ValueError, match=r"samples task\(s\) \['er'\] but the data has none"):
        build_curriculum(pools, [Stage(name="s", rates={"er": 1.0})], global_batch_size=2, seed=0)
    stages = [Stage(name="first", rates={"msa": 1.0}), Stage(name="second", rates={"msa": 1.0})]
    with pytest.raises(ValueError, match="stage 'second' has no data"):
        build_curriculum(pools, stages, global_batch_size=2, seed=0)


def run_toy_curriculum(tmp_path, tiny_lm_factory, tiny_tokenizer, max_steps=None):
    pools = toy_pools({"msa": 16, "er": 16, "fer": 16})
    stages = [
        Stage(name="one", rates={"msa": 0.5, "fer": 0.5}, epochs=1, budget=16),
        Stage(name="two", rates={"msa": 0.25, "er": 1.0}, epochs=1, budget=16),
    ]
    plan = build_curriculum(pools, stages, global_batch_size=4, seed=0)
    model = tiny_lm_factory("llama")
    model.train()
    loss = TaskAwareLoss(TASKS)
    loss.attach(model)
    callback = M2SECurriculumCallback(plan.stages, loss, schedule_per_stage=True, warmup=0.25)
    args = TrainingArguments(
        output_dir=str(tmp_path),
        per_device_train_batch_size=4,
        max_steps=max_steps or plan.total_steps,
        learning_rate=1e-2,
        lr_scheduler_type="cosine",
        logging_steps=1,
        report_to=[],
        use_cpu=True,
        train_sampling_strategy="sequential",
        remove_unused_columns=False,
        save_strategy="no",
        disable_tqdm=True,
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=plan.dataset,
        data_collator=ToyCollator(tiny_tokenizer),
        compute_loss_func=loss,
        callbacks=[callback],
    )
    trainer.train()
    return plan, trainer, callback


def test_callback_logs_per_task_losses_resets_the_schedule_and_writes_the_file(
    tmp_path, tiny_lm_factory, tiny_tokenizer
):
    plan, trainer, _ = run_toy_curriculum(tmp_path, tiny_lm_factory, tiny_tokenizer)
    logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert len(logs) == plan.total_steps == 8
    boundary = plan.stages[0].end_step
    assert [entry["stage"] for entry in logs] == [0] * boundary + [1] * (8 - boundary)
    assert {"loss_msa", "loss_fer"} <= set(logs[0]) and "loss_er" not in logs[0]
    assert "loss_fer" not in logs[-1] and "loss_er" in logs[-1]
    rates = [entry["learning_rate"] for entry in logs]
    assert (
        rates[boundary] < rates[boundary - 2] * 10 and rates[boundary] < rates[boundary + 1]
    )  # warm-up again
    assert rates[0] == pytest.approx(rates[boundary])
    # The per-task losses, weighted by tokens, give back the Trainer's loss of the step.
    written = json.loads((tmp_path / CURRICULUM_FILE).read_text())
    assert [stage["name"] for stage in written["stages"]] == ["one", "two"]
    assert [stage["truncated_by_max_steps"] for stage in written["stages"]] == [False, False]
    assert [stage["planned_steps"] for stage in written["stages"]] == [boundary, 8 - boundary]
    assert written["stages"][0]["rates"] == {"msa": 0.5, "fer": 0.5}
    assert sum(written["stages"][1]["samples"].values()) == 16
    assert written["stages"][1]["samples"]["er"] > written["stages"][1]["samples"]["msa"]


def test_callback_state_round_trip_and_mismatch(tmp_path, tiny_lm_factory, tiny_tokenizer):
    plan, _, callback = run_toy_curriculum(tmp_path, tiny_lm_factory, tiny_tokenizer, max_steps=3)
    saved = json.loads(json.dumps(callback.state()))  # what trainer_state.json holds
    assert set(saved["attributes"]["loss_ema"]) == {"msa", "fer"}
    fresh = M2SECurriculumCallback(plan.stages, TaskAwareLoss(TASKS))
    fresh.load_state(saved)
    assert fresh.loss.loss_ema == callback.loss.loss_ema
    other = build_curriculum(toy_pools({"msa": 8}), [Stage(name="x", rates={"msa": 1.0})], 4, 0)
    with pytest.raises(ValueError, match="resume with the same recipe"):
        M2SECurriculumCallback(other.stages, TaskAwareLoss(TASKS)).load_state(saved)
