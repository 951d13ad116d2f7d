"""`python -m jepa.studies.search SWEEP [HYDRA_OVERRIDE ...] [options]`: run (or continue) an Optuna study.

    python -m jepa.studies.search optuna_vc experiment=quick --workers 2 --trials 20
    python -m jepa.studies.search optuna_vc experiment=quick hydra/launcher=slurm +cluster=mysite --config-dir ~/c
    (the same launcher settings and cluster profiles as sweeps: docs/sweeps.md; --set slurm.KEY=VALUE also works)
    python -m jepa.studies.search optuna_vc experiment=quick --launcher slurm --set slurm.slurm_partition=gpu
    python -m jepa.studies.search optuna_vc experiment=quick --report      # only rewrite study_dir/optuna/

The same command again continues the same study: trials already complete or pruned count toward --trials.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from ...config import ConfigError

log = logging.getLogger("jepa.studies.search")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m jepa.studies.search", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sweep", help="a sweep under sweeps/ (optuna_vc) or a path to one")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every trial (experiment=quick ...); "
                        "hydra/launcher=slurm, +cluster=<site> and hydra.launcher.KEY=VALUE say where workers run")
    parser.add_argument("--trials", type=int, dest="n_trials", help="trials the study stops at (sweep: n_trials)")
    parser.add_argument("--workers", type=int, help="parallel workers (sweep: workers)")
    parser.add_argument("--launcher", choices=("local", "slurm"), help="sweep: launcher")
    parser.add_argument("--config-dir", help="a config folder of your own, e.g. holding cluster/<site>.yaml")
    parser.add_argument("--study-dir", help="the study folder (sweep: study_dir)")
    parser.add_argument("--search", help="comma-separated parameters of the space to search (sweep: search)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="settings",
                        help="any other sweep key, e.g. pruner.name=hyperband (repeatable)")
    parser.add_argument("--report", action="store_true", help="only write the summary of the study folder")
    parser.add_argument("--detach", action="store_true", help="slurm: submit and return without waiting")
    return parser.parse_intermixed_args(argv)


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s][%(levelname)s] - %(message)s")
    args = parse_args(argv)
    try:
        return run(args)
    except ConfigError as err:
        print(f"configuration error: {err}", file=sys.stderr)
        return 2


def run(args: argparse.Namespace) -> int:
    # optuna, Hydra and the trainer load only once a command needs them (`--help` answers at once)
    from omegaconf import OmegaConf

    from .launch import (
        launch_local,
        launch_slurm,
        prepare_study,
        slurm_executor,
        slurm_settings,
        split_launch_overrides,
    )
    from .spec import load_sweep
    from .worker import finished

    if args.report:
        return report(args)
    search = args.search.split(",") if args.search is not None else None  # "": refused, not the default
    overrides, launch = split_launch_overrides(args.overrides)
    if args.config_dir:
        launch.append(f"hydra.searchpath=[file://{Path(args.config_dir).expanduser().resolve()}]")
    spec = load_sweep(args.sweep, overrides, args.settings, n_trials=args.n_trials, workers=args.workers,
                      launcher=args.launcher or launcher_named(launch), study_dir=args.study_dir, search=search)
    study_dir = Path(spec.study_dir)
    if spec.launcher == "slurm":
        try:  # submitit checks the executor and its parameters' names: before the study folder is written
            slurm_executor(study_dir, spec, slurm_settings(spec, launch))
        except (ValueError, TypeError, NameError, RuntimeError) as err:  # NameError: an unknown parameter
            raise ConfigError("slurm", OmegaConf.to_container(spec.slurm), f"submitit's executor settings "
                              f"({type(err).__name__}: {err})") from None
    study = prepare_study(spec)
    before, start = finished(study), time.monotonic()
    log.info("study %s in %s: %d of %d trials done; %d %s worker(s)", spec.name, study_dir, before,
             spec.n_trials, spec.workers, spec.launcher)
    if spec.launcher == "local":
        failed = sum(code != 0 for code in launch_local(study_dir, spec.workers))
    else:
        try:
            _, failed = launch_slurm(study_dir, spec, wait=not args.detach, launch_overrides=launch)
        except Exception as err:  # noqa: BLE001  (sbatch refused the array: submitit's FailedJobError, OSError)
            print(f"submitting the SLURM array failed ({type(err).__name__}: {str(err).strip().splitlines()[-1]}); "
                  f"the study in {study_dir} is intact: fix the cluster settings and launch again", file=sys.stderr)
            return 1
        if args.detach:
            print(f"submitted; afterwards: python -m jepa.studies.search {args.sweep} --study-dir {study_dir} --report")
            return 0
    summarise(study, study_dir, spec)
    ran, minutes = finished(study) - before, (time.monotonic() - start) / 60
    print(f"{ran} trials in this launch, {minutes:.1f} min" + (f" ({ran / minutes:.2f}/min)" if ran else ""))
    if failed:
        where = study_dir / ("workers" if spec.launcher == "local" else "slurm")
        print(f"{failed} worker(s) failed: see {where}", file=sys.stderr)
    return 1 if failed else 0


def launcher_named(launch_overrides: list[str]) -> str | None:
    """`hydra/launcher=slurm` (or a cluster profile) runs the workers as a SLURM array, the other launchers
    (local, basic, local_processes) as local processes; None where the overrides do not say. A refused or
    unknown launcher name is a ConfigError, as in a sweep (jepa.studies.launcher_names)."""
    from ..launcher_names import launcher  # noqa: I001  (with the config package: not for `--help`)

    named = [launcher(o.split("=", 1)[1]) for o in launch_overrides if o.startswith("hydra/launcher=")]
    if named:
        return "slurm" if named[-1] == "slurm" else "local"
    return "slurm" if any(o.lstrip("+").startswith("cluster=") for o in launch_overrides) else None


def report(args: argparse.Namespace) -> int:
    """--report: the summary of an existing study folder, read from its search.yaml."""
    # optuna loads only once a command needs it (`--help` answers at once)
    from omegaconf import OmegaConf

    from .spec import sweep_path
    from .worker import JOURNAL, SEARCH_FILE, open_study, read_spec

    study_dir = Path(args.study_dir or OmegaConf.load(sweep_path(args.sweep)).study_dir).resolve()
    valid = f"a study folder (one holding {SEARCH_FILE} and {JOURNAL}, written by a launch of the search)"
    if not (study_dir / SEARCH_FILE).is_file() or not (study_dir / JOURNAL).is_file():
        raise ConfigError("--study-dir", str(study_dir), valid)
    try:
        spec = read_spec(study_dir)
        study = open_study(study_dir, spec)
    except Exception as err:  # noqa: BLE001  (yaml's, omegaconf's and optuna's errors on a damaged file)
        raise ConfigError("--study-dir", str(study_dir), f"{valid}; its {SEARCH_FILE} or {JOURNAL} cannot be read "
                          f"({type(err).__name__}: {err})") from None
    summarise(study, study_dir, spec)
    return 0


def summarise(study, study_dir: Path, spec) -> None:
    # matplotlib and pandas load only for a summary
    from .summary import write_summary
    from .worker import finished

    best = write_summary(study, study_dir, spec)["best"]
    print(f"study {spec.name}: {finished(study)} of {spec.n_trials} trials done")
    if best:
        print(f"best: trial {best['number']} {spec.metric}={best['value']:.4f}: {' '.join(best['overrides'])}")
    print(f"summary: {study_dir / 'optuna' / 'summary.md'}")


if __name__ == "__main__":
    sys.exit(main())
