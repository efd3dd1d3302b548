"""`evaluate` module `msa_regression`: `evaluate.load(<this folder>)` runs offline (needs `m2se` installed).

The metric class lives in `m2se.metrics.evaluate_modules`; evaluate uses the first metric class found here.
"""

from m2se.metrics.evaluate_modules import MsaRegression  # noqa: F401
