"""Raw media -> MSE-Adapter features at dataset scale (``python -m m2se.features extract``).

The extractors are the Hub remote code of ``feature_extraction_mse_adapter``; this package runs them
over a manifest of clips with ``datasets.map`` and writes the Arrow folder ``m2se.data`` loads for training.
"""

from m2se.features.extract import ExtractionReport, extract_features, is_feature_folder, read_manifest

__all__ = ["ExtractionReport", "extract_features", "is_feature_folder", "read_manifest"]
