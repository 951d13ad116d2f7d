"""The sweep file (sweeps/<name>.yaml) and its checks: a bad search space is refused before any worker starts.

`load_sweep` reads the file, applies the command line and checks everything that can be checked up front:
the file's keys, each searched parameter's range (through optuna's own distributions), the sampler's and
pruner's arguments, and the run config at every corner of the space (compose_config with each parameter at
its low and high end, or each choice), so unknown keys and values the trainer refuses fail here.
"""

from __future__ import annotations

import inspect
import json
import re
from pathlib import Path

import optuna
from hydra.errors import HydraException
from omegaconf import DictConfig, ListConfig, OmegaConf
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.storages.journal import JournalFileOpenLock, JournalFileSymlinkLock

from ...config import ConfigError, compose_config
from ...config.resources import sweeps_dir

KEYS = {"name", "study_dir", "metric", "direction", "n_trials", "overrides", "space", "search", "sampler",
        "pruner", "workers", "launcher", "lock", "heartbeat_s", "grace_s", "slurm"}
SAMPLERS = {"tpe": optuna.samplers.TPESampler, "random": optuna.samplers.RandomSampler}
PRUNERS = {"median": optuna.pruners.MedianPruner, "hyperband": optuna.pruners.HyperbandPruner,
           "threshold": optuna.pruners.ThresholdPruner, "none": optuna.pruners.NopPruner}
LOCKS = {"symlink": JournalFileSymlinkLock, "open": JournalFileOpenLock}
LAUNCHERS = ("local", "slurm")
PARAM_KEYS = {"type", "low", "high", "log", "step", "choices"}


def is_search_file(path: Path) -> bool:
    """An Optuna search (it has a `space`), not a Hydra study (`+sweeps=NAME` of python -m jepa.train)."""
    try:
        return "space" in (OmegaConf.load(path) or {})
    except Exception:  # noqa: BLE001  (not YAML, not a mapping: not a search)
        return False


def search_names() -> list[str]:
    return sorted(p.stem for p in sweeps_dir().glob("*.yaml") if is_search_file(p))


def sweep_path(sweep: str) -> Path:
    """sweeps/<sweep>.yaml for a bare name, else the path itself; refuses files that are not searches."""
    path = Path(sweep) if sweep.endswith((".yaml", ".yml")) or "/" in sweep else sweeps_dir() / f"{sweep}.yaml"
    valid = f"an Optuna search under sweeps/ ({', '.join(search_names())}) or a path to one"
    if not path.is_file():
        raise ConfigError("sweep", sweep, valid)
    try:
        OmegaConf.load(path)
    except Exception as err:  # noqa: BLE001  (yaml's and omegaconf's parse errors)
        raise ConfigError("sweep", sweep, f"{valid}; {path} is not valid YAML ({type(err).__name__}: {err})") from None
    if not is_search_file(path):
        raise ConfigError("sweep", sweep, f"{valid}; {path.name} is a Hydra study: run it with "
                          f"`python -m jepa.train +sweeps={path.stem}`")
    return path


def load_sweep(sweep: str, overrides=(), settings=(), **shortcuts) -> DictConfig:
    """The checked sweep: the file, then `settings` (KEY=VALUE), then the non-None shortcuts
    (n_trials, workers, launcher, study_dir, search), with `overrides` appended to the file's.
    Setting another sampler.name or pruner.name drops the file's arguments for the old one.
    """
    spec = OmegaConf.load(sweep_path(sweep))
    try:
        extra = OmegaConf.from_dotlist(list(settings))
    except Exception as err:  # omegaconf's parse errors carry no common base worth naming
        raise ConfigError("--set", list(settings), f"KEY=VALUE pairs of the sweep file ({err})") from None
    for source, keys in (("the sweep file", set(spec)), ("--set", set(extra))):
        if unknown := keys - KEYS:
            raise ConfigError(sorted(unknown)[0], "<unknown key>", f"sweep keys ({source}) are {sorted(KEYS)}")
    for section in ("sampler", "pruner"):  # another sampler or pruner starts without the file's arguments
        given, own = extra.get(section), spec.get(section)
        if isinstance(given, DictConfig) and isinstance(own, DictConfig) and given.get("name", own.get("name")) \
                != own.get("name"):
            spec[section] = {}
    spec.merge_with(extra)
    for key, value in shortcuts.items():
        if value is not None:
            spec[key] = value
    check_shape(spec)
    spec.overrides = [*spec.overrides, *overrides]
    spec.study_dir = str(Path(spec.study_dir).resolve())
    check(spec)
    return spec


MAPPINGS = ("space", "sampler", "pruner", "slurm")
LISTS = ("search", "overrides")
STRINGS = ("name", "study_dir", "metric", "direction", "launcher", "lock")
# metrics.jsonl keys a trial can optimise: a training loss term, or a validation AP / probe error
METRIC = re.compile(r"train/[a-z_]+|val/((copy_last|chance)/)?(mAP|mAP_full|AP_\d+|AP_full_\d+)|val/(dec_mse|det_bce)")


def check_shape(spec: DictConfig) -> None:
    """Every key present with the type it must have (the file's and --set's values alike)."""
    if missing := sorted(KEYS - set(spec)):
        raise ConfigError(missing[0], "<missing>", f"every sweep file sets {sorted(KEYS)} (see sweeps/optuna_vc.yaml)")
    for key in MAPPINGS:
        if not isinstance(spec[key], DictConfig):
            raise ConfigError(key, spec[key], f"a mapping (--set {key}.KEY=VALUE sets one of its keys)")
    for key in LISTS:
        if not isinstance(spec[key], ListConfig):
            raise ConfigError(key, spec[key], f"a list, e.g. --set '{key}=[a,b]'")
    for key in STRINGS:
        if not isinstance(spec[key], str) or not spec[key].strip():
            raise ConfigError(key, spec[key], "a non-empty string")
    if not METRIC.fullmatch(spec.metric):
        raise ConfigError("metric", spec.metric, "a per-epoch metrics.jsonl key: train/<loss term> (train/loss, "
                          "train/pred, ...), val/mAP, val/mAP_full, val/AP_<k>, val/dec_mse or val/det_bce")
    for name, param in spec.space.items():
        nested = [other for other in spec.space if other != name and other.startswith(f"{name}.")]
        if nested or not isinstance(param, DictConfig):
            raise ConfigError(f"space.{name}", param if not nested else "<set by --set>",
                              f"a parameter's range (keys {sorted(PARAM_KEYS)}); --set cannot reach a parameter "
                              "whose name holds dots: copy the sweep file and edit its space" if nested else
                              f"a parameter's range (keys {sorted(PARAM_KEYS)})")


def check(spec: DictConfig) -> None:
    """Raise ConfigError for the first bad setting (the run config at each corner of the space included)."""
    if spec.direction not in ("maximize", "minimize"):
        raise ConfigError("direction", spec.direction, "maximize or minimize")
    for key in ("n_trials", "workers", "heartbeat_s", "grace_s"):
        if isinstance(spec[key], bool) or not isinstance(spec[key], int) or spec[key] < 1:  # true is no count
            raise ConfigError(key, spec[key], "an integer >= 1")
    if spec.grace_s <= 2 * spec.heartbeat_s:
        raise ConfigError("grace_s", spec.grace_s, f"more than two heartbeats ({2 * spec.heartbeat_s} s)")
    if spec.launcher not in LAUNCHERS:
        raise ConfigError("launcher", spec.launcher, " | ".join(LAUNCHERS))
    if spec.lock not in LOCKS:
        raise ConfigError("lock", spec.lock, " | ".join(LOCKS))
    seed = spec.sampler.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise ConfigError("sampler.seed", seed, "an integer >= 0, or null")
    for name, table in (("sampler", SAMPLERS), ("pruner", PRUNERS)):
        check_arguments(name, spec[name], table)
    for name in spec.space:
        distribution(name, spec.space[name])  # every parameter of the space, searched or not
    search = list(spec.search)
    missing = [name for name in search if name not in spec.space]
    if missing or not search:
        raise ConfigError("search", search, f"one or more of the space's parameters {list(spec.space)}")
    fixed = {override.lstrip("+~").split("=", 1)[0] for override in spec.overrides}
    clash = sorted(fixed & set(search))
    if clash:
        raise ConfigError(clash[0], "<fixed and searched>", "an override may not set a searched parameter")
    cfg = compose_trial(spec.overrides, spec.name)
    for name, dist in distributions(spec).items():
        for value in corners(dist):
            compose_trial([*spec.overrides, override(name, value)], spec.name, param=name)
    if spec.pruner.name == "hyperband" and spec.pruner.get("max_resource") is None:
        spec.pruner.max_resource = int(cfg.training.epochs)


def check_arguments(key: str, section: DictConfig, table: dict) -> None:
    """section.name names a class of `table`; the other keys must be its keyword arguments."""
    name = section.get("name")
    if name not in table:
        raise ConfigError(f"{key}.name", name, " | ".join(table))
    accepted = set(inspect.signature(table[name]).parameters)
    for argument in set(section) - {"name"} - accepted:
        raise ConfigError(f"{key}.{argument}", section[argument], f"{name} takes {sorted(accepted)}")
    arguments = {k: v for k, v in OmegaConf.to_container(section).items() if k != "name"}
    try:
        table[name](**arguments)  # optuna checks its own arguments' values
    except (TypeError, ValueError) as err:
        raise ConfigError(key, arguments, f"{name}'s arguments ({type(err).__name__}: {err})") from None


def distributions(spec: DictConfig) -> dict[str, BaseDistribution]:
    """The searched parameters as optuna distributions (which check their own ranges)."""
    return {name: distribution(name, spec.space[name]) for name in spec.search}


def distribution(name: str, param: DictConfig) -> BaseDistribution:
    param = OmegaConf.to_container(param)
    kind = param.get("type", "float")
    unknown = set(param) - PARAM_KEYS
    if unknown:
        raise ConfigError(f"space.{name}.{sorted(unknown)[0]}", "<unknown key>", f"keys are {sorted(PARAM_KEYS)}")
    try:
        if kind == "categorical":
            if not param.get("choices"):
                raise ValueError("categorical needs a non-empty `choices` list")
            return CategoricalDistribution(param["choices"])
        if kind not in ("float", "int"):
            raise ValueError("type is float, int or categorical")
        cls = FloatDistribution if kind == "float" else IntDistribution
        step = param.get("step", None if kind == "float" else 1)
        return cls(param["low"], param["high"], log=param.get("log", False), step=step)
    except (KeyError, TypeError, ValueError) as err:
        raise ConfigError(f"space.{name}", param, f"{type(err).__name__}: {err}") from None


def corners(dist: BaseDistribution) -> list:
    return list(dist.choices) if isinstance(dist, CategoricalDistribution) else [dist.low, dist.high]


def override(key: str, value) -> str:
    """A Hydra override for one parameter value."""
    if isinstance(value, bool) or value is None:
        return f"{key}={json.dumps(value)}"
    if isinstance(value, (list, tuple)):
        return f"{key}=[{','.join(map(str, value))}]"
    return f"{key}={value!r}" if isinstance(value, float) else f"{key}={value}"


def compose_trial(overrides: list[str], study: str, param: str | None = None) -> DictConfig:
    """The validated run config of a trial; Hydra's errors (unknown key, bad syntax) become ConfigError."""
    try:
        return compose_config([*overrides, f"study={study}"])
    except HydraException as err:
        raise ConfigError(param or "overrides", overrides[-1] if param else list(overrides), str(err)) from None
