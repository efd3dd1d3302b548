"""Held-out evaluation the way the papers score their models, inside the Trainer's own evaluation loop.

:class:`HeldOutEvaluator` gives :class:`m2se.training.trainer.M2SETrainer` what its ``prediction_step``
and ``compute_metrics`` need; the Trainer's loop shards the rows over the ranks and gathers the predictions
(``gather_for_metrics``), so every rank generates for its own shard only:

* MSE-Adapter: the constrained ``model.predict`` (every answer is a valid value or class), scored by the
  metric set the processor's task names (``processor.metric_set``, :data:`MSE_ADAPTER_METRICS`).
* EmoVerse: greedy ``generate``, each row of a closed task (MSA, ER) restricted to its answer set by
  ``processor.answer_logits_processor(task)`` (:class:`RowAnswerConstraints`: one ``generate`` call per batch
  whatever its tasks, which ZeRO-3 needs: every rank makes the same calls); answers parsed with the
  ``m2se.metrics`` parsers; an unparsable answer is scored as wrong and counted (``<task>_unparsable``).
  MSA -> ``binary_sentiment_metrics``, ER -> ``erc_metrics``, ECPE -> ``ecpe_metrics``; FER and ERI are free
  text and get ``<task>_exact_match`` (answer equal to the reference after trimming and case folding).

Every held-out row carries its index (:data:`HELD_OUT_INDEX`) through the loop as the "label" the Trainer
gathers, so the metrics read each prediction's reference whatever rank scored it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import datasets
import numpy as np
import torch
from transformers import EvalPrediction, LogitsProcessor, LogitsProcessorList

from m2se.collators import EmoVerseCollator, MSEAdapterCollator
from m2se.emt.templates import ER_EMOTIONS
from m2se.metrics import (
    binary_sentiment_metrics,
    ecpe_metrics,
    erc_metrics,
    msa_regression_metrics,
    parse_emotion_answer,
    parse_sentiment_answer,
    sims_regression_metrics,
)
from processing_emoverse import CLOSED_TASK_ANSWERS
from tasks_mse_adapter import METRIC_SETS

HELD_OUT_INDEX = "held_out_index"
# What the Trainer's evaluation loop pads gathered predictions with (`pad_across_processes`, `nested_concat`).
TRAINER_PADDING_INDEX = -100
# MSE-Adapter: the processor's `metric_set` (tasks_mse_adapter.METRIC_SETS) -> the metric function.
MSE_ADAPTER_METRICS: dict[str, Callable[..., dict[str, float]]] = {
    "mosei": msa_regression_metrics,
    "sims": sims_regression_metrics,
    "erc": erc_metrics,
}


def emoverse_task_metrics(task: str, answers: list[str], references: list[str]) -> dict[str, float]:
    """The metrics of one EMT task's generated ``answers`` against the ``references`` (unprefixed names)."""
    if task == "msa":
        return binary_sentiment_metrics(
            [parse_sentiment_answer(answer) for answer in answers],
            [parse_sentiment_answer(reference) for reference in references],
        )
    if task == "er":
        aliases = {"happy": "joy"}  # EMT's MOSEI records answer "Happy." for joy
        return erc_metrics(
            [parse_emotion_answer(answer, ER_EMOTIONS, aliases) for answer in answers],
            [parse_emotion_answer(reference, ER_EMOTIONS, aliases) for reference in references],
            ER_EMOTIONS,
        )
    if task == "ecpe" and any(reference.strip() for reference in references):
        return ecpe_metrics(answers, references)
    matches = [
        answer.strip().casefold() == reference.strip().casefold()
        for answer, reference in zip(answers, references, strict=True)
    ]
    return {"exact_match": sum(matches) / len(matches)}


def metric_names(model_kind: str, tasks: Sequence[str], metric_set: str | None = None) -> list[str]:
    """Every metric name a run reports (what ``evaluation.metric`` may name), read from the metric functions
    above applied to a two-sample probe. MSE-Adapter: those of ``metric_set`` (``model.config.metric_set``;
    None: the task type's default, as the processor chooses); EmoVerse: ``<task>_<metric>`` per task."""
    if model_kind == "mse_adapter":
        task_type = "classification" if tasks[0] == "er" else "regression"
        metric_set = METRIC_SETS[task_type][0] if metric_set is None else metric_set
        if metric_set not in METRIC_SETS[task_type]:
            raise ValueError(
                f"model.config.metric_set: expected one of {list(METRIC_SETS[task_type])} for a {task_type} "
                f"task, got {metric_set!r}"
            )
        if task_type == "classification":
            return sorted(MSE_ADAPTER_METRICS[metric_set](["a", "b"], ["a", "b"], ["a", "b"]))
        return sorted(MSE_ADAPTER_METRICS[metric_set]([-0.5, 0.5], [-0.5, 0.5]))
    probes = {task: answers[0] for task, answers in CLOSED_TASK_ANSWERS.items()} | {"ecpe": "1_joy,1"}
    names = set()
    for task in tasks:
        probe = [probes.get(task, "text"), probes.get(task, "text")]
        names |= {f"{task}_{name}" for name in emoverse_task_metrics(task, probe, probe)}
        if task == "ecpe":  # a held-out ECPE set without gold pairs is scored by exact match
            names.add("ecpe_exact_match")
    return sorted(names)


class RowAnswerConstraints(LogitsProcessor):
    """Applies ``constraints[task]`` to the rows of ``task`` in a batch of mixed tasks; rows of tasks without
    a constraint generate freely.

    Args:
        constraints: task -> its ``AnswerSetLogitsProcessor`` (each remembers its rows' prompt across steps).
        row_tasks: the task of every row of the batch, in order.
    """

    def __init__(self, constraints: Mapping[str, LogitsProcessor], row_tasks: Sequence[str]):
        self.rows_of = {
            task: torch.tensor([row for row, name in enumerate(row_tasks) if name == task])
            for task in constraints
            if task in row_tasks
        }
        self.constraints = constraints

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        """`input_ids` (batch, length), `scores` (batch, vocab) -> the scores with each constrained row's
        inadmissible tokens at `-inf`."""
        for task, rows in self.rows_of.items():
            rows = rows.to(scores.device)
            scores[rows] = self.constraints[task](input_ids[rows], scores[rows])
        return scores


class HeldOutEvaluator:
    """The held-out rows of a run and how to score them.

    Args:
        processor: the model's processor.
        model_kind: ``"mse_adapter"`` or ``"emoverse"``.
        tasks: the run's task list (``task_ids`` index into it).
        splits: split name -> held-out rows (standard multimodal schema for MSE-Adapter, EMT records for
            EmoVerse), e.g. ``{"eval": ..., "test": ...}``.
        training_collator: the run's collator: its labelled batch gives the Trainer's ``eval_loss``.
        max_new_tokens: generation budget of EmoVerse answers.
    """

    def __init__(
        self,
        processor: Any,
        model_kind: str,
        tasks: Sequence[str],
        splits: Mapping[str, datasets.Dataset],
        training_collator: Callable[[list[dict[str, Any]]], Any],
        max_new_tokens: int = 16,
    ):
        self.processor = processor
        self.is_mse_adapter = model_kind == "mse_adapter"
        self.tasks = list(tasks)
        self.training_collator = training_collator
        self.max_new_tokens = max_new_tokens
        prompt_collator = MSEAdapterCollator if self.is_mse_adapter else EmoVerseCollator
        self.prompt_collator = prompt_collator(processor, self.tasks, with_labels=False)
        self.datasets: dict[str, datasets.Dataset] = {}
        self.references: list[Any] = []
        self.row_tasks: list[str] = []
        for name, rows in splits.items():
            start = len(self.references)
            self.datasets[name] = rows.add_column(HELD_OUT_INDEX, list(range(start, start + len(rows))))
            if self.is_mse_adapter:
                self.references += list(rows["label"])
                self.row_tasks += [self.tasks[0]] * len(rows)
            else:
                self.references += list(rows["response"])
                self.row_tasks += list(rows["task"])
        if self.is_mse_adapter:
            self.constraints = {self.tasks[0]: processor.answer_logits_processor()}
        else:
            self.constraints = {
                task: processor.answer_logits_processor(task)
                for task in self.tasks
                if task in CLOSED_TASK_ANSWERS
            }
        self.last_predictions: dict[str, tuple[list, list]] = {}
        self.last_metrics: dict[str, float] = {}

    def collate(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        """Held-out rows -> the labelled batch (for ``eval_loss``), ``prompt_inputs`` (the prompt-only batch
        that generation reads) and ``held_out_index`` (B,)."""
        indices = torch.tensor([row[HELD_OUT_INDEX] for row in rows], dtype=torch.long)
        rows = [{key: value for key, value in row.items() if key != HELD_OUT_INDEX} for row in rows]
        batch = dict(self.training_collator(rows))
        batch["prompt_inputs"] = dict(self.prompt_collator(rows))
        batch[HELD_OUT_INDEX] = indices
        return batch

    @torch.no_grad()
    def predict(
        self, model: torch.nn.Module, prompt_inputs: dict[str, Any], indices: torch.Tensor
    ) -> torch.Tensor:
        """One batch's predictions as a tensor the Trainer can gather: MSE-Adapter (B,) class indices or
        values; EmoVerse (B, new_tokens) generated token ids."""
        device = indices.device
        if self.is_mse_adapter:
            answers = model.predict(**prompt_inputs, answer_constraint=self.constraints[self.tasks[0]])
            if self.processor.task == "classification":
                names = self.processor.label_names
                return torch.tensor([names.index(answer) for answer in answers], device=device)
            return torch.tensor(answers, dtype=torch.float64, device=device)  # exact one-decimal values
        row_tasks = [self.row_tasks[index] for index in indices.tolist()]
        generated = model.generate(
            **prompt_inputs,
            logits_processor=LogitsProcessorList([RowAnswerConstraints(self.constraints, row_tasks)]),
            max_new_tokens=self.max_new_tokens,
            do_sample=False,
            pad_token_id=self.processor.tokenizer.pad_token_id,
        )
        return generated[:, prompt_inputs["input_ids"].shape[1] :]  # generate returns prompt + answer

    def compute_metrics(self, prediction: EvalPrediction) -> dict[str, float]:
        """``compute_metrics`` of the Trainer: gathered predictions of every rank, labelled by row index."""
        indices = np.asarray(prediction.label_ids).astype(int).tolist()
        expected = self._split_indices(indices)
        if sorted(indices) != expected:
            raise ValueError(
                f"the evaluation loop returned {len(indices)} predictions for {len(expected)} held-out rows "
                "(rows dropped or repeated, e.g. by --dataloader_drop_last); every row must be scored once"
            )
        predictions = np.asarray(prediction.predictions)
        metrics = self._mse_adapter_metrics(indices, predictions) if self.is_mse_adapter else {}
        if not self.is_mse_adapter:
            answers = self.processor.tokenizer.batch_decode(
                np.where(
                    predictions == TRAINER_PADDING_INDEX, self.processor.tokenizer.pad_token_id, predictions
                ),
                skip_special_tokens=True,
            )
            for task in self.tasks:
                rows = [row for row, index in enumerate(indices) if self.row_tasks[index] == task]
                if not rows:
                    continue
                task_answers = [answers[row] for row in rows]
                references = [self.references[indices[row]] for row in rows]
                self.last_predictions[task] = (task_answers, references)
                scores = emoverse_task_metrics(task, task_answers, references)
                metrics.update({f"{task}_{key}": value for key, value in scores.items()})
        self.last_metrics = metrics
        return metrics

    def _split_indices(self, indices: list[int]) -> list[int]:
        """The row indices of the split that ``indices`` come from."""
        start = 0
        for rows in self.datasets.values():
            if indices and start <= min(indices) < start + len(rows):
                return list(range(start, start + len(rows)))
            start += len(rows)
        return []

    def _mse_adapter_metrics(self, indices: list[int], predictions: np.ndarray) -> dict[str, float]:
        task = self.tasks[0]
        references = [self.references[index] for index in indices]
        metric = MSE_ADAPTER_METRICS[self.processor.metric_set]
        if self.processor.task == "classification":
            names = self.processor.label_names
            named_predictions = [names[int(value)] for value in predictions]
            named_references = [names[int(index)] for index in references]
            self.last_predictions[task] = (named_predictions, named_references)
            return metric(named_predictions, named_references, names)
        values = [float(value) for value in predictions]
        self.last_predictions[task] = (values, references)
        return metric(values, references)
