"""The launcher classes Hydra instantiates (conf/hydra/launcher/*.yaml). Hydra accepts plugins only from the
hydra_plugins package, so they are named here; everything they do is jepa.studies.launchers.

Hydra's and hydra-submitit-launcher's own launcher names are taken over (register_stock_names), as
jepa.studies.launcher_names says: `basic` is the `local` launcher, `submitit_slurm` / `submitit_local` are
refused before anything starts, naming `slurm` / `local_processes`.
"""

import sys

from hydra.core.config_store import ConfigStore
from hydra.plugins.launcher import Launcher
from hydra_plugins.hydra_submitit_launcher import config as stock_config
from omegaconf import OmegaConf

from jepa.config.errors import EXIT_CONFIG, RunExit
from jepa.studies import launchers
from jepa.studies.launcher_names import ALIASES, stock_refusal


class LocalLauncher(launchers.LocalLauncher):
    """hydra/launcher=local (and Hydra's name for it, basic)"""


class LocalProcessesLauncher(launchers.LocalProcessesLauncher):
    """hydra/launcher=local_processes"""


class SlurmLauncher(launchers.SlurmLauncher):
    """hydra/launcher=slurm"""


class StockLauncherRefused(Launcher):
    """A hydra-submitit-launcher name: refused with one line when Hydra instantiates it, before any run."""

    name = ""

    def __init__(self, **_settings: object) -> None:
        print(f"configuration error: {stock_refusal(self.name)}", file=sys.stderr)
        raise RunExit(EXIT_CONFIG)

    def setup(self, **_: object) -> None:  # never reached: __init__ refuses
        raise NotImplementedError

    def launch(self, *_: object) -> None:
        raise NotImplementedError


class SubmititSlurmRefused(StockLauncherRefused):
    name = "submitit_slurm"


class SubmititLocalRefused(StockLauncherRefused):
    name = "submitit_local"


def register_stock_names() -> None:
    """Replace the stock launchers' entries in Hydra's ConfigStore. The refused ones keep the stock settings,
    so `hydra.launcher.partition=...` still composes and the refusal is the one line."""
    store = ConfigStore.instance()
    classes = {"local": LocalLauncher, "local_processes": LocalProcessesLauncher, "slurm": SlurmLauncher}
    for alias, name in ALIASES.items():
        store.store(group="hydra/launcher", name=alias, node={"_target_": f"{__name__}.{classes[name].__name__}"},
                    provider="jepa")
    for refused, schema in ((SubmititSlurmRefused, stock_config.SlurmQueueConf),
                            (SubmititLocalRefused, stock_config.LocalQueueConf)):
        node = OmegaConf.structured(schema)
        node._target_ = f"{__name__}.{refused.__name__}"
        store.store(group="hydra/launcher", name=refused.name, node=node, provider="jepa")
