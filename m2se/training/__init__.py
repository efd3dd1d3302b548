"""Training support for ``train_m2se.py``: recipes, curriculum data, task-aware loss and evaluation."""
