"""Held-out evaluation the way the papers score their models, usable as the Trainer's ``compute_metrics``.

* MSE-Adapter: the constrained ``model.predict`` (every answer is a valid value or class), then
  the metric set the processor's task names (``processor.metric_set``): ``msa_regression_metrics`` ("mosei"),
  ``sims_regression_metrics`` ("sims") or ``erc_metrics``.
* EmoVerse: greedy ``generate`` per task, MSA and ER restricted to their answer sets by
  ``processor.answer_logits_processor(task)``; answers parsed with the ``m2se.metrics`` parsers; an unparsable
  answer is scored as wrong and counted (``<task>_unparsable``). MSA -> ``binary_sentiment_metrics``, ER ->
  ``erc_metrics``, ECPE -> ``ecpe_metrics``; FER and ERI are free text and get ``<task>_exact_match`` (answer
  equal to the reference after trimming and case folding).

Inside ``Trainer.evaluate`` the evaluation loop still computes ``eval_loss``;
:meth:`Evaluator.shrink_logits` keeps it from storing full-vocabulary logits that the metrics do not use.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import datasets
import torch
from transformers import LogitsProcessorList, TrainerCallback

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


class Evaluator:
    """Scores ``model`` on ``rows``.

    Args:
        model: the model being trained (the Trainer shares it; no copy).
        processor: its processor. rows: held-out rows (standard multimodal schema for MSE-Adapter, EMT records
        for EmoVerse). tasks: the run's task list.
        batch_size: prediction batch size.
        max_new_tokens: generation budget of EmoVerse answers.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        processor: Any,
        rows: datasets.Dataset,
        tasks: Sequence[str],
        batch_size: int = 16,
        max_new_tokens: int = 16,
    ):
        self.model = model
        self.processor = processor
        self.rows = rows
        self.tasks = list(tasks)
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens
        self.is_mse_adapter = type(model).__name__.startswith("MSEAdapter")
        self.last_predictions: dict[str, tuple[list, list]] = {}

    def __call__(self, eval_prediction: Any = None) -> dict[str, float]:
        """``compute_metrics`` for the Trainer (the logits it gathered are not needed)."""
        return self.evaluate()

    @staticmethod
    def shrink_logits(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """``preprocess_logits_for_metrics``: one number per sample instead of (batch, length, vocabulary)."""
        return labels.new_zeros(labels.shape[0])

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        was_training = self.model.training
        self.model.eval()
        try:
            return self._evaluate_mse_adapter() if self.is_mse_adapter else self._evaluate_emoverse()
        finally:
            self.model.train(was_training)

    def _batches(self, rows: datasets.Dataset, collator) -> Any:
        device = next(self.model.parameters()).device
        for start in range(0, len(rows), self.batch_size):
            batch = collator([rows[index] for index in range(start, min(start + self.batch_size, len(rows)))])
            yield {key: value.to(device) for key, value in batch.items()}

    def _evaluate_mse_adapter(self) -> dict[str, float]:
        collator = MSEAdapterCollator(self.processor, self.tasks, with_labels=False)
        constraint = self.processor.answer_logits_processor()
        predictions = [
            value
            for batch in self._batches(self.rows, collator)
            for value in self.model.predict(**batch, answer_constraint=constraint)
        ]
        references = list(self.rows["label"])
        task = self.tasks[0]
        if self.processor.task == "classification":
            names = self.processor.label_names
            references = [names[index] for index in references]
            self.last_predictions[task] = (predictions, references)
            return erc_metrics(predictions, references, names)
        self.last_predictions[task] = (predictions, references)
        metric = sims_regression_metrics if self.processor.metric_set == "sims" else msa_regression_metrics
        return metric(predictions, references)

    def _generate(self, rows: datasets.Dataset, task: str) -> list[str]:
        """Greedy answers of ``rows`` (all of ``task``); a closed task (MSA, ER) generates only answers of
        its set (``processor.answer_logits_processor``), the others free text."""
        collator = EmoVerseCollator(self.processor, self.tasks, with_labels=False)
        tokenizer = self.processor.tokenizer
        # One constraint serves consecutive generate calls: it recognises each new prompt.
        constraint = [self.processor.answer_logits_processor(task)] if task in CLOSED_TASK_ANSWERS else []
        answers = []
        for batch in self._batches(rows, collator):
            generated = self.model.generate(
                **batch,
                logits_processor=LogitsProcessorList(constraint),
                max_new_tokens=self.max_new_tokens,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
            )
            new_tokens = generated[:, batch["input_ids"].shape[1] :]  # generate returns prompt + answer
            answers.extend(tokenizer.batch_decode(new_tokens, skip_special_tokens=True))
        return answers

    def _evaluate_emoverse(self) -> dict[str, float]:
        metrics: dict[str, float] = {}
        for task in self.tasks:
            rows = self.rows.filter(lambda row, wanted=task: row["task"] == wanted)
            if len(rows) == 0:
                continue
            answers = self._generate(rows, task)
            references = list(rows["response"])
            self.last_predictions[task] = (answers, references)
            metrics.update(
                {f"{task}_{key}": value for key, value in _task_metrics(task, answers, references).items()}
            )
        return metrics


class EvaluateBeforeTraining(TrainerCallback):
    """Scores the model as training starts (``metrics``): once the Trainer prepared it, before any step.

    Scoring inside ``Trainer.train`` rather than before it is what makes it work under DeepSpeed ZeRO-3: the
    parameters are partitioned when the model is built and are gathered only through the engine the Trainer
    creates in ``train``; every rank takes part (``generate`` runs with ``synced_gpus`` there). A resumed run
    (``global_step`` > 0) is not scored: its model is no longer the untrained one.
    """

    def __init__(self, evaluator: Evaluator):
        self.evaluator = evaluator
        self.metrics: dict[str, float] | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        if state.global_step == 0:
            self.metrics = self.evaluator.evaluate()


def _task_metrics(task: str, answers: list[str], references: list[str]) -> dict[str, float]:
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
