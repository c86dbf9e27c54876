"""The trainer (issue 18 section 5, issue 19): configuration, masked SGD, the step (plain / static / CUDA graph)
and the run in named phases. `prunebench.library.train` re-exports the public names."""
from prunebench.library.training.config import SCHEDULES, TrainConfig
from prunebench.library.training.optim import MaskedSGD, MaskEnforcer
from prunebench.library.training.step import STEP_MODES, GraphStep, Stepper
from prunebench.library.training.trainer import Trainer, evaluate, train

__all__ = ["SCHEDULES", "STEP_MODES", "TrainConfig", "MaskedSGD", "MaskEnforcer", "GraphStep", "Stepper", "Trainer",
           "evaluate", "train"]
