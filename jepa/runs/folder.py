"""Reading and writing a run folder (layout in docs/run_folder.md). Every write is atomic."""

import errno
import json
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from ..atomic_write import atomic_write
from .status import DONE, FAILED, INVALID, STATUSES

log = logging.getLogger(__name__)

CONFIG, METRICS, RESULTS = "config.yaml", "metrics.jsonl", "results.json"
CHECKPOINT, GIF, LOG = "checkpoints/last.pt", "rollout.gif", "train.log"
CONFIG_CHANGES = "config_changes.jsonl"  # one line per resume that changed the config (docs/run_folder.md)


class RunFolderError(RuntimeError):
    """A file of a run folder that cannot be read. The message names the file and the way out."""


class DiskFull(RunFolderError):
    """A write to a run folder failed for want of space (ENOSPC, a quota). The message says how much is needed."""


def is_disk_full(exc: BaseException | None) -> bool:
    """Whether exc, or an error it was raised from (torch.save's RuntimeError wraps the OSError), is ENOSPC."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _mb(size: int) -> str:
    return f"{size / 2**20:.1f} MiB"


class CheckpointError(RunFolderError):
    """checkpoints/last.pt cannot be loaded (truncated, not a checkpoint, another model's, unsafe)."""


_NUMBER = (int, float)
FIELD_TYPES = {  # results.json's fields (docs/run_folder.md) and the types they may hold when present
    "reason": (str,), "seed": (int,), "epochs": (int,), "epochs_completed": (int,), "global_step": (int,),
    "final": (dict,), "best": (dict,), "wall_time_s": _NUMBER, "started": (str,), "finished": (str,),
    "resumed": (int,), "device": (str,),
}


def _wrongly_typed(results: dict) -> str | None:
    """The first field of results.json holding a value of the wrong type (`"resumed": "3"`), else None."""
    for key, types in FIELD_TYPES.items():
        value = results.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, types)):
            return f"{key} {value!r} is not {' or '.join(t.__name__ for t in types)}"
    return None


def results_problem(results: Any) -> str | None:
    """What is wrong with the content of a results.json, or None when it has the shape every tool reads."""
    if not isinstance(results, dict):
        return f"a JSON {type(results).__name__}, not an object"
    if results.get("status") not in STATUSES:
        return f"status {results.get('status')!r} is not one of {', '.join(STATUSES)}"
    if (wrong := _wrongly_typed(results)) is not None:
        return wrong
    if results["status"] == DONE and not (isinstance(results.get("epochs_completed"), int)
                                          and isinstance(results.get("final"), dict)):
        return "status done without epochs_completed and final"
    return None


def _json_bytes(obj: Any) -> bytes:
    return json.dumps(obj, indent=2, sort_keys=False, allow_nan=True).encode() + b"\n"


try:  # orjson parses metrics.jsonl about 3x faster; the standard library also reads NaN literals
    from orjson import loads as _fast_loads
except ImportError:  # pragma: no cover - orjson is optional
    _fast_loads = json.loads


@dataclass
class Metrics:
    """metrics.jsonl as read: one record per epoch in epoch order, and the lines that were not records."""

    records: list[dict] = field(default_factory=list)
    bad_lines: int = 0


def read_metrics(path: Path | str) -> Metrics:
    """Read a metrics.jsonl (or the one in a run folder). Never raises for bad content.

    An epoch written twice (a restart that redid it) keeps its last record; a line that is not a JSON object
    with an integer `epoch` (a write torn by a crash) is counted in `bad_lines` and skipped.
    """
    path = Path(path)
    if path.is_dir():
        path = path / METRICS
    if not path.is_file():
        return Metrics()
    by_epoch, bad = {}, 0
    with open(path, "rb") as f:
        for line in f:
            if not line.strip():
                continue
            try:
                record = _fast_loads(line)
            except ValueError:
                try:
                    record = json.loads(line)  # NaN / Infinity literals
                except ValueError:
                    record = None
            epoch = record.get("epoch") if isinstance(record, dict) else None
            if not isinstance(epoch, (int, float)) or isinstance(epoch, bool) or epoch != int(epoch):
                bad += 1
                continue
            by_epoch[int(epoch)] = record
    if bad:
        log.warning("%s: %d line(s) are not epoch records (a torn write?); skipped", path, bad)
    return Metrics([by_epoch[e] for e in sorted(by_epoch)], bad)


def _numpy_array_globals() -> list:
    """What unpickling a plain numpy array needs (checkpoints written before RNG states were stored as tensors
    hold numpy's state as an array). Rebuilding an array of numbers runs no code of the file's choosing."""
    import numpy as np  # only for an old checkpoint: readers of run folders need neither numpy nor torch

    core = getattr(np, "_core", None) or np.core
    return [core.multiarray._reconstruct, np.ndarray, np.dtype, type(np.dtype(np.uint32))]


@dataclass(frozen=True)
class FolderState:
    """A run's state as its folder says it: status one of STATUSES, INVALID (results.json unreadable or
    wrongly shaped: `reason` names the file and the way out) or None (no results.json: never started)."""

    status: str | None
    reason: str | None
    results: dict | None


def folder_state(run_dir: Path | str) -> FolderState:
    """The one reading of a run's state from its folder (results.json), without creating the folder: what
    `python -m jepa.studies status`, the study launchers and a start of the run go by."""
    path = Path(run_dir) / RESULTS
    try:
        results = json.loads(path.read_bytes())
    except FileNotFoundError:
        return FolderState(None, None, None)
    except (OSError, ValueError) as exc:
        problem = f"{type(exc).__name__}: {exc}"
    else:
        if (problem := results_problem(results)) is None:
            return FolderState(results["status"], results.get("reason"), results)
    return FolderState(INVALID, f"{path} is unreadable ({problem}): move it aside or delete it; starting the run "
                                "again rebuilds it from checkpoints/last.pt", None)


class RunFolder:
    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)

    config = property(lambda self: self.path / CONFIG)
    metrics = property(lambda self: self.path / METRICS)
    results = property(lambda self: self.path / RESULTS)
    checkpoint = property(lambda self: self.path / CHECKPOINT)
    gif = property(lambda self: self.path / GIF)
    log = property(lambda self: self.path / LOG)

    def write_config(self, cfg: DictConfig) -> None:
        text = OmegaConf.to_yaml(cfg, resolve=True).encode()
        atomic_write(self.config, lambda f: f.write(text))

    def write_metrics(self, records: list[dict]) -> None:
        """Rewrite metrics.jsonl from the full history (the checkpoint holds it, so a resume can repair it)."""
        text = b"".join(json.dumps(r).encode() + b"\n" for r in records)
        atomic_write(self.metrics, lambda f: f.write(text))

    def read_metrics(self) -> list[dict]:
        return read_metrics(self.metrics).records

    def write_results(self, results: dict) -> None:
        data = _json_bytes(results)
        atomic_write(self.results, lambda f: f.write(data))

    def read_results(self) -> dict | None:
        """results.json's content; None when there is none. Raises RunFolderError (naming the file and the way
        out) when it cannot be read or lacks the shape every tool relies on."""
        state = folder_state(self.path)
        if state.status == INVALID:
            raise RunFolderError(state.reason)
        return state.results

    def read_results_or_none(self) -> dict | None:
        """read_results, with an unreadable results.json logged and treated as absent (a restart rewrites it)."""
        try:
            return self.read_results()
        except RunFolderError as exc:
            log.warning("%s", exc)
            return None

    def record_end(self, status: str, reason: str | None = None, results: dict | None = None) -> dict:
        """Record how a run (or this start of it) ended: the one writer of a run's end, whatever the path
        (done, failed, diverged, stopped by a signal: running with the reason, pruned). `results`: the trainer's
        full record; else results.json as it stands (when readable) gets the status and reason."""
        ended = {**(results if results is not None else self.read_results_or_none() or {}),
                 "status": status, "reason": reason}
        self.write_results(ended)
        return ended

    def disk_full(self, needed: int) -> DiskFull:
        """The error ending a run whose folder's disk is full, recorded in results.json (failed) when it fits.
        needed: the bytes a checkpoint takes (the last one's size, or an estimate)."""
        kept = "its last checkpoint is intact" if self.checkpoint.is_file() else "it has no checkpoint yet"
        reason = (f"disk full: {self.path} needs about {_mb(needed)} free to write its next checkpoint, "
                  f"{_mb(shutil.disk_usage(self.path).free)} is free now; {kept}: free space and start the same "
                  "command again to resume")
        try:
            self.record_end(FAILED, reason)
        except OSError as exc:
            reason += f" ({self.results} could not be written either: {exc.strerror or exc})"
        return DiskFull(reason)

    def save_checkpoint(self, state: dict) -> None:
        import torch  # only checkpoints need torch: status, analysis and replay read folders without it

        atomic_write(self.checkpoint, lambda f: torch.save(state, f))

    def load_checkpoint(self, map_location="cpu") -> dict | None:
        """The checkpoint, or None when there is none. Loaded with weights_only=True: tensors and plain
        containers only, so a crafted file cannot run code. Raises CheckpointError when it cannot be loaded."""
        import torch  # only checkpoints need torch: status, analysis and replay read folders without it

        if not self.checkpoint.exists():
            return None
        try:
            with torch.serialization.safe_globals(_numpy_array_globals()):
                state = torch.load(self.checkpoint, map_location=map_location, weights_only=True)
            if not isinstance(state, dict):
                raise ValueError(f"a {type(state).__name__}, not a checkpoint's dict")
        except Exception as exc:  # noqa: BLE001  (torch raises many types for a bad file)
            raise self.checkpoint_error(exc) from None
        return state

    def checkpoint_error(self, exc: BaseException) -> CheckpointError:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return CheckpointError(f"{self.checkpoint} cannot be resumed from ({type(exc).__name__}: {first[:300]}): "
                               "start afresh with training.resume=false, or move the file aside")

    def append_config_change(self, record: dict) -> None:
        """Record a resume that changed the config (config_changes.jsonl, appended, one line a resume)."""
        path = self.path / CONFIG_CHANGES
        old = path.read_bytes() if path.exists() else b""
        line = json.dumps(record).encode() + b"\n"
        atomic_write(path, lambda f: f.write(old + line))

    def remove_stale_temporaries(self) -> list[Path]:
        """Delete the temporary files that writes killed midway left (atomic_write's `.NAME.*.tmp`, a GIF's).

        Only safe while holding the run's lock: another writer's temporary file would look the same.
        """
        removed = []
        for folder in (self.path, self.checkpoint.parent):
            if not folder.is_dir():
                continue
            for path in folder.iterdir():
                name = path.name
                if path.is_file() and ((name.startswith(".") and name.endswith(".tmp")) or name.endswith(".tmp.gif")):
                    path.unlink(missing_ok=True)
                    removed.append(path)
        if removed:
            log.info("removed %d temporary file(s) left by an interrupted write: %s", len(removed),
                     ", ".join(p.name for p in removed))
        return removed
