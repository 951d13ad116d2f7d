"""Puts the repository's `sweeps/` folder on Hydra's search path: `python -m jepa.train +sweeps=cov_std`."""

from pathlib import Path

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin

ROOT = Path(__file__).resolve().parents[2]  # the folder holding sweeps/


class JepaSweepsSearchPath(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        search_path.append(provider="jepa-sweeps", path=f"file://{ROOT}")
