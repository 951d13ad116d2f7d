"""Hydra's handle on the study launchers (`hydra/launcher=local | local_processes | slurm`,
and the refused hydra-submitit-launcher names).

The launchers are jepa.studies.launchers; the classes Hydra instantiates are named in _launchers.py and
re-exported here for Hydra's plugin scan. The scan re-executes every module of hydra_plugins whose name
does not start with "_", also inside each submitit job (hydra.core.singleton.Singleton.set_state): classes
defined here would be replaced mid-job, so a requeued job's pickle would carry a copy instead of a reference.
"""

from ._launchers import (
    LocalLauncher,
    LocalProcessesLauncher,
    SlurmLauncher,
    SubmititLocalRefused,
    SubmititSlurmRefused,
)

__all__ = ["LocalLauncher", "LocalProcessesLauncher", "SlurmLauncher", "SubmititLocalRefused", "SubmititSlurmRefused"]
