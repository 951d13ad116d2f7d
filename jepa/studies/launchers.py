"""Study launchers: check every run before any starts, skip finished ones, survive failures, requeue on SLURM.

Before anything runs, each launcher
  - composes every run's config and checks it with jepa.config.validate: one bad run refuses the whole sweep
    (exit code 2), listing every bad run with its overrides and error; nothing is launched;
  - refuses runs that would share a run folder (a swept key left out of the folder name);
  - skips runs whose results.json is done, and runs whose job is still queued or running;
  - refuses the sweep when a run's folder holds other values: a checkpoint it would refuse to resume, a
    finished run of another configuration (jepa.training.start);
  - records every run in SWEEP_DIR/manifest.json (jepa.studies.manifest; `python -m jepa.studies status`).
It then runs or submits the others. Deciding, submitting and recording happen under the manifest's lock, and
a run is checked again right before it starts: a second copy of the sweep skips the runs the first one has
launched, and neither records its job over the other's. A failing run does not stop the rest: the sweep ends
with a summary (done, failed with reasons, requeued) and exits 1 if a run failed. Under submitit, the
time-limit signal (USR2) makes the run checkpoint at the step it reached; the job is then requeued and resumes
from that checkpoint.

    local            runs one after another in this process (Hydra's basic launcher, with the above)
    local_processes  each run in its own process through submitit, `jobs` at a time
    slurm            one SLURM job array; `wait: false` returns right after submitting (fire-and-forget)
"""

import importlib
import inspect
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, configure_log, filter_overrides, run_job, setup_globals
from hydra_plugins.hydra_submitit_launcher import submitit_launcher as stock
from omegaconf import DictConfig, OmegaConf, open_dict

from .. import private_apis
from ..config import ConfigError, validate
from ..config.errors import EXIT_CONFIG, RunExit
from ..runs import FAILED, INVALID, RunFolder, folder_state, is_done, live_holder
from ..runs.lock import describe
from ..training import StopRequested, request_stop
from ..training.start import refusal_before_start
from .executor import after_submission, make_executor, threads_per_run
from .jobs import job_activity
from .manifest import ManifestError, manifest_lock, now, read_manifest, update_manifest
from .status import counts_line, sweep_states

log = logging.getLogger(__name__)


@dataclass
class PlannedRun:
    index: int
    overrides: list[str]  # what the run is composed from (in the job too)
    name: str  # its folder inside the sweep folder
    config: DictConfig  # composed, hydra node included
    skip: str | None = None  # why it is not launched


def run_folder_name(cfg: DictConfig) -> str:
    """hydra.sweep.subdir of a composed sweep config: its `${hydra:...}` parts read HydraConfig, set here."""
    hydra_config = HydraConfig.instance()
    saved = hydra_config.cfg
    try:
        hydra_config.set_config(cfg)
        return str(cfg.hydra.sweep.subdir)
    finally:
        hydra_config.cfg = saved


def task_config(cfg: DictConfig) -> DictConfig:
    """A composed sweep config without its hydra node: the run's own config."""
    return OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])


def refuse(problems: list[str], total: int) -> None:
    print(f"sweep refused, nothing was launched: {len(problems)} problem(s) among {total} runs\n"
          + "\n".join(problems), file=sys.stderr)
    raise SystemExit(EXIT_CONFIG)


class StudyLauncher:
    """What every study launcher does around running its runs (see the module docstring)."""

    kind = "local"  # the manifest's `launcher`: how jepa.studies asks about a run's job
    config: DictConfig
    hydra_context: Any

    @property
    def sweep_dir(self) -> Path:
        return Path(str(self.config.hydra.sweep.dir)).resolve()

    def threads(self) -> int | None:
        """torch threads for each run whose training.threads is null (None: torch's default)."""
        return None

    def plan(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> list[PlannedRun]:
        """Compose and check every run, refusing the sweep on any problem (nothing read from the sweep folder)."""
        runs, problems = self.compose(job_overrides, initial_job_idx)
        by_folder = defaultdict(list)
        for run in runs:
            by_folder[run.name].append(run)
        for name, same in by_folder.items():
            if len(same) > 1:
                problems.append(f"  #{', #'.join(str(r.index) for r in same)} would share the run folder {name}: "
                                "they differ only in keys that do not identify a configuration "
                                "(jepa/config/schema.py)")
        if problems:
            refuse(problems, len(job_overrides))
        return runs

    def claim(self, runs: list[PlannedRun]) -> list[PlannedRun]:
        """Under the manifest lock: mark the runs to skip (done, another job's, another process's), refusing the
        sweep when a run's folder holds other values; returns the runs to launch."""
        try:
            entries = read_manifest(self.sweep_dir)["runs"]
        except ManifestError as exc:
            refuse([f"  {exc}"], len(runs))
        activity = job_activity({r.name: entries[r.name] for r in runs if r.name in entries})
        # a run whose folder holds other values (a checkpoint it would refuse to resume, a finished run of
        # another configuration) would fail at once, or be taken for done: the sweep is refused
        problems = [f"  #{r.index} {' '.join(filter_overrides(r.overrides))}\n      {refusal}"
                    for r in runs if (refusal := self.decide(r, entries, activity)) is not None]
        if problems:
            refuse(problems, len(runs))
        done = sum(r.skip == "done" for r in runs)
        if done:
            log.info("%d of %d runs are already done: skipped", done, len(runs))
        for run in runs:
            if run.skip and run.skip != "done":
                log.info("skipped %s: %s", run.name, run.skip)
        return [r for r in runs if not r.skip]

    def still_to_launch(self, run: PlannedRun, mine: str | None = None) -> bool:
        """Under the manifest lock, right before `run` is launched: whether it is still this launcher's. A copy
        of the sweep launched since the claim may have its own job recorded for it (waiting or running), a
        process may hold its folder, or it may be done: it is then skipped, and its entry left to that job.
        mine: the job id this launcher recorded for it, if any (its own job is no other's)."""
        try:
            entries = read_manifest(self.sweep_dir)["runs"]
        except ManifestError as exc:  # the sweep was refused over it at launch: someone broke it since
            log.warning("%s", exc)
            entries = {}
        entry = entries.get(run.name)
        ours = entry is None or (mine is not None and entry.get("job_id") == mine
                                 and entry.get("host") == socket.gethostname())
        refusal = self.decide(run, entries, {} if ours else job_activity({run.name: entry}))
        if refusal is not None:
            run.skip = f"its folder now holds other values: {refusal}"
        if run.skip:
            log.info("skipped %s: %s", run.name, run.skip)
        return not run.skip

    def compose(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> tuple[list, list[str]]:
        """Every run's config composed and checked: (the runs, the problems of those that are not)."""
        runs, problems = [], []
        for offset, overrides in enumerate(job_overrides):
            index, overrides = initial_job_idx + offset, list(overrides)
            try:
                cfg = self.hydra_context.config_loader.load_sweep_config(self.config, overrides)
                with open_dict(cfg.hydra.job):
                    cfg.hydra.job.id = cfg.hydra.job.num = index
                name = run_folder_name(cfg)
                task = task_config(cfg)
                validate(task)
            except Exception as exc:  # noqa: BLE001  (a config error, or any error Hydra raised composing the run)
                error = str(exc) if isinstance(exc, ConfigError) else f"{type(exc).__name__}: {exc}"
                problems.append(f"  #{index} {' '.join(filter_overrides(overrides))}\n      {error}")
                continue
            if self.threads() and task.training.threads is None:
                overrides.append(f"training.threads={self.threads()}")
            runs.append(PlannedRun(index, overrides, name, cfg))
        return runs, problems

    def decide(self, run: PlannedRun, entries: dict, activity: dict) -> ConfigError | None:
        """Mark `run` skipped (done, queued or running, trained elsewhere) or to launch, as its start would
        decide (jepa.training.start); the refusal its start would meet, if any."""
        folder = self.sweep_dir / run.name
        state = folder_state(folder)
        if state.status == INVALID:  # launched anyway: the run rebuilds it from its checkpoint
            log.warning("%s", state.reason)
        done = is_done(state.results, run.config.training.epochs)
        if done:
            run.skip = "done"
        elif activity.get(run.name) in ("waiting", "running"):
            run.skip = f"already queued or running as job {entries[run.name]['job_id']}"
            return None
        elif (holder := live_holder(folder)) is not None:
            run.skip = f"being trained by another process ({describe(holder)})"
            return None
        if not folder.is_dir():
            return None
        try:  # the folder's config.yaml stands for its checkpoint's config: nothing is loaded
            return refusal_before_start(task_config(run.config), RunFolder(folder), done=done)
        except ConfigError as refusal:  # a training.allow_config_change that is not a boolean
            return refusal

    def record(self, runs: list[PlannedRun], jobs: dict[str, tuple[str, str | None]]) -> None:
        """Write the runs into the manifest; jobs: run name -> (job id, job log) of those just launched."""
        host, submitted = socket.gethostname(), now()
        entries = {}
        for run in runs:
            entries[run.name] = {"overrides": run.overrides}
            if run.name in jobs:
                job_id, job_log = jobs[run.name]
                entries[run.name].update(launcher=self.kind, job_id=job_id, host=host, submitted=submitted,
                                         log=job_log)
        update_manifest(self.sweep_dir, entries)

    def finish(self, runs: list[PlannedRun], returns: dict[str, Any]) -> list[JobReturn]:
        """Print the summary; exit 1 if a run failed, else return one JobReturn per run."""
        states = sweep_states(self.sweep_dir, [r.name for r in runs], activity={n: "ended" for n in returns})
        skipped = sum(r.skip == "done" for r in runs)
        lines = [f"sweep {self.sweep_dir}: {counts_line(states)}"
                 + (f"; {skipped} were already done and skipped" if skipped else "")]
        lines += [f"  failed    {s.name}: {s.reason}" for s in states if s.state == "failed"]
        lines += [f"  requeued  {s.name}: resumed {s.resumed} time(s)" for s in states if s.resumed]
        lines.append(f"each run's state: python -m jepa.studies status {self.sweep_dir}")
        print("\n".join(lines), flush=True)
        if any(s.state == "failed" for s in states):
            raise RunExit(1)
        out = []
        for run, state in zip(runs, states, strict=True):
            ret = returns.get(run.name)
            if not isinstance(ret, JobReturn):
                ret = JobReturn(overrides=run.overrides, status=JobStatus.COMPLETED)
                ret.return_value = state.val_map
            out.append(ret)
        return out


class LocalLauncher(StudyLauncher, private_apis.hydra_basic_launcher()):
    """Runs one after another in this process; training.threads null lets torch use every core."""

    kind = "local"

    def __init__(self, **params: Any) -> None:
        if params:
            raise ValueError(f"hydra/launcher=local takes no settings, got {sorted(params)}: a cluster profile "
                             "(+cluster=...) goes with hydra/launcher=slurm")
        super().__init__()

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        setup_globals()
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        runs, mine = self.plan(job_overrides, initial_job_idx), str(os.getpid())
        with manifest_lock(self.sweep_dir):
            todo = self.claim(runs)
            self.record(runs, {r.name: (mine, None) for r in todo})
        returns = {}
        for run in todo:
            with manifest_lock(self.sweep_dir):
                if not self.still_to_launch(run, mine):
                    continue
            log.info("#%d %s", run.index, run.name)
            returns[run.name] = run_job(hydra_context=self.hydra_context, task_function=self.task_function,
                                        config=run.config, job_dir_key="hydra.sweep.dir",
                                        job_subdir_key="hydra.sweep.subdir")
            configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
            stop = private_apis.job_exception(returns[run.name])
            if isinstance(stop, StopRequested) and stop.signum is not None:  # SIGTERM & co. stop the sweep
                print(f"sweep stopped: {run.name} {stop}; relaunching the sweep resumes it", file=sys.stderr)
                raise RunExit(128 + stop.signum)
        return self.finish(runs, returns)


class SubmititStudyLauncher(StudyLauncher):
    """The submitit side, shared by local_processes and slurm: the executor, and what runs in the job."""

    _EXECUTOR: str
    params: dict

    def setup(self, *, hydra_context: Any, task_function: Any, config: DictConfig) -> None:
        super().setup(hydra_context=hydra_context, task_function=importable(task_function), config=config)

    def executor(self):
        """submitit's executor from hydra.launcher's settings (jepa.studies.executor)."""
        return make_executor(self._EXECUTOR, self.params["submitit_folder"], self.params)

    def job_args(self, run: PlannedRun) -> tuple:
        """The arguments of __call__ (hydra-submitit-launcher's) for one run."""
        return run.overrides, "hydra.sweep.dir", run.index, f"job_id_for_{run.index}", Singleton.get_state()

    def __call__(self, sweep_overrides: list[str], job_dir_key: str, job_num: int, job_id: str,
                 singleton_state: dict) -> JobReturn:
        """In the job: one run. Its time-limit signal asks the trainer to checkpoint and stop at the next step;
        then submitit's own handler runs: checkpoint() (resubmit this callable), requeue, exit."""
        import submitit  # noqa: I001  (submitit's own import: only the jobs' side needs it)

        usr_signal = private_apis.submitit_time_limit_signal()
        submitit_handler = signal.getsignal(usr_signal)
        signal.signal(usr_signal, request_stop)  # submitit's would exit from inside the training loop
        try:
            ret = super().__call__(sweep_overrides, job_dir_key, job_num, job_id, singleton_state)
        except SystemExit as exc:  # the app exits 2 on a configuration error
            raise RuntimeError(f"the run exited with code {exc.code}") from None
        stop = private_apis.job_exception(ret) if ret.status == JobStatus.FAILED else None
        if isinstance(stop, StopRequested) and stop.signum not in (None, usr_signal):
            log.warning("%s", stop)  # scancel, a preemption, a hang-up: checkpointed; no requeue of our own
            raise stop
        if isinstance(stop, StopRequested):
            log.info("time-limit signal: checkpointed (%s); requeueing", stop)
            try:
                submitit_handler(usr_signal, None)  # checkpoint() and requeue, then exits (SystemExit)
            except submitit.core.utils.UncompletedJobError as exc:  # no requeue left (max_num_timeout)
                RunFolder(ret.hydra_cfg.hydra.runtime.output_dir).record_end(FAILED, f"time limit: {exc}")
                raise
            except subprocess.CalledProcessError as exc:
                if exc.returncode != -signal.SIGTERM:
                    raise
                # SLURM ends every process of a job it requeues: here `scontrol requeue` itself, before it returned
                log.info("requeued")
                sys.exit(-1)
        return ret


def importable(task_function):
    """The task function under its module's importable name. Run as `python -m jepa.train`, it lives in
    __main__, which the job would get as a copy (pickled by value) instead of the module it comes from."""
    main = sys.modules["__main__"]
    if task_function.__module__ != "__main__" or getattr(main, "__spec__", None) is None:
        return task_function
    module = importlib.import_module(main.__spec__.name)
    return inspect.unwrap(getattr(module, task_function.__name__))


class LocalProcessesLauncher(SubmititStudyLauncher, stock.LocalLauncher):
    """Each run in its own process through submitit (as on SLURM), `jobs` at a time."""

    kind = "local_processes"

    def __init__(self, jobs: int = 1, **params: Any) -> None:
        super().__init__(**params)
        self.jobs = max(1, int(jobs))

    def threads(self) -> int:
        return threads_per_run(self.jobs)

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        executor = self.executor()
        runs = self.plan(job_overrides, initial_job_idx)
        with manifest_lock(self.sweep_dir):
            queue, running, returns = self.claim(runs), {}, {}
            self.record(runs, {})
        while queue or running:
            while queue and len(running) < self.jobs:
                run = queue.pop(0)
                with manifest_lock(self.sweep_dir):
                    if not self.still_to_launch(run):
                        continue
                    job = executor.submit(self, *self.job_args(run))
                    self.record([run], {run.name: (job.job_id, str(job.paths.stderr))})
                log.info("#%d %s: process %s", run.index, run.name, job.job_id)
                running[run.name] = job
            for name in [name for name, job in running.items() if job.done()]:
                returns[name] = outcome(running.pop(name))
            time.sleep(0.5)
        after_submission(executor)  # each job's local controller makes the literal folder again
        return self.finish(runs, returns)


class SlurmLauncher(SubmititStudyLauncher, stock.SlurmLauncher):
    """One SLURM job array per sweep (array_parallelism tasks at once); wait: false returns once submitted."""

    kind = "slurm"

    def __init__(self, wait: bool = True, **params: Any) -> None:
        super().__init__(**params)
        self.wait = wait

    def threads(self) -> int | None:
        return self.params.get("cpus_per_task")

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        p = self.params
        earliest = p["timeout_min"] * 60 - p["signal_delay_s"] - 30
        if earliest < 10:
            problem = (f"  hydra.launcher: timeout_min={p['timeout_min']} with signal_delay_s={p['signal_delay_s']} "
                       f"lets SLURM send the time-limit signal {earliest} s into a job (SLURM checks every 30 s), "
                       "before the job can catch it: keep timeout_min * 60 - signal_delay_s - 30 >= 10")
            refuse([problem], len(job_overrides))
        executor = self.executor()
        runs = self.plan(job_overrides, initial_job_idx)
        with manifest_lock(self.sweep_dir):  # a second copy of the sweep sees these jobs and skips their runs
            todo = self.claim(runs)
            jobs = executor.map_array(self, *zip(*map(self.job_args, todo), strict=True)) if todo else []
            after_submission(executor)
            self.record(runs, {r.name: (job.job_id, str(job.paths.stderr))
                               for r, job in zip(todo, jobs, strict=True)})
        array = jobs[0].job_id.split("_")[0] if jobs else None
        log.info("submitted %d runs as job array %s, %d skipped", len(jobs), array, len(runs) - len(todo))
        if not self.wait:
            submitted = f"submitted {len(jobs)} runs (job array {array})" if jobs else "nothing to submit"
            print(f"{submitted}; {len(runs) - len(todo)} skipped. "
                  f"Their state: python -m jepa.studies status {self.sweep_dir}", flush=True)
            return []
        try:
            returns = {run.name: outcome(job) for run, job in zip(todo, jobs, strict=True)}
        except KeyboardInterrupt:
            print(f"\nstopped waiting; the jobs go on (scancel {array} stops them). "
                  f"Their state: python -m jepa.studies status {self.sweep_dir}", file=sys.stderr)
            raise RunExit(130) from None
        return self.finish(runs, returns)


def outcome(job) -> JobReturn | Exception:
    """A finished job's JobReturn, or the error submitit raised for it (the run folder has the details)."""
    try:
        return job.results()[0]
    except Exception as exc:  # noqa: BLE001  (the job raised, or ended without a result: killed)
        return exc
