"""Puts the project's `sweeps/` on Hydra's search path: `python -m jepa.train +sweeps=cov_std`; takes over
Hydra's own launcher names (`basic`, `submitit_slurm`, `submitit_local`: hydra_plugins/jepa_launchers)."""

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin

from jepa.config.resources import sweeps_search_path


class JepaSweepsSearchPath(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        search_path.append(provider="jepa-sweeps", path=sweeps_search_path())
        # called once Hydra's plugin scan has run every plugin module (hydra-submitit-launcher's config too),
        # so these entries replace the stock ones for good
        from hydra_plugins.jepa_launchers._launchers import register_stock_names

        register_stock_names()
