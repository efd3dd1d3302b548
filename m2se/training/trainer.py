"""The stock ``Trainer`` with generative evaluation, as ``Seq2SeqTrainer`` does it: training is untouched;
``prediction_step`` adds the generated predictions to the evaluation loss, so the Trainer's own evaluation
loop shards the held-out rows over the ranks and gathers the predictions before ``compute_metrics``."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import datasets
import torch
from torch.utils.data import DataLoader
from transformers import Trainer, TrainerCallback

from m2se.training.evaluation import HELD_OUT_INDEX, HeldOutEvaluator

logger = logging.getLogger(__name__)


class M2SETrainer(Trainer):
    """``Trainer`` whose evaluation and prediction score the held-out rows of ``evaluator``.

    Every evaluation dataloader collates with ``evaluator.collate``; ``prediction_step`` returns the loss of
    the labelled batch, the predictions (``evaluator.predict``) and the rows' held-out indices as labels;
    ``compute_metrics`` is ``evaluator.compute_metrics``. ``--prediction_loss_only`` keeps its meaning: loss
    only, no generation.

    Args:
        evaluator: the run's held-out rows and scoring. Other arguments: those of ``Trainer``
            (``compute_metrics`` is the evaluator's).
    """

    def __init__(self, *args: Any, evaluator: HeldOutEvaluator, **kwargs: Any):
        super().__init__(*args, compute_metrics=evaluator.compute_metrics, **kwargs)
        if self.args.remove_unused_columns:
            raise ValueError(
                "M2SETrainer needs TrainingArguments(remove_unused_columns=False): its collators read the "
                f"raw columns (text, audio, video or EMT records, and {HELD_OUT_INDEX}), got True"
            )
        self.evaluator = evaluator
        self.rows_scored = 0  # by this rank in the current evaluation loop

    def get_eval_dataloader(self, eval_dataset: str | datasets.Dataset | None = None) -> DataLoader:
        return self._with_collator(self.evaluator.collate, super().get_eval_dataloader, eval_dataset)

    def get_test_dataloader(self, test_dataset: datasets.Dataset) -> DataLoader:
        return self._with_collator(self.evaluator.collate, super().get_test_dataloader, test_dataset)

    def _with_collator(self, collator: Callable, build: Callable[..., DataLoader], *args: Any) -> DataLoader:
        training_collator = self.data_collator
        self.data_collator = collator
        try:
            return build(*args)
        finally:
            self.data_collator = training_collator

    def evaluation_loop(self, dataloader: DataLoader, description: str, *args: Any, **kwargs: Any):
        self.rows_scored = 0
        output = super().evaluation_loop(dataloader, description, *args, **kwargs)
        logger.info(
            "%s: rank %d of %d scored %d held-out rows",
            description,
            self.args.process_index,
            self.args.world_size,
            self.rows_scored,
        )
        return output

    def prediction_step(
        self,
        model: torch.nn.Module,
        inputs: dict[str, Any],
        prediction_loss_only: bool,
        ignore_keys: list[str] | None = None,
    ) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
        """Loss of the labelled batch; unless ``prediction_loss_only``, the batch's predictions (B,) or
        (B, new_tokens) and its held-out row indices (B,)."""
        prompt_inputs = inputs.pop("prompt_inputs")
        indices = inputs.pop(HELD_OUT_INDEX)
        loss, _, _ = super().prediction_step(
            model, inputs, prediction_loss_only=True, ignore_keys=ignore_keys
        )
        if prediction_loss_only:
            return loss, None, None
        prompt_inputs = self._prepare_inputs(prompt_inputs)
        indices = indices.to(self.args.device)
        # Generation runs on the model itself: under ZeRO-3 its parameters are gathered by the engine's hooks
        # on the module (generate syncs the ranks), as Seq2SeqTrainer does.
        predictions = self.evaluator.predict(self.accelerator.unwrap_model(model), prompt_inputs, indices)
        self.rows_scored += len(indices)
        return loss, predictions, indices

    def score(self, dataset: datasets.Dataset) -> dict[str, float]:
        """The paper metrics of held-out ``dataset`` (one of ``evaluator.datasets``), sharded over the ranks
        and gathered; empty when it has no rows or with ``--prediction_loss_only``."""
        self.evaluator.last_metrics = {}
        if len(dataset) > 0:
            self.predict(dataset, metric_key_prefix="test")
        return dict(self.evaluator.last_metrics)


class ScoreUntrainedModel(TrainerCallback):
    """Scores the model as training starts (``metrics``): once the Trainer prepared it, before any step.

    Scoring inside ``Trainer.train`` rather than before it is what makes it work under DeepSpeed ZeRO-3: the
    parameters are partitioned when the model is built and are gathered only through the engine the Trainer
    creates in ``train``; every rank takes part. A resumed run (``global_step`` > 0) is not scored: its model
    is no longer the untrained one.

    Args:
        score: returns the metrics (e.g. ``lambda: trainer.score(test_rows)``).
    """

    def __init__(self, score: Callable[[], dict[str, float]]):
        self.score = score
        self.metrics: dict[str, float] | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        if state.global_step == 0:
            self.metrics = self.score()
