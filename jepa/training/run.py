"""Training one run in its folder: check the config, skip a finished run, log to the folder, train.

`train(cfg, run_dir)` is what the Hydra app, the study launchers and the Optuna workers call.
"""

import logging
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from ..config import validate
from ..runs import RunFolder, is_done

log = logging.getLogger("jepa")


@contextmanager
def file_log(run_dir: Path):
    """Log to run_dir/train.log while the block runs, unless a handler (Hydra's) already does.

    The handler is removed after: a process that trains several runs (the local launcher, an Optuna
    worker) must not write one run's log into another's folder.
    """
    path = (run_dir / "train.log").resolve()
    root = logging.getLogger()
    if any(getattr(h, "baseFilename", None) == str(path) for h in root.handlers):
        yield
        return
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"))
    root.addHandler(handler)
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)
    try:
        yield
    finally:
        root.removeHandler(handler)
        handler.close()


class _Stop:
    """What request_stop needs: a request can come before this process's Trainer exists."""

    requested = False
    trainer = None


def request_stop(*_signal) -> None:
    """Make the run training in this process checkpoint at its next step and raise StopRequested.

    A signal handler (it only sets flags): the SLURM launcher installs it for the time-limit signal.
    """
    _Stop.requested = True
    if _Stop.trainer is not None:
        _Stop.trainer.request_stop()


def train(cfg: DictConfig, run_dir: Path | str, wrap_tracker: Callable[[Any], Any] | None = None) -> dict:
    """Validate cfg, train in run_dir, return results.json's content. Raises ConfigError on bad input.

    wrap_tracker: given the run's tracker (jepa.tracking), returns the one the trainer calls instead; the
    Optuna worker wraps it to report each epoch's metric to its trial and prune.
    """
    from ..performance import cpu_allocator
    from ..tracking import make_tracker
    from .trainer import Trainer

    validate(cfg)
    run_dir = Path(run_dir)
    folder = RunFolder(run_dir)
    previous = folder.read_results()
    if is_done(previous, cfg.training.epochs):
        log.info("%s is already done (val/mAP=%s): skipped", run_dir, previous["final"]["val/mAP"])
        return previous
    with file_log(run_dir), cpu_allocator(cfg.training.cpu_allocator):
        folder.write_config(cfg)
        config = OmegaConf.to_container(cfg, resolve=True)
        trainer = Trainer(cfg, run_dir)
        trainer.tracker = make_tracker(cfg.logging, run_dir, config, cfg.get("study"))
        if wrap_tracker is not None:
            trainer.tracker = wrap_tracker(trainer.tracker)
        _Stop.trainer = trainer
        if _Stop.requested:
            trainer.request_stop()
        try:
            return trainer.fit()
        finally:
            _Stop.trainer = None
