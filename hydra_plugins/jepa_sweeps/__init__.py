"""Puts the project's `sweeps/` on Hydra's search path: `python -m jepa.train +sweeps=cov_std`."""

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin

from jepa.config.resources import sweeps_search_path


class JepaSweepsSearchPath(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        search_path.append(provider="jepa-sweeps", path=sweeps_search_path())
