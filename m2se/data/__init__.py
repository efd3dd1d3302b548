"""Dataset loaders for MSE-Adapter and M2SE, returning ``datasets.Dataset`` / ``DatasetDict`` objects.

Standard multimodal row schema (MMSA and MSE-Adapter pickles, the synthetic generator):

=================  ============================================================================
``id``             str, the sample id (MMSA ``id``; ``<file stem>-<position>`` for ERC pickles)
``source``         str, the dataset (``mosei``, ``meld``, ``synthetic`` ...)
``text``           str, the utterance
``audio``          float32 (T_a, D_a), only the true-length rows (``Array2D(shape=(None, D_a))``)
``video``          float32 (T_v, D_v), likewise
``audio_length``   int, T_a
``video_length``   int, T_v
``label``          float32 for regression (MSA), ``ClassLabel`` for classification (ERC):
                   ``ds.features["label"].names`` are the label names
=================  ============================================================================

Other layouts: MELD CSVs and ECF 1.0 / 2.0 conversations (``m2se.data.conversations``), EMT / ms-swift
instruction records (``m2se.data.emt``; ``m2se.emt`` builds them and sits above this package: ``m2se.data``
imports nothing from it). Pickles load only with ``allow_pickle=True``
(``m2se.data.pickles``); ``python -m m2se.data convert`` turns one into an Arrow folder once.
"""

from m2se.data.conversations import load_ecf1, load_ecf2, load_meld, load_meld_csv
from m2se.data.emt import load_emt, validate_emt_record
from m2se.data.pickles import ERC_LABEL_NAMES, load_erc_pickle, load_mmsa_pickle
from m2se.data.schema import EMT_FEATURES, emt_dataset, multimodal_features
from m2se.data.synthetic import make_multimodal_dataset

__all__ = [
    "EMT_FEATURES",
    "ERC_LABEL_NAMES",
    "emt_dataset",
    "load_ecf1",
    "load_ecf2",
    "load_emt",
    "load_erc_pickle",
    "load_meld",
    "load_meld_csv",
    "load_mmsa_pickle",
    "make_multimodal_dataset",
    "multimodal_features",
    "validate_emt_record",
]
