"""Where the packaged configuration lives: conf/ (the Hydra app's groups) and sweeps/ (the studies).

The repository keeps both at its top level. A wheel carries them inside the package, as jepa/conf and
jepa/sweeps (pyproject.toml maps them there), so an installed project finds its configs from any folder.
Every tool asks this module; nothing else computes a path to them.
"""

from functools import cache
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent  # the jepa package folder


@cache
def resource_dir(name: str) -> Path:
    """The folder `name` (conf or sweeps): inside the installed package, else beside it in a checkout."""
    for candidate in (PACKAGE / name, PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"no {name}/ folder in {PACKAGE} or {PACKAGE.parent}: a broken install of jepa-mmnist")


def conf_dir() -> Path:
    """The config groups of `python -m jepa.train` (config.yaml, data/, model/, ...)."""
    return resource_dir("conf")


def sweeps_dir() -> Path:
    """The studies (`+sweeps=cov_std`) and Optuna searches (`sweeps/optuna_vc.yaml`)."""
    return resource_dir("sweeps")


def sweeps_search_path() -> str:
    """The Hydra search-path entry under which `sweeps/` is the config group `sweeps`."""
    return f"file://{sweeps_dir().parent}"
