"""Hydra launchers for the studies: `hydra/launcher=local` (default), `local_processes`, `slurm` (docs/sweeps.md).

Their configs are conf/hydra/launcher/*.yaml. The classes live in _launchers.py, re-exported here for Hydra's
plugin scan: the scan re-executes every module of hydra_plugins whose name does not start with "_", also
inside each submitit job (hydra.core.singleton.Singleton.set_state). That would replace the launcher classes
mid-job, so a requeued job's pickle would carry a copy of them instead of a reference.
"""

from ._launchers import LocalLauncher, LocalProcessesLauncher, SlurmLauncher

__all__ = ["LocalLauncher", "LocalProcessesLauncher", "SlurmLauncher"]
