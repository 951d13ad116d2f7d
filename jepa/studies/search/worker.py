"""A search worker: asks the shared study for trials and trains each one in its run folder, until the study
holds `n_trials` complete or pruned trials (counting those running elsewhere).

    python -m jepa.studies.search.worker STUDY_DIR [INDEX] [THREADS]   # what the local launcher starts
    run_worker(study_dir, index, threads)                      # what each SLURM array task calls

Every trial is a normal run folder, study_dir/trial_NNNN (docs/run_folder.md), trained with the sweep's
overrides plus the trial's parameters; each evaluated epoch's metric is reported to optuna, which may prune.

Killed workers: JournalStorage has no heartbeat, so workers keep their own. A running trial records its
worker (host, pid, SLURM job) and touches study_dir/heartbeats/<number> every `heartbeat_s`. Before each
trial, a worker fails every running trial whose worker pid is gone (same host) or whose heartbeat is older
than `grace_s`, and enqueues its parameters with the same run folder: the retry resumes from the killed
run's last checkpoint. Marking it failed is a journal write that only one worker can win, so it is retried
once. A worker interrupted (Ctrl-C) or stopped by a signal (SLURM's scancel or preemption: the run checkpoints
first) does the same for its own trial on the way out.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
import threading
import time
from pathlib import Path

import optuna
from omegaconf import DictConfig, OmegaConf
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages.journal import JournalFileBackend, JournalStorage
from optuna.trial import TrialState

from ...config import ConfigError
from ...runs.lock import pid_alive, slurm_job
from .spec import LOCKS, PRUNERS, SAMPLERS, compose_trial, distributions, override

log = logging.getLogger("jepa.studies.search")

JOURNAL, SEARCH_FILE, HEARTBEATS = "journal.log", "search.yaml", "heartbeats"
COUNTED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
HOST = socket.gethostname()


def read_spec(study_dir: Path) -> DictConfig:
    return OmegaConf.load(Path(study_dir) / SEARCH_FILE)


def storage(study_dir: Path, spec: DictConfig) -> JournalStorage:
    journal = str(Path(study_dir) / JOURNAL)
    return JournalStorage(JournalFileBackend(journal, lock_obj=LOCKS[spec.lock](journal)))


def open_study(study_dir: Path, spec: DictConfig, index: int = 0) -> optuna.Study:
    """The shared study, with this worker's sampler (seed + index) and the sweep's pruner."""
    sampler_args = {k: v for k, v in OmegaConf.to_container(spec.sampler).items() if k != "name"}
    if sampler_args.get("seed") is not None:
        sampler_args["seed"] += index
    pruner_args = {k: v for k, v in OmegaConf.to_container(spec.pruner).items() if k != "name"}
    return optuna.load_study(study_name=spec.name, storage=storage(study_dir, spec),
                             sampler=SAMPLERS[spec.sampler.name](**sampler_args),
                             pruner=PRUNERS[spec.pruner.name](**pruner_args))


def counted(study: optuna.Study) -> int:
    """Trials toward n_trials: complete, pruned, and running (here or in another worker)."""
    return len(study.get_trials(deepcopy=False, states=COUNTED))


def finished(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=COUNTED[:2]))


def run_worker(study_dir: Path | str, index: int = 0, threads: int | None = None) -> int:
    """Run trials until the study counts n_trials; returns how many this worker ran."""
    import torch  # the worker's process only: the launching process never trains

    study_dir = Path(study_dir)
    spec = read_spec(study_dir)
    if threads:
        torch.set_num_threads(threads)  # a trial's training.threads, when set, wins
    study = open_study(study_dir, spec, index)
    ask_lock = LOCKS[spec.lock](str(study_dir / "ask"))  # counting and asking as one step: no extra trials
    ran = 0
    while True:
        retry_stale_trials(study, study_dir, spec.grace_s)
        ask_lock.acquire()
        try:
            trial = study.ask() if counted(study) < spec.n_trials else None
        finally:
            ask_lock.release()
        if trial is None:
            log.info("worker %d: the study has %d trials; %d ran here", index, spec.n_trials, ran)
            return ran
        run_trial(study, trial, spec, study_dir)
        ran += 1


def run_trial(study: optuna.Study, trial: optuna.Trial, spec: DictConfig, study_dir: Path) -> None:
    """Train one trial in its run folder and tell the study how it ended."""
    from ...training import NonFiniteLoss, StopRequested  # torch: in the worker's process only

    params = {name: suggest(trial, name, dist) for name, dist in distributions(spec).items()}
    run_name = trial.user_attrs.get("run_dir") or f"trial_{trial.number:04d}"  # a retry keeps its folder
    if "run_dir" not in trial.user_attrs:
        trial.set_user_attr("run_dir", run_name)
    trial.set_user_attr("worker", {"host": HOST, "pid": os.getpid(), "slurm_job": slurm_job()})
    overrides = [*spec.overrides, *(override(name, value) for name, value in params.items())]
    log.info("trial %d in %s: %s", trial.number, run_name, " ".join(overrides[len(spec.overrides):]))
    try:
        cfg = compose_trial(overrides, spec.name)
        with Heartbeat(study_dir / HEARTBEATS / str(trial.number), spec.heartbeat_s):
            results = train_trial(cfg, study_dir / run_name, trial, spec.metric)
        value = (results["final"] or {}).get(spec.metric)
        if value is None:
            raise ConfigError("metric", spec.metric, "a key of every run's last metrics.jsonl record")
    except optuna.TrialPruned as pruned:
        log.info("trial %d pruned: %s", trial.number, pruned)
        study.tell(trial, state=TrialState.PRUNED)
    except NonFiniteLoss as diverged:  # a bad region, not a broken worker: tell the sampler, keep going
        log.warning("trial %d diverged, recorded as pruned: %s", trial.number, diverged)
        trial.set_user_attr("reason", str(diverged))
        study.tell(trial, state=TrialState.PRUNED)
    except StopRequested as stopped:  # a signal (scancel, preemption): checkpointed, the trial is not at fault
        fail_and_retry(study, study.get_trials(deepcopy=False)[trial.number], f"its worker was stopped ({stopped})")
        raise
    except Exception:
        study.tell(trial, state=TrialState.FAIL)
        raise
    except BaseException:  # KeyboardInterrupt, SystemExit: this worker stops, the trial is not at fault
        fail_and_retry(study, study.get_trials(deepcopy=False)[trial.number], "its worker was interrupted")
        raise
    else:
        study.tell(trial, value)  # optuna records a NaN value as a failed trial


def suggest(trial: optuna.Trial, name: str, dist):
    if isinstance(dist, optuna.distributions.CategoricalDistribution):
        return trial.suggest_categorical(name, dist.choices)
    if isinstance(dist, optuna.distributions.IntDistribution):
        return trial.suggest_int(name, dist.low, dist.high, step=dist.step, log=dist.log)
    return trial.suggest_float(name, dist.low, dist.high, step=dist.step, log=dist.log)


# ---------------------------------------------------------------- training with pruning
class Pruned(optuna.TrialPruned):
    """Stops a trial's run early; the run folder's results.json then says status "pruned"."""

    run_status = "pruned"


class PruningTracker:
    """Wraps a run's tracker: each epoch's metric goes to the trial, and TrialPruned is raised when the
    pruner says so (the trainer then records the run as pruned, with the reason)."""

    def __init__(self, trial: optuna.Trial, metric: str, inner):
        self.trial, self.metric, self.inner = trial, metric, inner

    def report(self, record: dict) -> float | None:
        value = record.get(self.metric)
        if value is not None:
            self.trial.report(value, int(record["epoch"]))
        return value

    def log_epoch(self, record: dict) -> None:
        self.inner.log_epoch(record)
        value = self.report(record)
        if value is not None and self.trial.should_prune():
            raise Pruned(f"{self.metric}={value:.4f} at epoch {record['epoch']}")

    def log_gif(self, path, epoch: int) -> None:
        self.inner.log_gif(path, epoch)

    def finish(self, status: str, reason: str | None = None, summary: dict | None = None) -> None:
        self.inner.finish(status, reason, summary)


def train_trial(cfg: DictConfig, run_dir: Path, trial: optuna.Trial, metric: str) -> dict:
    """jepa.train.train with the tracker wrapped in a PruningTracker. A retried trial first reports the epochs
    its run already has."""
    from ...runs import RunFolder
    from ...training import train  # torch: in the worker's process only

    def pruning(inner) -> PruningTracker:
        tracker = PruningTracker(trial, metric, inner)
        if cfg.training.resume:
            for record in RunFolder(run_dir).read_metrics():
                tracker.report(record)
        return tracker

    return train(cfg, run_dir, wrap_tracker=pruning)


# ---------------------------------------------------------------- killed workers
class Heartbeat:
    """Touches `path` every interval_s from a daemon thread while the block runs; removes it after."""

    def __init__(self, path: Path, interval_s: float):
        self.path, self.interval_s = path, interval_s
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.beat, daemon=True, name=f"heartbeat {path.name}")

    def beat(self) -> None:
        while not self.stop.wait(self.interval_s):
            try:
                self.path.touch()
            except OSError as err:  # a shared filesystem hiccup; the grace period absorbs a few
                log.warning("heartbeat %s: %s", self.path, err)

    def __enter__(self) -> Heartbeat:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.touch()
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()
        self.path.unlink(missing_ok=True)


def is_stale(trial, heartbeats: Path, grace_s: float, now: float | None = None) -> bool:
    """A running trial whose worker is gone: its pid is dead on this host, or it has been silent grace_s."""
    worker = trial.user_attrs.get("worker") or {}
    if worker.get("host") == HOST and not pid_alive(worker["pid"]):
        return True
    beat = heartbeats / str(trial.number)
    try:
        last = beat.stat().st_mtime
    except FileNotFoundError:
        last = trial.datetime_start.timestamp()  # journal times are naive local times
    return (now or time.time()) - last > grace_s


def retry_stale_trials(study: optuna.Study, study_dir: Path, grace_s: float) -> list[int]:
    """Fail every stale running trial and enqueue its parameters; returns the trials this worker failed."""
    failed = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if is_stale(trial, study_dir / HEARTBEATS, grace_s):
            worker = trial.user_attrs.get("worker") or {}
            if fail_and_retry(study, trial, f"its worker ({worker or 'unknown'}) is gone"):
                failed.append(trial.number)
    return failed


def fail_and_retry(study: optuna.Study, trial, why: str) -> bool:
    """Mark a running trial failed and enqueue its parameters in the same run folder; False when another
    worker (or the trial itself) finished it first."""
    try:
        study.tell(trial.number, state=TrialState.FAIL)
    except (ValueError, UpdateFinishedTrialError):
        return False
    attrs = {"retry_of": trial.user_attrs.get("retry_of", trial.number)}
    if "run_dir" in trial.user_attrs:
        attrs["run_dir"] = trial.user_attrs["run_dir"]
    study.enqueue_trial(trial.params, user_attrs=attrs)
    log.warning("trial %d failed because %s; its parameters are queued again (run folder %s)",
                trial.number, why, attrs.get("run_dir", "new"))
    return True


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m jepa.studies.search.worker",
        description="One search worker on a prepared study folder (python -m jepa.studies.search starts them).")
    parser.add_argument("study_dir", type=Path, help=f"the study folder (holding {SEARCH_FILE})")
    parser.add_argument("index", nargs="?", type=int, default=0, help="this worker's number (its sampler seed offset)")
    parser.add_argument("threads", nargs="?", type=int, help="torch threads for its trials (default: torch's)")
    args = parser.parse_args(argv)
    if not (args.study_dir / SEARCH_FILE).is_file():
        parser.error(f"{args.study_dir} is not a study folder: it holds no {SEARCH_FILE} "
                     "(python -m jepa.studies.search prepares one)")
    if args.index < 0 or (args.threads is not None and args.threads < 1):
        parser.error(f"index must be >= 0 and threads >= 1, got index={args.index} threads={args.threads}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s][%(levelname)s] - %(message)s")
    run_worker(args.study_dir, args.index, args.threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
