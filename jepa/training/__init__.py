"""Training one run: how it starts in its folder (start.py), one start (`train(cfg, run_dir)`, session.py), the
loop (Trainer), its step (Learner), its progress and its per-epoch evaluation."""

from .session import request_stop, train
from .trainer import NonFiniteLoss, StopRequested, Trainer

__all__ = ["NonFiniteLoss", "StopRequested", "Trainer", "request_stop", "train"]
