"""Training one run: the loop (Trainer), its progress, validation, and the entry `train(cfg, run_dir)`."""

from .session import request_stop, train
from .trainer import NonFiniteLoss, StopRequested, Trainer

__all__ = ["NonFiniteLoss", "StopRequested", "Trainer", "request_stop", "train"]
