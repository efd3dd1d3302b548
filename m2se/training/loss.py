"""Task-aware causal-LM loss for the stock ``Trainer``: per-task loss tracking and optional difficulty
weighting.

The models take no task ids, so the collators add a ``task_ids`` tensor (B,) to each batch and
:meth:`TaskAwareLoss.attach` registers a forward pre-hook that removes it from the model's keyword arguments
before ``forward`` runs and keeps it for the loss. ``TaskAwareLoss`` is then passed to
``Trainer(compute_loss_func=...)``, which hands it the model outputs, the labels it popped from the batch and
the number of label tokens in the whole (accumulated, all-device) batch. Nothing else of the ``Trainer``
changes.

Loss (token cross-entropy on the shifted labels, normalised like the stock loss):

    loss = sum_i w[task_i] * sum_t CE(logits_i,t, labels_i,t+1) / num_items_in_batch

with ``w = 1`` unless task-difficulty weighting is on. The paper mentions weighting by task difficulty without
a formula; the one used here gives harder tasks (higher recent loss) more weight while keeping the mean weight
1:

    w_k = K * exp(ema_k / tau) / sum_j exp(ema_j / tau)      over the K tasks seen so far,

where ``ema_k`` is an exponential moving average (decay 0.9, per optimizer step, over all ranks) of task k's
mean token loss and ``tau`` the ``difficulty_temperature`` (large tau -> uniform weights). A task not yet seen
gets weight 1. The weights are detached: they rescale the gradient, they are not optimised.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from processing_mse_adapter import IGNORE_INDEX

EMA_DECAY = 0.9


class TaskAwareLoss:
    """``compute_loss_func`` for ``transformers.Trainer`` that knows which task each sample belongs to.

    Args:
        tasks: task names; ``task_ids`` in the batches index into this list.
        difficulty_weighting: apply the task-difficulty weights of the module docstring.
        difficulty_temperature: ``tau`` of the weighting.
    """

    def __init__(
        self, tasks: list[str], difficulty_weighting: bool = False, difficulty_temperature: float = 1.0
    ):
        if difficulty_temperature <= 0:
            raise ValueError(f"difficulty_temperature must be > 0, got {difficulty_temperature}")
        self.tasks = list(tasks)
        self.difficulty_weighting = difficulty_weighting
        self.difficulty_temperature = difficulty_temperature
        self.loss_ema: dict[str, float] = {}
        # Per-task sums of token losses and token counts since the last optimizer step (this rank only).
        self._step_loss_sum = torch.zeros(len(self.tasks), dtype=torch.float64)
        self._step_token_count = torch.zeros(len(self.tasks), dtype=torch.float64)
        self._task_ids: torch.Tensor | None = None

    def attach(self, model: torch.nn.Module) -> None:
        """Take ``task_ids`` out of every call to ``model`` (the model's ``forward`` does not accept it)."""
        model.register_forward_pre_hook(self._take_task_ids, with_kwargs=True)

    def _take_task_ids(
        self, module: torch.nn.Module, args: tuple, kwargs: dict[str, Any]
    ) -> tuple[tuple, dict[str, Any]]:
        self._task_ids = kwargs.pop("task_ids", None)
        return args, kwargs

    def task_weights(self) -> torch.Tensor:
        """Current weight of every task, shape (num_tasks,)."""
        weights = torch.ones(len(self.tasks), dtype=torch.float64)
        if not self.difficulty_weighting or not self.loss_ema:
            return weights
        seen = [index for index, task in enumerate(self.tasks) if task in self.loss_ema]
        emas = torch.tensor([self.loss_ema[self.tasks[index]] for index in seen], dtype=torch.float64)
        weights[seen] = len(seen) * torch.softmax(emas / self.difficulty_temperature, dim=0)
        return weights

    def __call__(
        self, outputs: Any, labels: torch.Tensor, num_items_in_batch: torch.Tensor | int | None = None
    ) -> torch.Tensor:
        logits = outputs["logits"] if isinstance(outputs, dict) else outputs[0]
        # Logits and labels are aligned on their last positions: a model may return logits for fewer positions
        # (``logits_to_keep``, when every label sits at the end) or for more (positions of its own in front).
        kept = min(logits.shape[1], labels.shape[1])
        logits, labels = logits[:, -kept:, :], labels[:, -kept:]
        shifted_logits = logits[:, :-1, :].float()
        shifted_labels = labels[:, 1:].to(shifted_logits.device)
        token_losses = F.cross_entropy(
            shifted_logits.transpose(1, 2), shifted_labels, ignore_index=IGNORE_INDEX, reduction="none"
        )  # (B, L - 1)
        sample_loss_sums = token_losses.sum(dim=1)
        sample_token_counts = shifted_labels.ne(IGNORE_INDEX).sum(dim=1)
        task_ids = self._task_ids
        self._task_ids = None
        if task_ids is None:
            raise ValueError(
                "TaskAwareLoss got a batch without task_ids: build batches with an m2se.collators collator "
                "and "
                "call TaskAwareLoss.attach(model) before training"
            )
        task_ids = task_ids.to(sample_loss_sums.device)
        weights = self.task_weights().to(sample_loss_sums.device, sample_loss_sums.dtype)[task_ids]
        weighted_sum = (weights * sample_loss_sums).sum()
        if torch.is_grad_enabled():
            self._record(task_ids, sample_loss_sums.detach(), sample_token_counts)
        if num_items_in_batch is None:
            return weighted_sum / sample_token_counts.sum().clamp(min=1)
        return weighted_sum / num_items_in_batch

    def _record(self, task_ids: torch.Tensor, loss_sums: torch.Tensor, token_counts: torch.Tensor) -> None:
        self._step_loss_sum += torch.zeros_like(self._step_loss_sum).index_add_(
            0, task_ids.cpu(), loss_sums.cpu().double()
        )
        self._step_token_count += torch.zeros_like(self._step_token_count).index_add_(
            0, task_ids.cpu(), token_counts.cpu().double()
        )

    def end_step(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Close an optimizer step: sum the step's per-task statistics over ranks, update the EMAs.

        Returns the (num_tasks,) loss sums and token counts of the step over all ranks. Every rank must call
        it.
        """
        statistics = torch.stack([self._step_loss_sum, self._step_token_count])
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            # NCCL only reduces device tensors; gloo works on CPU tensors.
            device = "cuda" if torch.distributed.get_backend() == "nccl" else "cpu"
            statistics = statistics.to(device)
            torch.distributed.all_reduce(statistics)
            statistics = statistics.cpu()
        self._step_loss_sum.zero_()
        self._step_token_count.zero_()
        loss_sums, token_counts = statistics[0], statistics[1]
        for index, task in enumerate(self.tasks):
            if token_counts[index] > 0:
                mean = float(loss_sums[index] / token_counts[index])
                previous = self.loss_ema.get(task)
                self.loss_ema[task] = (
                    mean if previous is None else EMA_DECAY * previous + (1 - EMA_DECAY) * mean
                )
        return loss_sums, token_counts
