"""`evaluate` module `ecpe`: `evaluate.load(<this folder>)` runs offline (needs `m2se` installed).

The metric class lives in `m2se.metrics.evaluate_modules`; evaluate uses the first metric class found here.
The `From:` comment is what evaluate's error message tells users to pip-install when `m2se` is missing.
"""

from m2se.metrics.evaluate_modules import Ecpe  # From: m2se-hf

__all__ = ["Ecpe"]
