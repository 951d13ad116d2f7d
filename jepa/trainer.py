"""One training run: data, model, probes, optimiser, the loop, evaluation and checkpoints.

Everything a run produces goes into its run folder (docs/run_folder.md). A run started again in the same
folder resumes from checkpoints/last.pt and ends with the same metrics as an uninterrupted run.
"""

import logging
import math
import platform
import random
import subprocess
import time
from contextlib import nullcontext
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from . import __version__
from .data import build_datasets, make_loader
from .evaluation import Evaluator
from .losses import match_reference_bn_updates, training_losses
from .models import DetectionHead, PixelDecoder, VideoJEPA
from .run_folder import RunFolder
from .speed import apply_speed_options
from .visualize import write_rollout_gif

log = logging.getLogger("jepa")

GIF_VIDEOS = 8


class NonFiniteLoss(RuntimeError):
    pass


class StopRequested(Exception):
    """Raised after a checkpoint when the run was asked to stop (e.g. a SLURM time-limit signal)."""


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def to_model_layout(video: torch.Tensor) -> torch.Tensor:
    """Data gives [B, C, T, H, W] (SPEC notation); the model folds time next to batch: [B, T, C, H, W]."""
    return video.transpose(1, 2).contiguous()


def versions() -> dict:
    try:
        root = Path(__file__).resolve().parent.parent
        git = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5
        ).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        git = None
    return {"python": platform.python_version(), "torch": torch.__version__, "jepa": __version__, "git": git}


class Trainer:
    def __init__(self, cfg: DictConfig, run_dir: Path | str, tracker=None):
        self.cfg = cfg
        self.folder = RunFolder(run_dir)
        self.tracker = tracker
        t = cfg.training
        if t.threads:
            torch.set_num_threads(t.threads)
        self.device = resolve_device(t.device)
        self.seed_everything(cfg.seed)

        self.train_ds, self.val_ds = build_datasets(cfg.data, cfg.seed)
        m, d = cfg.model, cfg.data
        self.model = VideoJEPA(m.dobs, m.henc, m.hpre, m.dstc, list(m.encoder_strides))
        self.head = DetectionHead(m.dstc, m.hpre)
        self.decoder = PixelDecoder(m.dstc, m.dobs, d.image_size)
        match_reference_bn_updates(self.model.encoder)
        for module in self.modules:
            module.to(self.device)
        apply_speed_options(self.model, self.head, self.decoder, t)
        lr = cfg.optim.lr
        self.optimizer = torch.optim.Adam(
            [
                {"params": self.model.parameters(), "lr": lr},
                {"params": self.head.parameters(), "lr": lr},
                {"params": self.decoder.parameters(), "lr": lr * cfg.optim.decoder_lr_scale},
            ]
        )
        self.amp_dtype = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}[t.precision]
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=t.precision == "fp16")

        self.epoch = 0  # completed epochs
        self.batch = 0  # batches done in the current epoch
        self.global_step = 0
        self.sums: dict[str, float] = {}
        self.history: list[dict] = []
        self.elapsed = 0.0  # wall seconds spent in earlier sessions of this run
        self.resumed = 0
        self.stop_requested = False

    @property
    def modules(self):
        return (self.model, self.head, self.decoder)

    @staticmethod
    def seed_everything(seed: int) -> None:
        random.seed(seed)
        np.random.seed(seed % 2**32)
        torch.manual_seed(seed)

    def autocast(self):
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def request_stop(self, *_) -> None:
        """Ask the loop to checkpoint at the next step boundary and raise StopRequested (signal-safe)."""
        self.stop_requested = True

    # ---------------------------------------------------------------- one step
    def train_step(self, video: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """video [B, T, C, H, W], labels [B, T, 8, 8]; returns the step's losses (detached)."""
        cfg = self.cfg
        for module in self.modules:
            module.train()
        with self.autocast():
            losses = training_losses(self.model, self.head, self.decoder, video, labels, cfg.model.steps,
                                     cfg.loss.std_coeff, cfg.loss.cov_coeff, fast=cfg.training.mode == "fast")
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(losses.pop("total")).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return {k: v.detach().float() for k, v in losses.items()}

    # ---------------------------------------------------------------- evaluation
    def batches(self, loader):
        for video, labels in loader:
            yield (to_model_layout(video).to(self.device, non_blocking=True),
                   labels.to(self.device, non_blocking=True))

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        for module in self.modules:
            module.eval()
        evaluator = Evaluator(self.cfg.data.frames)
        loader = make_loader(self.val_ds, self.cfg.data.batch_size, shuffle=False, seed=self.cfg.seed,
                             epoch=0, start_batch=0, num_workers=self.cfg.data.num_workers)
        with self.autocast():
            for video, labels in self.batches(loader):
                evaluator.add_batch(self.model, self.head, self.decoder, video, labels)
        return evaluator.metrics()

    def write_gif(self) -> Path:
        for module in self.modules:
            module.eval()
        video = torch.stack([self.val_ds[i][0] for i in range(min(GIF_VIDEOS, len(self.val_ds)))])
        return write_rollout_gif(self.model, self.head, self.decoder,
                                 to_model_layout(video).to(self.device), self.folder.gif)

    # ---------------------------------------------------------------- checkpoints
    def state(self) -> dict:
        return {
            "model": self.model.state_dict(), "head": self.head.state_dict(), "decoder": self.decoder.state_dict(),
            "optimizer": self.optimizer.state_dict(), "scaler": self.scaler.state_dict(),
            "epoch": self.epoch, "batch": self.batch, "global_step": self.global_step, "sums": self.sums,
            "history": self.history, "elapsed": self.elapsed + self.session_time(), "resumed": self.resumed,
            "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate(),
                    "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None},
            "config": OmegaConf.to_container(self.cfg, resolve=True),
        }

    def save(self) -> None:
        self.folder.save_checkpoint(self.state())
        self.last_save = time.monotonic()

    def restore(self, ckpt: dict) -> None:
        self.model.load_state_dict(ckpt["model"])
        self.head.load_state_dict(ckpt["head"])
        self.decoder.load_state_dict(ckpt["decoder"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scaler.load_state_dict(ckpt["scaler"])
        self.epoch, self.batch, self.global_step = ckpt["epoch"], ckpt["batch"], ckpt["global_step"]
        self.sums, self.history, self.elapsed = ckpt["sums"], ckpt["history"], ckpt["elapsed"]
        self.resumed = ckpt["resumed"] + 1
        rng = ckpt["rng"]
        torch.set_rng_state(rng["torch"])
        np.random.set_state(rng["numpy"])
        random.setstate(rng["python"])
        if rng["cuda"] is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        # metrics.jsonl may hold an epoch written after this checkpoint's history: the checkpoint wins.
        self.folder.write_metrics(self.history)

    def session_time(self) -> float:
        return time.monotonic() - self.session_start

    # ---------------------------------------------------------------- the run
    def results(self, status: str, reason: str | None = None) -> dict:
        best = max(self.history, key=lambda r: r.get("val/mAP", float("-inf")), default=None)
        return {
            "status": status, "reason": reason, "seed": self.cfg.seed, "epochs": self.cfg.training.epochs,
            "epochs_completed": self.epoch, "global_step": self.global_step,
            "final": self.history[-1] if self.history else None, "best": best,
            "wall_time_s": round(self.elapsed + self.session_time(), 3), "started": self.started,
            "finished": None if status == "running" else datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "resumed": self.resumed, "versions": versions(), "device": str(self.device),
        }

    def fit(self) -> dict:
        self.session_start = self.last_save = time.monotonic()
        self.started = datetime.now(timezone.utc).isoformat(timespec="seconds")
        previous = self.folder.read_results()
        if self.cfg.training.resume and (ckpt := self.folder.load_checkpoint(self.device)) is not None:
            self.restore(ckpt)
            self.started = (previous or {}).get("started", self.started)
            log.info("resumed from %s at epoch %d batch %d (step %d)", self.folder.checkpoint,
                     self.epoch, self.batch, self.global_step)
        self.folder.write_results(self.results("running"))
        try:
            while self.epoch < self.cfg.training.epochs:
                self.run_epoch()
            if not self.folder.gif.exists():  # a run resumed after its last epoch's checkpoint
                self.write_gif()
        except StopRequested:
            self.folder.write_results(self.results("running", "stopped to be requeued"))
            raise
        except BaseException as exc:
            # An exception may name the status it ends the run with (the Optuna worker's Pruned: "pruned").
            status, reason = getattr(exc, "run_status", "failed"), f"{type(exc).__name__}: {exc}"
            log.log(logging.INFO if status == "pruned" else logging.ERROR, "run %s: %s", status, reason)
            self.folder.write_results(self.results(status, reason))
            if self.tracker:
                self.tracker.finish("failed", reason)
            raise
        results = self.results("done")
        self.folder.write_results(results)
        if self.tracker:
            self.tracker.finish("done")
        log.info("done: val/mAP=%.4f in %.0fs", results["final"]["val/mAP"], results["wall_time_s"])
        return results

    def run_epoch(self) -> None:
        cfg = self.cfg
        epoch_index = self.epoch  # 0-based index of the epoch being trained
        # The last partial batch is trained, as in the reference: ceil(n / batch_size) steps an epoch.
        loader = make_loader(self.train_ds, cfg.data.batch_size, shuffle=True, seed=cfg.seed, epoch=epoch_index,
                             start_batch=self.batch, num_workers=cfg.data.num_workers, drop_last=False)
        total = len(loader) + self.batch
        bar = tqdm(self.batches(loader), total=total, initial=self.batch, leave=False,
                   desc=f"epoch {epoch_index + 1}/{cfg.training.epochs}",
                   disable=None if cfg.training.progress else True)
        start = time.monotonic()
        sequences = 0
        for video, labels in bar:
            losses = self.train_step(video, labels)
            values = {k: v.item() for k, v in losses.items()}
            bad = [k for k, v in values.items() if not math.isfinite(v)]
            if bad:
                raise NonFiniteLoss(
                    f"non-finite loss at epoch {epoch_index + 1} step {self.global_step + 1}: "
                    + ", ".join(f"train/{k}={values[k]}" for k in bad)
                )
            for k, v in values.items():
                self.sums[k] = self.sums.get(k, 0.0) + v
            self.batch += 1
            self.global_step += 1
            sequences += len(video)
            bar.set_postfix(loss=f"{values['loss']:.3f}", pred=f"{values['pred']:.3f}", vc=f"{values['vc']:.3f}")
            if self.stop_requested:
                self.save()
                raise StopRequested(f"stopped at epoch {epoch_index + 1} batch {self.batch}")
            if time.monotonic() - self.last_save > cfg.training.checkpoint_minutes * 60:
                self.save()
        train_s = time.monotonic() - start
        record = {"epoch": epoch_index + 1, "global_step": self.global_step}
        record.update({f"train/{k}": v / max(self.batch, 1) for k, v in self.sums.items()})
        eval_s = 0.0
        last = epoch_index + 1 == cfg.training.epochs
        if (epoch_index + 1) % cfg.training.eval_every == 0 or last:
            start = time.monotonic()
            record.update(self.evaluate())
            eval_s = time.monotonic() - start
        record.update({"time/train_s": train_s, "time/eval_s": eval_s, "time/epoch_s": train_s + eval_s,
                       "time/seq_per_s": sequences / train_s if train_s > 0 else None})
        self.history.append(record)
        self.epoch, self.batch, self.sums = epoch_index + 1, 0, {}
        self.save()
        self.folder.write_metrics(self.history)
        gif_every = cfg.training.gif_every
        if last or (gif_every and self.epoch % gif_every == 0):
            self.write_gif()
            if self.tracker:
                self.tracker.log_gif(self.folder.gif, self.epoch)
        if self.tracker:
            self.tracker.log_epoch(record)
        self.folder.write_results(self.results("running"))
        summary = " ".join(f"{k}={record[k]:.4f}" for k in ("train/loss", "train/pred", "train/vc") if k in record)
        if "val/mAP" in record:
            summary += f" val/mAP={record['val/mAP']:.4f} copy_last={record['val/copy_last/mAP']:.4f}"
        log.info("epoch %d/%d %s (%.0fs)", self.epoch, cfg.training.epochs, summary, train_s + eval_s)
