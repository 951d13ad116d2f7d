"""One start of a run in its folder: check the config, lock the folder, decide how it starts (jepa.training.start:
skip a finished run, resume its checkpoint or refuse), log to the folder, turn terminating signals into
checkpointed stops, train.

`train(cfg, run_dir)` is what the Hydra app, the study launchers and the Optuna workers call.
"""

import logging
import signal
import threading
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from ..config import validate
from ..performance import cpu_allocator
from ..performance.device import resolve_device
from ..runs import FAILED, CheckpointError, RunFolder, RunFolderError, RunLock, is_disk_full, read_metrics
from ..tracking import make_tracker
from .start import SKIP, decide_start, record_start
from .trainer import Trainer

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
    signum = None
    trainer = None


def request_stop(signum=None, _frame=None) -> None:
    """Make the run training in this process checkpoint at its next step and raise StopRequested.

    A signal handler (it only sets flags): train() installs it for the terminating signals, the SLURM
    launcher for the time-limit signal.
    """
    _Stop.requested = True
    if isinstance(signum, int):
        _Stop.signum = signum
    if _Stop.trainer is not None:
        _Stop.trainer.request_stop(signum)


# Signals that end a process by default and that a run turns into "checkpoint, record why, stop".
STOP_SIGNALS = tuple(s for s in (getattr(signal, n, None) for n in ("SIGTERM", "SIGHUP", "SIGUSR1", "SIGUSR2"))
                     if s is not None)


def interrupt(signum, frame) -> None:
    """SIGINT (Ctrl-C): the first requests a checkpointed stop like SIGTERM; a second, before that stop is
    reached, stops at once (KeyboardInterrupt: the run keeps its last checkpoint)."""
    if _Stop.requested and _Stop.signum == signal.SIGINT:
        raise KeyboardInterrupt
    request_stop(signum, frame)


@contextmanager
def stop_on_signals():
    """While the block runs, SIGTERM, SIGHUP, SIGUSR1, SIGUSR2 and SIGINT (Ctrl-C; a second one stops at once)
    request a checkpointed stop; the previous handlers are restored after. SIGUSR2 is left to a handler already
    set (in a study launcher's job it is the time-limit signal: checkpoint, then requeue). SIGTERM replaces
    submitit's, which ignores it: on scancel or a preemption the run checkpoints and records why, and the job
    ends without requeueing itself (SLURM's own requeue or a sweep relaunch resumes it). Only the main thread
    can set handlers: elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signal.SIGINT: signal.getsignal(signal.SIGINT)}
    signal.signal(signal.SIGINT, interrupt)
    for sig in STOP_SIGNALS:
        current = signal.getsignal(sig)
        if sig == getattr(signal, "SIGUSR2", None) and current not in (signal.SIG_DFL, None):
            continue
        previous[sig] = current
        signal.signal(sig, request_stop)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


def repair_finished(folder: RunFolder, results: dict) -> None:
    """A finished run's metrics.jsonl rebuilt from its checkpoint when it lost epochs (emptied, truncated)."""
    metrics = read_metrics(folder.metrics)
    if len(metrics.records) >= results["epochs_completed"] and not metrics.bad_lines:
        return
    try:
        ckpt = folder.load_checkpoint("cpu")
    except RunFolderError as exc:
        log.warning("%s holds %d of %d epochs and cannot be rebuilt: %s", folder.metrics, len(metrics.records),
                    results["epochs_completed"], exc)
        return
    history = (ckpt or {}).get("history")
    if isinstance(history, list) and len(history) >= len(metrics.records):
        folder.write_metrics(history)
        log.warning("%s held %d of %d epochs (%d bad lines): rebuilt from %s", folder.metrics,
                    len(metrics.records), results["epochs_completed"], metrics.bad_lines, folder.checkpoint)


def checkpoint_size(folder: RunFolder, trainer: Trainer | None) -> int:
    """The bytes the run's next checkpoint takes: the last one's size, else its tensors' (model, optimiser)."""
    if folder.checkpoint.is_file():
        return folder.checkpoint.stat().st_size
    if trainer is None:
        return 0
    import torch  # the trainer exists: torch is loaded

    def size(value) -> int:
        if isinstance(value, torch.Tensor):
            return value.nelement() * value.element_size()
        if isinstance(value, dict):
            return sum(size(v) for v in value.values())
        return sum(size(v) for v in value) if isinstance(value, (list, tuple)) else 0

    return size(trainer.learner.state_dict())


def set_up(cfg: DictConfig, folder: RunFolder, wrap_tracker: Callable[[Any], Any] | None) -> Trainer:
    """The run's trainer: model, data sets and tracker. A start that fails here (a data file missing or
    refused, a tracker that cannot start) never trained: results.json says failed, with the reason, instead of
    the `running` its start recorded."""
    try:
        trainer = Trainer(cfg, folder.path)
        config = OmegaConf.to_container(cfg, resolve=True)
        trainer.tracker = make_tracker(cfg.logging, folder.path, config, cfg.get("study"))
        if wrap_tracker is not None:
            trainer.tracker = wrap_tracker(trainer.tracker)
        return trainer
    except Exception as exc:
        folder.record_end(FAILED, f"{type(exc).__name__}: {exc}")
        raise


def train(cfg: DictConfig, run_dir: Path | str, wrap_tracker: Callable[[Any], Any] | None = None) -> dict:
    """Validate cfg, train in run_dir, return results.json's content.

    Raises ConfigError on bad input (a resume under a changed config included), RunLocked when another live
    process trains in run_dir (nothing is touched), CheckpointError when the checkpoint cannot be resumed
    (results.json then says failed, with the way out), DiskFull when the disk is full (failed, with the space
    needed), StopRequested after a signal's checkpointed stop.

    wrap_tracker: given the run's tracker (jepa.tracking), returns the one the trainer calls instead; the
    Optuna worker wraps it to report each epoch's metric to its trial and prune.
    """
    validate(cfg)
    resolve_device(cfg.training.device)  # a CUDA device this machine lacks is a configuration error
    run_dir = Path(run_dir)
    folder = RunFolder(run_dir)
    with RunLock(run_dir), file_log(run_dir):
        log.info("run folder: %s", run_dir.resolve())
        folder.remove_stale_temporaries()
        start = decide_start(cfg, folder)
        if start.action == SKIP:
            repair_finished(folder, start.previous)
            log.info("%s is already done (val/mAP=%s): skipped", run_dir, start.previous["final"].get("val/mAP"))
            return start.previous
        with cpu_allocator(cfg.training.cpu_allocator), stop_on_signals():
            trainer = None
            try:
                folder.write_config(cfg)
                record_start(folder, start)  # counted before the data set-up, which a kill may interrupt
                trainer = set_up(cfg, folder, wrap_tracker)
                _Stop.trainer = trainer
                if _Stop.requested:
                    trainer.request_stop(_Stop.signum)
                return trainer.fit(start)
            except CheckpointError as exc:  # it loaded but does not fit the model
                folder.record_end(FAILED, str(exc))
                raise
            except (OSError, RuntimeError) as exc:  # a full disk: one line saying how much space, then resume
                if not is_disk_full(exc):
                    raise
                raise folder.disk_full(checkpoint_size(folder, trainer)) from None
            finally:
                _Stop.trainer = None
                _Stop.requested, _Stop.signum = False, None
