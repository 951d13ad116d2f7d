"""wandb tracking: the run's tracker (jepa.tracking.wandb_run) and the replay of run folders into wandb
(`python -m jepa.tracking.replay`)."""

from .wandb_run import NullTracker, WandbTracker, make_tracker

__all__ = ["NullTracker", "WandbTracker", "make_tracker"]
