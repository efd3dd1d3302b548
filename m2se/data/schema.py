"""Column schemas shared by every loader, the synthetic generators and the EMT builder."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import datasets
import pyarrow as pa
from datasets.table import InMemoryTable


def multimodal_features(
    audio_dim: int, video_dim: int, label_names: Sequence[str] | None = None
) -> datasets.Features:
    """The standard multimodal row schema.

    ``audio`` (T_a, D_a) and ``video`` (T_v, D_v) are float32 arrays with a variable first axis that hold only
    the true-length rows (``audio_length == T_a``). ``label`` is float32 for regression datasets and a
    ``ClassLabel`` for classification datasets, so ``ds.features["label"].names`` gives the label names.
    """
    label = datasets.Value("float32") if label_names is None else datasets.ClassLabel(names=list(label_names))
    return datasets.Features(
        {
            "id": datasets.Value("string"),
            "source": datasets.Value("string"),
            "text": datasets.Value("string"),
            "audio": datasets.Array2D(shape=(None, audio_dim), dtype="float32"),
            "video": datasets.Array2D(shape=(None, video_dim), dtype="float32"),
            "audio_length": datasets.Value("int32"),
            "video_length": datasets.Value("int32"),
            "label": label,
        }
    )


EMT_FEATURES = datasets.Features(
    {
        "id": datasets.Value("string"),
        "task": datasets.Value("string"),
        "query": datasets.Value("string"),
        "response": datasets.Value("string"),
        "images": datasets.List(datasets.Value("string")),
        "videos": datasets.List(datasets.Value("string")),
        "system": datasets.Value("string"),
    }
)
"""EMT rows: ``images``/``videos`` are lists of paths (empty when absent); ``system`` may be None."""


def emt_dataset(rows: Sequence[Mapping[str, Any]]) -> datasets.Dataset:
    """EMT rows (dicts with every ``EMT_FEATURES`` key) -> ``Dataset`` (an empty list gives an empty one)."""
    # Straight to Arrow: Dataset.from_dict would re-encode every nested value (about 4x slower here).
    table = pa.Table.from_pydict(
        {key: [row[key] for row in rows] for key in EMT_FEATURES}, schema=EMT_FEATURES.arrow_schema
    )
    return datasets.Dataset(InMemoryTable(table), info=datasets.DatasetInfo(features=EMT_FEATURES))
