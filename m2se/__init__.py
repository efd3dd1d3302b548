"""m2se: data, metrics, EMT builder and training helpers for MSE-Adapter and M2SE/EmoVerse.

The models themselves live in the flat Hub remote-code modules (``modeling_mse_adapter``,
``modeling_emoverse`` ...); this package holds everything that is not shipped with a checkpoint.
"""

__version__ = "0.1.0"
