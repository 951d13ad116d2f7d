"""The launcher classes Hydra instantiates (conf/hydra/launcher/*.yaml). Hydra accepts plugins only from the
hydra_plugins package, so they are named here; everything they do is jepa.studies.launchers."""

from jepa.studies import launchers


class LocalLauncher(launchers.LocalLauncher):
    """hydra/launcher=local"""


class LocalProcessesLauncher(launchers.LocalProcessesLauncher):
    """hydra/launcher=local_processes"""


class SlurmLauncher(launchers.SlurmLauncher):
    """hydra/launcher=slurm"""
