"""One training run: data, model, probes, optimiser, the loop, evaluation and checkpoints.

Everything a run produces goes into its run folder (docs/run_folder.md). A run started again in the same
folder resumes from checkpoints/last.pt and ends with the same metrics as an uninterrupted run.
"""

import logging
import math
import signal
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from ..data import build_datasets, make_loader
from ..performance.device import resolve_device
from ..runs import DONE, FAILED, PRUNED, RUNNING, RunFolder
from . import epoch_eval
from .environment import rng_state, seed_everything, set_rng_state
from .learner import Learner
from .progress import Progress
from .progress_log import ProgressLog
from .start import Start, resume_point

log = logging.getLogger("jepa")

INTERRUPTED = "stopped by a second SIGINT before its checkpoint: start it again to resume from the last one"


class NonFiniteLoss(RuntimeError):
    pass


class StopRequested(Exception):
    """Raised after a checkpoint when the run was asked to stop (a signal: SLURM's time limit, scancel, ...).

    `signum`: the signal that asked, when one did.
    """

    def __init__(self, message: str, signum: int | None = None):
        super().__init__(message)
        self.signum = signum


def finite_values(losses: dict[str, torch.Tensor], epoch: int, step: int) -> dict[str, float]:
    """The step's losses as floats (one device-to-host copy for all of them); NonFiniteLoss names any NaN/inf."""
    values = dict(zip(losses, torch.stack(list(losses.values())).tolist(), strict=True))
    bad = [k for k, v in values.items() if not math.isfinite(v)]
    if bad:
        raise NonFiniteLoss(f"non-finite loss at epoch {epoch} step {step}: "
                            + ", ".join(f"train/{k}={values[k]}" for k in bad))
    return values


def epoch_summary(record: dict) -> str:
    """The epoch's line in the log: training losses, and val/mAP beside copy-last when evaluated."""
    summary = " ".join(f"{k}={record[k]:.4f}" for k in ("train/loss", "train/pred", "train/vc") if k in record)
    if "val/mAP" in record:
        summary += f" val/mAP={record['val/mAP']:.4f} copy_last={record['val/copy_last/mAP']:.4f}"
    return summary


class Trainer:
    """The loop of one run in its folder: epochs of steps, evaluation, checkpoints, results, the tracker."""

    def __init__(self, cfg: DictConfig, run_dir: Path | str, tracker=None):
        self.cfg, self.folder, self.tracker = cfg, RunFolder(run_dir), tracker
        if cfg.training.threads:
            torch.set_num_threads(cfg.training.threads)
        self.device = resolve_device(cfg.training.device)
        seed_everything(cfg.seed)
        self.train_ds, self.val_ds = build_datasets(cfg.data, cfg.seed)
        self.learner = Learner(cfg, self.device)
        self.progress = Progress()
        self.stop_requested, self.stop_signal = False, None

    @property
    def global_step(self) -> int:
        return self.progress.global_step

    def request_stop(self, signum: int | None = None, *_) -> None:
        """Ask the loop to checkpoint at the next step boundary and raise StopRequested (signal-safe)."""
        self.stop_requested = True
        if isinstance(signum, int):
            self.stop_signal = signum

    def train_step(self, video: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.learner.step(video, labels)

    # ---------------------------------------------------------------- checkpoints
    def save(self) -> None:
        self.folder.save_checkpoint({
            **self.learner.state_dict(), **self.progress.state_dict(self.session_time()), "rng": rng_state(),
            "config": OmegaConf.to_container(self.cfg, resolve=True),
        })
        self.last_save = time.monotonic()

    def restore(self, ckpt: dict) -> None:
        """Continue from a checkpoint. Raises CheckpointError when it does not fit this run's model."""
        try:
            self.learner.load_state_dict(ckpt)
            self.progress = Progress.restored(ckpt)
            set_rng_state(ckpt["rng"])
        except Exception as exc:  # noqa: BLE001  (a missing entry, a wrong shape, a wrong type)
            raise self.folder.checkpoint_error(exc) from None
        # metrics.jsonl may hold an epoch written after this checkpoint's history: the checkpoint wins.
        self.folder.write_metrics(self.progress.history)

    def session_time(self) -> float:
        return time.monotonic() - self.session_start

    # ---------------------------------------------------------------- the run
    def results(self, status: str, reason: str | None = None) -> dict:
        return self.progress.results(status, reason, self.cfg, self.session_time(), self.started, self.device)

    def fit(self, start: Start | None = None) -> dict:
        """Train to the last epoch, from `start` (jepa.training.start; by default the folder's checkpoint when
        training.resume)."""
        self.session_start = self.last_save = time.monotonic()
        self.started = datetime.now(timezone.utc).isoformat(timespec="seconds")
        start = start if start is not None else resume_point(self.cfg, self.folder, self.folder.read_results_or_none())
        if start.checkpoint is not None:
            self.restore(start.checkpoint)
            p = self.progress
            log.info("resumed from %s at epoch %d batch %d (step %d)", self.folder.checkpoint,
                     p.epoch, p.batch, p.global_step)
        if start.previous is not None:
            self.progress.count_restart(start.previous)
            self.started = start.previous.get("started") or self.started
        self.folder.write_results(self.results(RUNNING))
        steps_per_epoch = math.ceil(len(self.train_ds) / self.cfg.data.batch_size)
        self.progress_log = ProgressLog(self.cfg.training.progress_minutes, steps_per_epoch * self.cfg.training.epochs,
                                        self.cfg.training.epochs, self.device.type)
        try:
            while self.progress.epoch < self.cfg.training.epochs:
                self.run_epoch()
            if not self.folder.gif.exists():  # a run resumed after its last epoch's checkpoint
                self.write_gif()
        except StopRequested as exc:  # checkpointed: still running, to be resumed
            self.folder.record_end(RUNNING, str(exc), self.results(RUNNING, str(exc)))
            raise
        except KeyboardInterrupt:  # a second Ctrl-C before the requested checkpoint: the last one stands
            self.folder.record_end(RUNNING, INTERRUPTED, self.results(RUNNING, INTERRUPTED))
            raise
        except BaseException as exc:
            # An exception may name the status it ends the run with (the Optuna worker's Pruned: "pruned").
            status, reason = getattr(exc, "run_status", FAILED), f"{type(exc).__name__}: {exc}"
            log.log(logging.INFO if status == PRUNED else logging.ERROR, "run %s: %s", status, reason)
            self.folder.record_end(status, reason, self.results(status, reason))
            if self.tracker:
                self.tracker.finish(status, reason)
            raise
        results = self.folder.record_end(DONE, None, self.results(DONE))
        if self.tracker:
            self.tracker.finish(DONE)
        log.info("done: val/mAP=%.4f in %.0fs", results["final"]["val/mAP"], results["wall_time_s"])
        return results

    def run_epoch(self) -> None:
        cfg, p = self.cfg, self.progress
        epoch_index = p.epoch  # 0-based index of the epoch being trained
        # The last partial batch is trained, as in the published protocol: ceil(n / batch_size) steps an epoch.
        loader = make_loader(self.train_ds, cfg.data.batch_size, shuffle=True, seed=cfg.seed, epoch=epoch_index,
                             start_batch=p.batch, num_workers=cfg.data.num_workers, drop_last=False,
                             pin_memory=self.device.type == "cuda")
        bar = tqdm(epoch_eval.device_batches(loader, self.device), total=len(loader) + p.batch, initial=p.batch,
                   leave=False, desc=f"epoch {epoch_index + 1}/{cfg.training.epochs}",
                   disable=None if cfg.training.progress else True)
        start, sequences = time.monotonic(), 0
        self.progress_log.lines = bool(bar.disable)  # no bar (no terminal): log lines instead
        self.progress_log.epoch_start()
        for video, labels in bar:
            values = finite_values(self.train_step(video, labels), epoch_index + 1, p.global_step + 1)
            p.add_step(values)
            sequences += len(video)
            self.progress_log.step(epoch_index + 1, p.global_step, values["loss"], len(video))
            bar.set_postfix(loss=f"{values['loss']:.3f}", pred=f"{values['pred']:.3f}", vc=f"{values['vc']:.3f}")
            if self.stop_requested:
                self.save()
                by = f" by {signal.Signals(self.stop_signal).name}" if self.stop_signal else ""
                raise StopRequested(f"stopped{by} at epoch {epoch_index + 1} batch {p.batch}, checkpointed: start "
                                    "it again to resume", self.stop_signal)
            if time.monotonic() - self.last_save > cfg.training.checkpoint_minutes * 60:
                self.save()
                self.folder.write_results(self.results(RUNNING))  # the time spent so far, should it die now
        self.end_epoch(time.monotonic() - start, sequences)

    def end_epoch(self, train_s: float, sequences: int) -> None:
        """Evaluate when due, record the epoch, checkpoint, write metrics, GIF and results, log."""
        cfg, p = self.cfg, self.progress
        epoch = p.epoch + 1
        last = epoch == cfg.training.epochs
        record = {"epoch": epoch, "global_step": p.global_step, **p.mean_losses()}
        eval_s = 0.0
        if epoch % cfg.training.eval_every == 0 or last:
            start = time.monotonic()
            record.update(epoch_eval.evaluate(*self.learner.modules, self.val_ds, cfg.data, cfg.seed, self.device,
                                              self.learner.autocast()))
            eval_s = time.monotonic() - start
        record.update({"time/train_s": train_s, "time/eval_s": eval_s, "time/epoch_s": train_s + eval_s,
                       "time/seq_per_s": sequences / train_s if train_s > 0 else None})
        p.end_epoch(record)
        self.save()
        self.folder.write_metrics(p.history)
        if last or (cfg.training.gif_every and epoch % cfg.training.gif_every == 0):
            self.write_gif()
            if self.tracker:
                self.tracker.log_gif(self.folder.gif, epoch)
        if self.tracker:
            self.tracker.log_epoch(record)
        self.folder.write_results(self.results(RUNNING))
        log.info("epoch %d/%d %s (%.0fs)", epoch, cfg.training.epochs, epoch_summary(record), train_s + eval_s)

    def write_gif(self) -> Path:
        return epoch_eval.write_gif(*self.learner.modules, self.val_ds, self.device, self.folder.gif)
