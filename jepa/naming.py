"""Run-folder names for sweeps: every overridden (swept) key, then the seed.

Registered as the OmegaConf resolver `jepa_run_name`, used by hydra.sweep.subdir in conf/config.yaml.
"""

from omegaconf import OmegaConf


def run_name(override_dirname: str, seed) -> str:
    """'loss.cov_coeff=1,loss.std_coeff=10' and seed 1 -> 'loss.cov_coeff=1,loss.std_coeff=10,seed=1'."""
    return ",".join(part for part in (override_dirname, f"seed={seed}") if part)


def register_resolvers() -> None:
    if not OmegaConf.has_resolver("jepa_run_name"):
        OmegaConf.register_new_resolver("jepa_run_name", run_name)
