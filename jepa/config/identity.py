"""What identifies a configuration: the one rule behind run-folder names, wandb names and the analysis.

A configuration is what a run computes. Keys that say where, how or as part of which study a run executes
(paths, devices, threads, logging, checkpoint cadence, the launcher) do not identify it, and neither does
the seed: seeds of one configuration are its repeats. `experiment` (a preset) does: `experiment=quick` and
`experiment=published` compute different things, so their runs never share a folder.

- run-folder names (hydra.sweep.subdir in conf/config.yaml, the resolver `jepa_run_name`): the identifying
  command-line overrides, sorted, then `seed=<seed>`;
- wandb names (jepa.tracking): the main hyperparameters, then the identifying overrides, no seed;
- the analysis (analysis.group): runs whose identifying config values are equal are seeds of one
  configuration.
"""

from collections.abc import Iterable

from omegaconf import OmegaConf

# Keys, with everything below them, that do not identify a configuration.
NOT_IDENTIFYING = (
    "seed", "study", "sweeps", "cluster", "hydra", "logging",
    "data.root", "data.download", "data.num_workers",
    "training.device", "training.threads", "training.progress", "training.resume", "training.allow_config_change",
    "training.checkpoint_minutes", "training.gif_every", "training.cpu_allocator",
)
# A key whose last part is a location (data.digits_path, a run_dir) says where a file is, not what it holds.
LOCATION_SUFFIXES = ("root", "dir", "path", "file")


def override_key(override: str) -> str:
    """'+sweeps=[a,b]' -> 'sweeps', 'hydra/launcher=slurm' -> 'hydra.launcher', '~a.b' -> 'a.b'."""
    return override.split("=", 1)[0].lstrip("+~").replace("/", ".")


def identifies(key: str) -> bool:
    """Whether the config key (dotted, or an override's key) is part of what identifies a configuration."""
    key = override_key(key)
    if any(key == k or key.startswith(k + ".") for k in NOT_IDENTIFYING):
        return False
    last = key.rsplit(".", 1)[-1]
    return not any(last == s or last.endswith("_" + s) or last.endswith("_" + s + "s") for s in LOCATION_SUFFIXES)


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
