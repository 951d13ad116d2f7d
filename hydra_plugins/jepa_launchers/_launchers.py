"""The launcher classes Hydra instantiates (conf/hydra/launcher/*.yaml). Hydra accepts plugins only from the
hydra_plugins package, so they are named here; everything they do is jepa.studies.launchers.

Hydra's and hydra-submitit-launcher's own launcher names are taken over (register_stock_names): `basic` is
the `local` launcher (both run one run after another in this process and take no settings), and
`submitit_slurm` / `submitit_local` are refused before anything starts, naming `slurm` / `local_processes`:
the stock launchers would run without the study launchers' checks, skipping of finished runs and checkpoint
at the time limit, and an alias would not be exact (other defaults for GPUs, CPUs, memory, time limit and
requeues; submitit_local starts every run at once).
"""

import sys

from hydra.core.config_store import ConfigStore
from hydra.plugins.launcher import Launcher
from hydra_plugins.hydra_submitit_launcher import config as stock_config
from omegaconf import OmegaConf

from jepa.config.errors import EXIT_CONFIG, RunExit
from jepa.studies import launchers


class LocalLauncher(launchers.LocalLauncher):
    """hydra/launcher=local (and Hydra's name for it, basic)"""


class LocalProcessesLauncher(launchers.LocalProcessesLauncher):
    """hydra/launcher=local_processes"""


class SlurmLauncher(launchers.SlurmLauncher):
    """hydra/launcher=slurm"""


class StockLauncherRefused(Launcher):
    """A hydra-submitit-launcher name: refused with one line when Hydra instantiates it, before any run."""

    name = use = ""

    def __init__(self, **_settings: object) -> None:
        print(f"configuration error: hydra/launcher={self.name} is hydra-submitit-launcher's own launcher, "
              "without this project's checks of every run, skipping of finished runs and checkpoint at the "
              f"time limit; use hydra/launcher={self.use} (docs/sweeps.md)", file=sys.stderr)
        raise RunExit(EXIT_CONFIG)

    def setup(self, **_: object) -> None:  # never reached: __init__ refuses
        raise NotImplementedError

    def launch(self, *_: object) -> None:
        raise NotImplementedError


class SubmititSlurmRefused(StockLauncherRefused):
    name, use = "submitit_slurm", "slurm"


class SubmititLocalRefused(StockLauncherRefused):
    name, use = "submitit_local", "local_processes"


def register_stock_names() -> None:
    """Replace the stock launchers' entries in Hydra's ConfigStore. The refused ones keep the stock settings,
    so `hydra.launcher.partition=...` still composes and the refusal is the one line."""
    store = ConfigStore.instance()
    store.store(group="hydra/launcher", name="basic", node={"_target_": f"{__name__}.LocalLauncher"},
                provider="jepa")
    for refused, schema in ((SubmititSlurmRefused, stock_config.SlurmQueueConf),
                            (SubmititLocalRefused, stock_config.LocalQueueConf)):
        node = OmegaConf.structured(schema)
        node._target_ = f"{__name__}.{refused.__name__}"
        store.store(group="hydra/launcher", name=refused.name, node=node, provider="jepa")
