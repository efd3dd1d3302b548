"""Data collators turning dataset rows into model batches for the ``Trainer``.

Both add ``task_ids`` (B,), the index of each row's task in the run's task list, which
``m2se.training.loss.TaskAwareLoss`` takes out of the batch before the model sees it (per-task losses and the
optional task-difficulty weighting).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from transformers import BatchFeature

from m2se.data.emt import validate_emt_record
from processing_mse_adapter import IGNORE_INDEX


class _TaskIds:
    def __init__(self, tasks: Sequence[str], default_task: str | None):
        self.task_index = {task: index for index, task in enumerate(tasks)}
        self.default_task = default_task

    def __call__(self, rows: Sequence[dict[str, Any]]) -> torch.Tensor:
        names = [row.get("task", self.default_task) for row in rows]
        unknown = sorted({name for name in names if name not in self.task_index}, key=str)
        if unknown:
            raise ValueError(f"rows of task(s) {unknown} in a run of tasks {list(self.task_index)}")
        return torch.tensor([self.task_index[name] for name in names], dtype=torch.long)


class MSEAdapterCollator:
    """Rows of the standard multimodal schema (``text``, ``audio``, ``video``, ``label``) -> MSE-Adapter
    batch.

    Args:
        processor: an ``MSEAdapterProcessor``. tasks: the run's task list (``task_ids`` index into it); rows
        without a ``task`` column count as
            ``tasks[0]``.
        with_labels: False builds prompt-only batches for ``predict`` / ``generate``.
    """

    def __init__(self, processor, tasks: Sequence[str] = ("msa",), with_labels: bool = True):
        self.processor = processor
        self.with_labels = with_labels
        self.task_ids = _TaskIds(tasks, tasks[0])

    def __call__(self, rows: Sequence[dict[str, Any]]) -> BatchFeature:
        if not rows:
            raise ValueError("MSEAdapterCollator got an empty list of rows; expected at least one sample")
        batch = self.processor(
            text=[row["text"] for row in rows],
            audio=[np.asarray(row["audio"], dtype=np.float32) for row in rows],
            video=[np.asarray(row["video"], dtype=np.float32) for row in rows],
            labels=[row["label"] for row in rows] if self.with_labels else None,
            return_tensors="pt",
        )
        if self.with_labels:
            batch["task_ids"] = self.task_ids(rows)
            # Left padding puts every label at the end: the output layer only needs the last positions (the
            # one before the first label token predicts it), which saves most of its cost on a large
            # vocabulary.
            label_columns = batch["labels"].ne(IGNORE_INDEX).any(dim=0).nonzero()
            batch["logits_to_keep"] = batch["labels"].shape[1] - int(label_columns[0]) + 1
        return batch


class EmoVerseCollator:
    """EMT records (``task``, ``query``, ``response``, ``images``/``videos``) -> EmoVerse batch.

    Args:
        processor: an ``EmoVerseProcessor``. tasks: the run's task list (``task_ids`` index into it).
        with_labels: False builds prompt-only, left-padded batches for ``generate``.
    """

    def __init__(self, processor, tasks: Sequence[str], with_labels: bool = True):
        self.processor = processor
        self.with_labels = with_labels
        self.task_ids = _TaskIds(tasks, None)

    def __call__(self, rows: Sequence[dict[str, Any]]) -> BatchFeature:
        if not rows:
            raise ValueError(
                "EmoVerseCollator got an empty list of records; expected at least one EMT record"
            )
        records = []
        for index, row in enumerate(rows):
            where = (
                f"EMT record {row['id']!r}"
                if isinstance(row, dict) and isinstance(row.get("id"), str) and row["id"]
                else f"EMT record {index}"
            )
            checked = validate_emt_record(row, where, require_response=self.with_labels)
            # Keys the processor reads beyond the EMT fields (e.g. ``video_frame_indices``) pass through;
            # absent values (None) are left out, as the processor expects.
            merged = {**row, **checked}
            records.append({key: value for key, value in merged.items() if value is not None})
        batch = self.processor.process_emt_records(records, training=self.with_labels)
        if self.with_labels:
            batch["task_ids"] = self.task_ids(rows)
        return batch
