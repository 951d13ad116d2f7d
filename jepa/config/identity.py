"""What identifies a configuration: the one rule behind run-folder names, wandb names and the analysis.

A configuration is what a run computes. Keys that say where, how or as part of which study a run executes
(paths, devices, threads, logging, checkpoint cadence, the launcher) do not identify it, and neither does
the seed: seeds of one configuration are its repeats. Which keys these are is written in the schema
(jepa.config.schema). `experiment` (a preset) does: `experiment=quick` and `experiment=published` compute
different things, so their runs never share a folder.

- run-folder names (hydra.sweep.subdir in conf/config.yaml, the resolver `jepa_run_name`): the identifying
  command-line overrides, sorted, then `seed=<seed>`;
- wandb names (jepa.tracking): the main hyperparameters, then the identifying overrides, no seed;
- the analysis (analysis.group): runs whose identifying config values are equal are seeds of one
  configuration.
"""

from collections.abc import Iterable

from omegaconf import OmegaConf

from .schema import NOT_IDENTIFYING_ROOTS, spec


def override_key(override: str) -> str:
    """'+sweeps=[a,b]' -> 'sweeps', 'hydra/launcher=slurm' -> 'hydra.launcher', '~a.b' -> 'a.b'."""
    return override.split("=", 1)[0].lstrip("+~").replace("/", ".")


def identifies(key: str) -> bool:
    """Whether the config key (dotted, or an override's key) is part of what identifies a configuration:
    the schema's `identifies` for its keys; a config group's choice (`data=generated`, `experiment=quick`)
    and a key the schema does not know identify, the roots in NOT_IDENTIFYING_ROOTS never do."""
    key = override_key(key)
    if key.split(".", 1)[0] in NOT_IDENTIFYING_ROOTS:
        return False
    known = spec(key)
    return known is None or known.rule.identifies


def identifying_overrides(overrides: Iterable[str]) -> list[str]:
    """The overrides that identify a configuration, sorted by key, without their '+' prefix."""
    kept = [str(o).lstrip("+") for o in overrides if identifies(str(o))]
    return sorted(kept, key=lambda o: (override_key(o), o))


def run_name(overrides: Iterable[str], seed) -> str:
    """A run's folder name in its sweep: 'loss.cov_coeff=1,loss.std_coeff=10,seed=1'.

    A '/' in a value would make a sub-folder (or climb out of the sweep folder with '..'): it becomes '_'.
    """
    name = ",".join([*identifying_overrides(overrides), f"seed={seed}"])
    return name.replace("/", "_").replace("\\", "_")


def _resolver_run_name(overrides, seed) -> str:
    return run_name(list(overrides or []), seed)


def register_resolvers() -> None:
    """`${jepa_run_name:${hydra:overrides.task},${seed}}` in conf/config.yaml."""
    if not OmegaConf.has_resolver("jepa_run_name"):
        OmegaConf.register_new_resolver("jepa_run_name", _resolver_run_name)
