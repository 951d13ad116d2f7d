"""The Hydra app: `python -m jepa.train [experiment=quick] [key=value ...]` (or `jepa-train`).

Composes the config from the packaged conf/ (jepa.config.resources), refuses bad values before any work,
trains in the run folder (Hydra's output folder) and returns the final validation mAP, which sweepers
maximise. The training itself is jepa.training.

Exit codes: 0 done; 1 the run failed (results.json says why); 2 a bad value, override or run folder, refused
before any work (one line on stderr); 3 the run folder is being trained by another live process (untouched);
128 + N stopped by signal N after a checkpoint (start it again to resume): 143 SIGTERM, 130 Ctrl-C
(SIGINT; a second Ctrl-C stops at once, keeping the last checkpoint).
"""

import logging
import os
import signal
import sys
import traceback
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException
from hydra.types import RunMode
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from .config import ConfigError
from .config.errors import EXIT_CONFIG, RunExit, hydra_refusal
from .config.identity import register_resolvers
from .config.resources import conf_dir
from .runs import RunFolderError, RunLocked
from .training import NonFiniteLoss, StopRequested, train
from .training.trainer import INTERRUPTED

log = logging.getLogger("jepa")
register_resolvers()
EXIT_LOCKED = 3


_hydra_files: dict[Path, bytes] = {}  # RUN/.hydra/* as they were before Hydra rewrote them for this start


def _refuse(message: str, code: int):
    for path, content in _hydra_files.items():  # a refused start leaves the folder describing the run it holds
        path.write_bytes(content)
    log.error("%s", message)
    print(message, file=sys.stderr)
    raise RunExit(code) from None


@hydra.main(config_path=str(conf_dir()), config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    multirun = HydraConfig.get().mode == RunMode.MULTIRUN
    try:
        results = train(cfg, run_dir)
    except ConfigError as exc:
        _refuse(f"configuration error: {exc}", EXIT_CONFIG)
    except RunLocked as exc:
        if multirun:  # a sweep's run trained elsewhere: skipped, not failed
            log.warning("skipped: %s", exc)
            return None
        _refuse(f"run refused: {exc}", EXIT_LOCKED)
    except RunFolderError as exc:
        _refuse(f"run failed: {exc}", 1)
    except NonFiniteLoss as exc:
        if multirun:
            raise  # the study launcher counts it among the failed runs and goes on
        # an outcome of the run, recorded in results.json and train.log: one line, not a traceback
        print(f"run failed: {exc} (recorded in {run_dir / 'results.json'})", file=sys.stderr)
        raise RunExit(1) from None
    except StopRequested as exc:
        if exc.signum is None or multirun:
            raise  # the study launcher decides: requeue on the time limit, stop the sweep otherwise
        log.warning("%s", exc)
        raise RunExit(128 + exc.signum) from None
    except KeyboardInterrupt:  # a second Ctrl-C: results.json says how to resume
        print(f"run interrupted: {INTERRUPTED}", file=sys.stderr)
        raise RunExit(128 + signal.SIGINT) from None
    except Exception:
        if multirun:
            raise  # the study launcher records it with the run and goes on
        traceback.print_exc()  # a crash of the run: its traceback, and the run's exit code, not Hydra's
        raise RunExit(1) from None
    return (results.get("final") or {}).get("val/mAP")


_created: list[Path] = []  # the folders _check_run_dir made, deepest first


def _remove_created() -> None:
    """A start refused before any run leaves no folder it made behind (those still empty)."""
    for path in _created:
        try:
            path.rmdir()
        except OSError:
            pass


def _check_run_dir(argv: list[str]) -> None:
    """A `hydra.run.dir=` or `hydra.sweep.dir=` that cannot hold run folders (under a file, in /proc,
    read-only) is a bad value.
    Keeps the folder's .hydra/ files, which Hydra rewrites before main runs, for a refused start to put back."""
    for arg in argv:
        if arg.startswith(("hydra.run.dir=", "hydra.sweep.dir=")) and "${" not in arg:  # not interpolations
            key, value = arg.split("=", 1)
            path = Path(value).expanduser()
            if key == "hydra.run.dir" and (path / ".hydra").is_dir():
                _hydra_files.update({p: p.read_bytes() for p in (path / ".hydra").glob("*.yaml") if p.is_file()})
            try:
                _created.extend(p for p in (path, *path.parents) if not p.exists())  # deepest first
                path.mkdir(parents=True, exist_ok=True)
                if not os.access(path, os.W_OK | os.X_OK):
                    raise PermissionError("not writable")
                probe = path / f".write-test.{os.getpid()}.tmp"
                probe.write_bytes(b"")
                probe.unlink()
            except OSError as exc:
                reason = exc.strerror or str(exc)
                print(f"configuration error: {key}={str(path)!r} is invalid: the folder cannot be created or "
                      f"written ({reason})", file=sys.stderr)
                _remove_created()
                raise SystemExit(EXIT_CONFIG) from None


def cli() -> None:
    """`python -m jepa.train` and `jepa-train`: main, with Hydra's own errors (a bad override or config group,
    an unknown key) exiting 2 like every other bad value rather than Hydra's 1. The project's own exits
    (RunExit) keep their code."""
    _check_run_dir(sys.argv[1:])
    full_error = os.environ.get("HYDRA_FULL_ERROR")  # set by the user: Hydra's own report, with its traceback
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra raises its errors here rather than printing them and exiting 1
    try:
        main()
    except (HydraException, OmegaConfBaseException) as exc:  # composing the config, before any run
        if full_error == "1":
            raise
        print(f"configuration error: {hydra_refusal(exc)}", file=sys.stderr)
        _remove_created()
        raise SystemExit(EXIT_CONFIG) from None
    except KeyboardInterrupt:  # Ctrl-C before the run started (composing the config, loading torch)
        print("interrupted before the run started", file=sys.stderr)
        raise SystemExit(128 + signal.SIGINT) from None
    except ValueError as exc:  # Hydra's refusal of its own flags (`-m` with `--cfg`), before any run
        print(f"configuration error: {exc}", file=sys.stderr)
        _remove_created()
        raise SystemExit(EXIT_CONFIG) from None
    finally:
        if full_error is None:
            os.environ.pop("HYDRA_FULL_ERROR", None)
        else:
            os.environ["HYDRA_FULL_ERROR"] = full_error


if __name__ == "__main__":
    cli()
