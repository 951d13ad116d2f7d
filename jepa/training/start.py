"""How a run starts in its folder, decided in one place: start afresh, resume its checkpoint, skip it (done),
or refuse (a ConfigError): `decide_start`. A run folder always describes the run that happened.

Whether a checkpoint may be resumed under a config:

Compared: every key that identifies a configuration (jepa.config.identity) plus the seed. Keys that only say
where or how a run executes (device, threads, logging, checkpoint cadence, ...) may change freely.
`training.epochs` may change as long as it stays at or above the epochs the run has completed: extending a
run (or setting the end of an unfinished one earlier) is legitimate, and it is recorded.
Any other change is refused with the list of `key: old -> new`, unless `training.allow_config_change=true`:
the run then continues under the new values and the change is appended to config_changes.jsonl. A finished
run started again under other values is refused the same way (it is not trained again, and its folder is
not taken for the new values' run). A run started again before its first checkpoint (the earlier start failed
or was killed early) is compared the same way with the config.yaml that start wrote.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

import yaml
from omegaconf import DictConfig, OmegaConf

from ..config import ConfigError
from ..config.identity import identifies
from ..config.schema import same_value
from ..runs import FAILED, RUNNING, CheckpointError, RunFolder, is_done
from .progress import Progress

EPOCHS = "training.epochs"
SWITCH = "training.allow_config_change"
ALWAYS_COMPARED = ("seed",)  # not identifying (seeds are repeats of a configuration) but a different run
EPOCH_BOUNDARY_ONLY = ("data.batch_size", "data.num_train")  # a mid-epoch position means nothing under new ones


def flat(tree, prefix: str = "") -> dict:
    out = {}
    if isinstance(tree, dict):
        for key, value in tree.items():
            out.update(flat(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: tree}


def compared(key: str) -> bool:
    return key != SWITCH and (key in ALWAYS_COMPARED or identifies(key))


def config_changes(old: dict, new: dict) -> dict[str, tuple]:
    """key -> (old, new) for every compared key whose value differs (a missing key reads as <absent>)."""
    a, b = ({k: same_value(k, v) for k, v in flat(tree).items()} for tree in (old, new))
    absent = "<absent>"
    return {k: (a.get(k, absent), b.get(k, absent)) for k in sorted(a.keys() | b.keys())
            if compared(k) and a.get(k, absent) != b.get(k, absent)}


def _switch(cfg: DictConfig, key: str) -> bool:
    value = OmegaConf.select(cfg, key, default=False)
    if not isinstance(value, bool):
        raise ConfigError(key, value, "true or false")
    return value


def _listing(changes: dict[str, tuple]) -> str:
    return "; ".join(f"{k}: {o!r} -> {n!r}" for k, (o, n) in changes.items())


def _refusal(changes: dict[str, tuple], folder: RunFolder, source: str = "its checkpoint's config") -> ConfigError:
    return ConfigError("resume", _listing(changes),
                       f"{folder.path} was trained with other values ({source}); resume with the "
                       "same values, use a new run folder, start afresh with training.resume=false, or continue "
                       f"under the new values with {SWITCH}=true (recorded in config_changes.jsonl)")


def _config_yaml_changes(cfg: DictConfig, folder: RunFolder) -> dict[str, tuple] | None:
    """The compared changes from the folder's config.yaml to `cfg`, training.epochs left out; None where
    config.yaml is missing, unreadable or not a mapping (the run's start rewrites it)."""
    try:
        old = yaml.safe_load(folder.config.read_text()) if folder.config.is_file() else None
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    if not isinstance(old, dict):
        return None
    changes = config_changes(old, OmegaConf.to_container(cfg, resolve=True))
    changes.pop(EPOCHS, None)  # compared with the epochs completed, where a checkpoint says them
    return changes


def _record_changes(folder: RunFolder, changes: dict[str, tuple], epoch: int, batch: int, global_step) -> None:
    """Append the allowed changes (training.allow_config_change) to config_changes.jsonl."""
    folder.append_config_change({"time": datetime.now(timezone.utc).isoformat(timespec="seconds"), "epoch": epoch,
                                 "batch": batch, "global_step": global_step,
                                 "changes": {k: list(v) for k, v in changes.items()}})


def refusal_before_start(cfg: DictConfig, folder: RunFolder, done: bool = False) -> ConfigError | None:
    """The refusal a start of `cfg` in `folder` meets, read from the folder's config.yaml (which always holds
    the config of the run its checkpoint continues): for a study launcher to refuse a sweep before any run
    starts, and for a finished run (done: True), which is not resumed but must not be taken for another
    configuration's. None where the start goes on (or decides for itself: no readable config.yaml)."""
    if not done and cfg.training.resume is not True:
        return None
    changes = _config_yaml_changes(cfg, folder)
    if not changes or _switch(cfg, SWITCH):
        return None
    if done:
        return ConfigError("run", _listing(changes), f"{folder.path} is a finished run of other values (its "
                           "config.yaml); use a new run folder for these values")
    return _refusal(changes, folder, "its config.yaml")


def check_restart(cfg: DictConfig, folder: RunFolder) -> dict[str, tuple]:
    """A run started again before any checkpoint (its first start failed or was killed early) compared with
    the config.yaml that start wrote, as a resume is with its checkpoint: a change is refused (ConfigError), or
    with training.allow_config_change=true recorded in config_changes.jsonl and returned."""
    changes = _config_yaml_changes(cfg, folder) or {}  # no epoch was completed: any number continues the run
    if changes and not _switch(cfg, SWITCH):
        raise _refusal(changes, folder, "its config.yaml, written by an earlier start")
    if changes:
        _record_changes(folder, changes, 0, 0, 0)
    return changes


def check_resume(cfg: DictConfig, checkpoint: dict, folder: RunFolder) -> dict[str, tuple]:
    """Refuse (ConfigError) resuming `checkpoint` under `cfg` when they differ in what the run computes;
    return the changes allowed (recorded in config_changes.jsonl)."""
    old = checkpoint.get("config")
    if not isinstance(old, dict):
        return {}  # a checkpoint that does not say its config (none written by this project)
    new = OmegaConf.to_container(cfg, resolve=True)
    changes = config_changes(old, new)
    completed, batch = checkpoint.get("epoch", 0), checkpoint.get("batch", 0)
    epochs = changes.pop(EPOCHS, None)
    if epochs is not None and isinstance(epochs[1], int) and epochs[1] < completed:
        raise ConfigError(EPOCHS, epochs[1], f"at least the {completed} epoch(s) {folder.path} has completed "
                                             "(start afresh with training.resume=false, or use a new run folder)")
    if changes and not _switch(cfg, SWITCH):
        raise _refusal(changes, folder)
    if batch and (moved := [k for k in EPOCH_BOUNDARY_ONLY if k in changes]):
        raise ConfigError(moved[0], changes[moved[0]][1],
                          f"the checkpoint is at batch {batch} of an epoch; {', '.join(moved)} can only change at "
                          "an epoch boundary")
    if epochs is not None:
        changes[EPOCHS] = epochs
    if changes:
        _record_changes(folder, changes, completed, batch, checkpoint.get("global_step"))
    return changes


START, RESUME, SKIP = "start", "resume", "skip"


@dataclass
class Start:
    """What one start of a run in its folder does."""

    action: str  # START, RESUME or SKIP (a finished run)
    previous: dict | None = None  # results.json before this start (with training.resume), else None
    checkpoint: dict | None = None  # the checkpoint a RESUME continues, loaded once


def resume_point(cfg: DictConfig, folder: RunFolder, previous: dict | None) -> Start:
    """START, or RESUME from the folder's checkpoint when training.resume and it has one (loaded here, once,
    and checked against cfg: ConfigError refuses). A checkpoint that cannot be loaded ends the run failed
    (CheckpointError, with the way out). previous: results.json as it stands (None: none readable)."""
    if not cfg.training.resume:
        return Start(START)
    try:
        checkpoint = folder.load_checkpoint("cpu")
    except CheckpointError as exc:
        folder.record_end(FAILED, str(exc))
        raise
    if checkpoint is None:
        check_restart(cfg, folder)
        return Start(START, previous)
    check_resume(cfg, checkpoint, folder)
    return Start(RESUME, previous, checkpoint)


def decide_start(cfg: DictConfig, folder: RunFolder) -> Start:
    """The one decision of how `cfg` starts in `folder`: SKIP a finished run, else resume_point. Raises
    ConfigError where the folder holds another configuration's run."""
    previous = folder.read_results_or_none()
    if is_done(previous, cfg.training.epochs):
        if (refusal := refusal_before_start(cfg, folder, done=True)) is not None:
            raise refusal
        return Start(SKIP, previous)
    return resume_point(cfg, folder, previous)


def record_start(folder: RunFolder, start: Start) -> None:
    """Write results.json (running) as a start begins, before the data set-up, so that a start killed before
    the trainer writes its own record still counts in `resumed` (the next start counts from this one)."""
    previous = start.previous or {}
    counted = start.checkpoint.get("resumed") if start.checkpoint is not None else None
    progress = Progress(resumed=counted + 1) if isinstance(counted, int) else Progress()  # as the trainer counts
    if start.previous is not None:
        progress.count_restart(previous)
    folder.write_results({**previous, "status": RUNNING, "reason": None, "resumed": progress.resumed,
                          "started": previous.get("started") or datetime.now(timezone.utc).isoformat(
                              timespec="seconds")})
