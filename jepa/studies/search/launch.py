"""Creating (or reopening) a study folder and starting its workers: local processes or a SLURM job array.

Study folder (sweep `study_dir`, or --study-dir):
    search.yaml          the checked sweep the workers read
    journal.log          optuna's JournalStorage (file backend; lock: journal.log.lock)
    trial_0000/ ...      one run folder per trial (a retried trial reuses its folder)
    heartbeats/          one file per running trial, touched by its worker
    workers/             local workers' logs; slurm/: submitit's folders (logs, pickles) per array task
    optuna/              the summary: trials.csv, best.json, summary.md, plots (jepa.studies.search.summary)
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import optuna
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ...config import ConfigError, compose_config
from ..executor import after_submission, make_executor, threads_per_run
from .spec import distributions
from .worker import JOURNAL, SEARCH_FILE, run_worker, storage

log = logging.getLogger("jepa.studies.search")


def prepare_study(spec: DictConfig) -> optuna.Study:
    """Create the study, or reopen it when its space, overrides and metric are the same; write search.yaml."""
    study_dir = Path(spec.study_dir)
    if not (study_dir / JOURNAL).exists() and any(study_dir.glob("trial_*")):
        raise ConfigError("study_dir", str(study_dir), "a folder without trial folders: it has some but no "
                                                       f"{JOURNAL}, so their trials are unknown")
    try:
        study_dir.mkdir(parents=True, exist_ok=True)
        if not os.access(study_dir, os.W_OK | os.X_OK):
            raise PermissionError("not writable")
    except OSError as err:
        raise ConfigError("study_dir", str(study_dir), f"a folder that can be created and written ({err})") from None
    identity = {"space": {name: optuna.distributions.distribution_to_json(dist)
                          for name, dist in distributions(spec).items()},
                "overrides": list(spec.overrides), "metric": spec.metric}
    study = optuna.create_study(study_name=spec.name, storage=storage(study_dir, spec),
                                direction=spec.direction, load_if_exists=True)
    stored = {key: study.user_attrs[key] for key in identity if key in study.user_attrs}
    if not stored:
        for key, value in identity.items():
            study.set_user_attr(key, value)
    elif stored != identity or study.direction.name.lower() != spec.direction:
        changed = sorted(k for k in identity if stored.get(k) != identity[k]) or ["direction"]
        raise ConfigError(changed[0], json.dumps(identity.get(changed[0], spec.direction)),
                          f"the same as study {spec.name!r} in {study_dir} ({json.dumps(stored.get(changed[0]))}); "
                          "pass --study-dir for a new study")
    OmegaConf.save(spec, study_dir / SEARCH_FILE)
    return study


def launch_local(study_dir: Path, workers: int) -> list[int]:
    """Run `workers` worker processes (logs in study_dir/workers/), wait for them; their exit codes.

    Each gets an equal share of this machine's CPUs as torch threads. Ctrl-C interrupts them all: their
    running trials are failed and queued again, so the next launch resumes them.
    """
    threads = threads_per_run(workers)
    logs = study_dir / "workers"
    logs.mkdir(exist_ok=True)
    procs = []
    for index in range(workers):
        with open(logs / f"worker_{index}.log", "ab") as out:
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "jepa.studies.search.worker", str(study_dir), str(index), str(threads)],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True))  # a terminal's Ctrl-C reaches them once, forwarded below
    try:
        return [proc.wait() for proc in procs]
    except KeyboardInterrupt:
        log.warning("interrupted: the running trials are queued again; the same command continues the study")
        for proc in procs:
            proc.send_signal(signal.SIGINT)
        return [proc.wait() for proc in procs]


# Command-line overrides that say where the workers run, not what a trial computes.
LAUNCH_OVERRIDE = re.compile(r"\+?cluster=|hydra/launcher=|hydra\.launcher\.|hydra\.searchpath=")
# hydra.launcher keys that are Hydra's, or set by the search itself
SEARCH_SETS = ("_target_", "wait", "submitit_folder", "name")


def split_launch_overrides(overrides) -> tuple[list[str], list[str]]:
    """(a trial's overrides, the launcher's: +cluster=<site>, hydra/launcher=..., hydra.launcher.KEY=VALUE)."""
    launch = [o for o in overrides if LAUNCH_OVERRIDE.match(o)]
    return [o for o in overrides if o not in launch], launch


def _launcher_settings(overrides: list[str]) -> dict:
    try:
        node = compose_config(["hydra/launcher=slurm", *overrides], check=False, with_hydra=True).hydra.launcher
    except (HydraException, OmegaConfBaseException) as err:
        raise ConfigError(" ".join(overrides), "<launcher>", f"a cluster profile and launcher settings that "
                          f"compose ({err})") from None
    return {k: v for k, v in OmegaConf.to_container(node, resolve=False).items() if k not in SEARCH_SETS}


def slurm_settings(spec: DictConfig, launch_overrides=()) -> dict:
    """The SLURM array's settings, in hydra.launcher's names: conf/hydra/launcher/slurm.yaml, then the sweep's
    `slurm:` block (submitit's names, slurm_partition, as `--set slurm.KEY=VALUE` sets them; null leaves a
    setting out), then what a cluster profile (+cluster=<site>) and hydra.launcher.KEY=VALUE change."""
    base = _launcher_settings([])
    site = _launcher_settings(list(launch_overrides)) if launch_overrides else base
    block = {k.removeprefix("slurm_"): v for k, v in OmegaConf.to_container(spec.slurm).items() if k != "cluster"}
    merged = {**base, **block, **{k: v for k, v in site.items() if base.get(k) != v}}
    settings = {k: v for k, v in merged.items() if v is not None}
    settings["array_parallelism"] = min(settings.get("array_parallelism", spec.workers), spec.workers)
    return {**settings, "name": spec.name}


def slurm_executor(study_dir: Path, spec: DictConfig, settings: dict):
    """The array's executor from `slurm_settings`."""
    return make_executor(spec.slurm.cluster or "slurm", study_dir / "slurm" / "%j", settings)


def launch_slurm(study_dir: Path, spec: DictConfig, wait: bool = True, launch_overrides=()) -> tuple[list, int]:
    """Submit one array of spec.workers tasks, each running run_worker; with wait, until all have ended.

    Returns the submitit jobs and how many failed (0 without wait). A failed task is logged; the trial it
    was running is retried by the other tasks or the next launch.
    """
    settings = slurm_settings(spec, launch_overrides)
    threads = settings.get("cpus_per_task") or 1
    executor = slurm_executor(study_dir, spec, settings)
    jobs = executor.map_array(run_worker, [str(study_dir)] * spec.workers, range(spec.workers),
                              [threads] * spec.workers)
    after_submission(executor)
    log.info("submitted SLURM array %s (%d tasks); logs in %s", jobs[0].job_id.split("_")[0], len(jobs),
             study_dir / "slurm")
    failed = 0
    for job in jobs if wait else ():
        try:
            job.result()
        except Exception as err:  # submitit's job errors carry the task's traceback
            log.error("SLURM task %s failed: %s", job.job_id, err)
            failed += 1
    return jobs, failed
