"""The names `hydra/launcher=` takes: this project's launchers (conf/hydra/launcher/*.yaml), Hydra's name for
the local one, and hydra-submitit-launcher's names, which are refused. Sweeps (hydra_plugins/jepa_launchers)
and the Optuna search (jepa.studies.search) read this one table.

    local            runs one after another in the launching process; `basic` is Hydra's name for it
    local_processes  runs in processes of this machine, through submitit
    slurm            runs as a SLURM job array, through submitit
    submitit_slurm, submitit_local   refused: the stock launchers, without this project's checks, skipping of
                     finished runs and checkpoint at the time limit; no exact alias exists (their defaults for
                     GPUs, CPUs, memory, time limit and requeues differ; submitit_local starts every run at once)
"""

from ..config import ConfigError
from ..config.errors import did_you_mean

LAUNCHERS = ("local", "local_processes", "slurm")
ALIASES = {"basic": "local"}
REFUSED = {"submitit_slurm": "slurm", "submitit_local": "local_processes"}


def stock_refusal(name: str) -> str:
    """The one line that refuses a hydra-submitit-launcher name, naming ours."""
    return f"hydra/launcher={name} is {_why_refused(name)}"


def _why_refused(name: str) -> str:
    return ("hydra-submitit-launcher's own launcher, without this project's checks of every run, skipping of "
            f"finished runs and checkpoint at the time limit; use hydra/launcher={REFUSED[name]} (docs/sweeps.md)")


def launcher(name: str) -> str:
    """This project's launcher that `hydra/launcher=NAME` selects; ConfigError for a refused or unknown name."""
    if name in REFUSED:
        raise ConfigError("hydra/launcher", name, _why_refused(name))
    if name in ALIASES or name in LAUNCHERS:
        return ALIASES.get(name, name)
    names = (*LAUNCHERS, *ALIASES)
    raise ConfigError("hydra/launcher", name, f"{did_you_mean(name, names)}the launchers are {', '.join(names)}")
