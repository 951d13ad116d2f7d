"""The one builder of submitit executors and of each run's torch threads, for sweeps and the Optuna search.

Settings are hydra.launcher's (conf/hydra/launcher/*.yaml, a cluster profile conf/cluster/<site>.yaml, and
`hydra.launcher.KEY=VALUE` overrides): the names hydra-submitit-launcher uses. Those submitit knows for every
executor (timeout_min, cpus_per_task, mem_gb, ...) keep their names; the others get the `slurm_` prefix.
"""

import os
from pathlib import Path

from hydra_plugins.hydra_submitit_launcher import config as stock_config
from omegaconf import OmegaConf

# hydra.launcher keys that are not submitit's executor parameters (the launcher's own, Hydra's)
NOT_EXECUTOR = ("_target_", "wait", "jobs", "submitit_folder", "max_num_timeout")


def cpu_count() -> int:
    return len(os.sched_getaffinity(0))


def threads_per_run(runs_at_once: int) -> int:
    """torch threads of each of `runs_at_once` runs sharing this machine: an equal share of its CPUs."""
    return max(1, cpu_count() // max(1, runs_at_once))


def make_executor(cluster: str, folder: Path | str, settings: dict):
    """submitit's executor: cluster 'local' (each run in its own process on this machine: LocalExecutor,
    which AutoExecutor would refuse signal_delay_s for) or 'slurm' (AutoExecutor, so another name submitit
    knows works too); settings: hydra.launcher's, max_num_timeout included. Raises submitit's errors for an
    unknown cluster or parameter."""
    import submitit  # noqa: I001  (only a launch needs it; Hydra's plugin scan imports the launchers)

    params = {k: v for k, v in settings.items() if k not in NOT_EXECUTOR}
    max_num_timeout = settings.get("max_num_timeout")
    if cluster == "local":
        executor = submitit.LocalExecutor(folder, **({} if max_num_timeout is None
                                                     else {"max_num_timeout": max_num_timeout}))
        executor.update_parameters(**params)
    else:
        init = {} if max_num_timeout is None else {f"{cluster}_max_num_timeout": max_num_timeout}
        executor = submitit.AutoExecutor(folder=folder, cluster=cluster, **init)
        generic = set(OmegaConf.structured(stock_config.BaseQueueConf).keys())
        executor.update_parameters(**{k if k in generic else f"slurm_{k}": v for k, v in params.items()})
    return executor


def after_submission(executor) -> None:
    """submitit stages a submission in its folder before the job id is known, and a local job's controller
    makes that folder too, so a folder named with `%j` (one per job) is left once literally, empty, beside
    the real job folders: it goes (once no job can make it again)."""
    folder = Path(executor.folder)
    if "%j" in folder.name and folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
