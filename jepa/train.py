"""The Hydra app: `python -m jepa.train [experiment=quick] [key=value ...]`.

Composes the config, refuses bad values before any work, trains in the run folder (Hydra's output
folder) and returns the final validation mAP, which sweepers maximise.
"""

import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from .config import validate
from .errors import ConfigError
from .naming import register_resolvers

log = logging.getLogger("jepa")
register_resolvers()


def add_file_log(run_dir: Path) -> None:
    """Log to run_dir/train.log unless a handler (Hydra's) already does."""
    path = (run_dir / "train.log").resolve()
    root = logging.getLogger()
    if any(getattr(h, "baseFilename", None) == str(path) for h in root.handlers):
        return
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"))
    root.addHandler(handler)
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)


def train(cfg: DictConfig, run_dir: Path | str) -> dict:
    """Validate cfg, train in run_dir, return results.json's content. Raises ConfigError on bad input."""
    from .run_folder import RunFolder
    from .tracking import make_tracker
    from .trainer import Trainer

    validate(cfg)
    run_dir = Path(run_dir)
    folder = RunFolder(run_dir)
    previous = folder.read_results()
    if previous and previous["status"] == "done" and previous["epochs_completed"] >= cfg.training.epochs:
        log.info("%s is already done (val/mAP=%s): skipped", run_dir, previous["final"]["val/mAP"])
        return previous
    add_file_log(run_dir)
    folder.write_config(cfg)
    config = OmegaConf.to_container(cfg, resolve=True)
    trainer = Trainer(cfg, run_dir)
    trainer.tracker = make_tracker(cfg.logging, run_dir, config, cfg.get("study"))
    return trainer.fit()


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
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
