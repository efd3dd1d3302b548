"""Trainer callbacks of the project (``M2SECurriculumCallback``: the M2SE stage schedule)."""

from trainer_callbacks.curriculum import CURRICULUM_FILE, M2SECurriculumCallback, StageWarmupCosine

__all__ = ["CURRICULUM_FILE", "M2SECurriculumCallback", "StageWarmupCosine"]
