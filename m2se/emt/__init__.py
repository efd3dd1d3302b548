"""The M2SE EMT (emotion multitask) instruction-data builder: templates, builders, stage mixtures."""
