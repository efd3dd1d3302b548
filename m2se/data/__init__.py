"""Dataset loaders for MSE-Adapter and M2SE, returning ``datasets.Dataset`` objects."""

from m2se.data.schema import EMT_FEATURES, multimodal_features
from m2se.data.synthetic import make_emt_dataset, make_multimodal_dataset

__all__ = ["EMT_FEATURES", "make_emt_dataset", "make_multimodal_dataset", "multimodal_features"]
