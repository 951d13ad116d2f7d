"""The Hydra app: `python -m jepa.train [experiment=quick] [key=value ...]` (or `jepa-train`).

Composes the config from the packaged conf/ (jepa.config.resources), refuses bad values before any work,
trains in the run folder (Hydra's output folder) and returns the final validation mAP, which sweepers
maximise. The training itself is jepa.training.
"""

import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from .config import ConfigError
from .config.identity import register_resolvers
from .config.resources import conf_dir
from .training import train

log = logging.getLogger("jepa")
register_resolvers()


@hydra.main(config_path=str(conf_dir()), config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        results = train(cfg, run_dir)
    except ConfigError as exc:
        log.error("configuration error: %s", exc)
        print(f"configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    return results["final"]["val/mAP"]


if __name__ == "__main__":
    main()
