"""Start-up checks of a composed config: every bad value is refused before any work is done.

Each check raises ConfigError naming the key, the bad value and what is valid. The known keys of each
group are read from the group's own YAML files under conf/, so adding an option there is all it takes.
The values each option takes are owned by the module that implements it (TRAINING_MODES here,
POLICIES in jepa.models, CPU_ALLOCATORS in jepa.performance, LOGGING_MODES in jepa.tracking).
"""

import math
from functools import cache

import yaml
from omegaconf import DictConfig, OmegaConf

from .errors import ConfigError
from .resources import conf_dir

GROUPS = ("data", "model", "loss", "optim", "training", "logging")
TOP_LEVEL = {"seed", *GROUPS, "study", "hydra"}
DEVICES = "auto, cpu, cuda or cuda:N"
PRECISIONS = ("fp32", "fp16", "bf16")
TRAINING_MODES = ("exact", "fast")


@cache
def known_keys(group: str) -> frozenset[str]:
    keys: set[str] = set()
    for option in (conf_dir() / group).glob("*.yaml"):
        keys |= set(yaml.safe_load(option.read_text()) or {})
    return frozenset(keys)


def _positive(cfg: DictConfig, key: str, integer: bool = False, allow_zero: bool = False) -> None:
    value = OmegaConf.select(cfg, key)
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok and integer:
        ok = float(value).is_integer()
    if ok:
        ok = value >= 0 if allow_zero else value > 0
    if not ok:
        kind = "an integer" if integer else "a number"
        raise ConfigError(key, value, f"must be {kind} {'>= 0' if allow_zero else '> 0'}")


def latent_size(image_size: int, strides) -> int:
    """Frame side after the encoder's strided 3x3 convs (padding 1)."""
    size = image_size
    for s in strides:
        size = (size - 1) // s + 1
    return size


def compose_config(overrides: list[str] = (), check: bool = True) -> DictConfig:
    """The app's config with command-line style overrides, outside a Hydra run (tests, benchmarks)."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(str(conf_dir()), version_base="1.3"):
        cfg = compose("config", overrides=list(overrides))
    if check:
        validate(cfg)
    return cfg


def validate(cfg: DictConfig) -> None:
    """Raise ConfigError for the first bad value of a composed config."""
    from ..data import validate_data_cfg  # the data package owns its own keys' rules

    if "sweeps" in cfg:  # a file of sweeps/ that is not a Hydra study lands under the key `sweeps`
        name = cfg.sweeps.get("name", "?") if isinstance(cfg.sweeps, DictConfig) else cfg.sweeps
        raise ConfigError("+sweeps", name, "a Hydra study (cov_std, steps, seeds, reference_grid); "
                          f"{name} is an Optuna search: `python -m jepa.studies.search {name}`")
    for key in cfg:
        if key not in TOP_LEVEL:
            raise ConfigError(str(key), "<unknown key>", f"top-level keys are {sorted(TOP_LEVEL - {'hydra'})}")
    for group in GROUPS:
        for key in cfg[group]:
            if key not in known_keys(group):
                raise ConfigError(f"{group}.{key}", "<unknown key>", f"{group} keys are {sorted(known_keys(group))}")
    _positive(cfg, "seed", integer=True, allow_zero=True)
    validate_data_cfg(cfg.data)

    m = cfg.model
    for key in ("dobs", "henc", "hpre", "dstc"):
        _positive(cfg, f"model.{key}", integer=True)
    strides = list(m.encoder_strides)
    if len(strides) != 3 or not all(isinstance(s, int) and s >= 1 for s in strides):
        raise ConfigError("model.encoder_strides", strides, "three integers >= 1, one per residual block")
    latent = latent_size(cfg.data.image_size, strides)
    if latent % 8:
        raise ConfigError(
            "data.image_size",
            cfg.data.image_size,
            f"the latent grid ({latent}x{latent} with encoder_strides={strides}) must be divisible by 8 for "
            "the predictor's three 2x downsamplings, e.g. image_size=64 with strides [1,1,1], [2,2,1] or [2,2,2]",
        )
    steps_ok = isinstance(m.steps, int) and not isinstance(m.steps, bool) and 1 <= m.steps <= cfg.data.frames - 2
    if not steps_ok:
        raise ConfigError("model.steps", m.steps, f"an integer in 1 .. frames-2 = {cfg.data.frames - 2}")

    for key in ("std_coeff", "cov_coeff"):
        _positive(cfg, f"loss.{key}", allow_zero=True)
    _positive(cfg, "optim.lr")
    _positive(cfg, "optim.decoder_lr_scale")

    t = cfg.training
    _positive(cfg, "training.epochs", integer=True)
    _positive(cfg, "training.checkpoint_minutes")
    _positive(cfg, "training.eval_every", integer=True)
    _positive(cfg, "training.gif_every", integer=True, allow_zero=True)
    if t.threads is not None:
        _positive(cfg, "training.threads", integer=True)
    device = str(t.device)
    if not (device in ("auto", "cpu", "cuda") or (device.startswith("cuda:") and device[5:].isdigit())):
        raise ConfigError("training.device", device, DEVICES)
    if t.precision not in PRECISIONS:
        raise ConfigError("training.precision", t.precision, f"one of {PRECISIONS}")
    if t.mode not in TRAINING_MODES:
        raise ConfigError("training.mode", t.mode, f"one of {TRAINING_MODES}")
    for key in ("compile", "channels_last", "tf32", "deterministic"):
        if not isinstance(t[key], bool):
            raise ConfigError(f"training.{key}", t[key], "true or false")
    if t.compile_cache_dir is not None and not (isinstance(t.compile_cache_dir, str) and t.compile_cache_dir):
        raise ConfigError("training.compile_cache_dir", t.compile_cache_dir, "a folder path, or null for the default")
    from ..models.activation_checkpointing import POLICIES
    from ..performance.cpu_allocator import CPU_ALLOCATORS
    from ..tracking.wandb_run import LOGGING_MODES

    if t.cpu_allocator not in CPU_ALLOCATORS:
        raise ConfigError("training.cpu_allocator", t.cpu_allocator, f"one of {CPU_ALLOCATORS}")
    if t.activation_checkpointing not in POLICIES:
        raise ConfigError("training.activation_checkpointing", t.activation_checkpointing, f"one of {POLICIES}")
    if t.activation_checkpointing == "lean" and t.compile:
        # The lean path tags tensors and swaps what autograd saves: not something torch.compile can trace.
        raise ConfigError(
            "training.activation_checkpointing", "lean", "none, selective or full with training.compile=true"
        )
    if cfg.logging.mode not in LOGGING_MODES:
        raise ConfigError("logging.mode", cfg.logging.mode, f"one of {LOGGING_MODES}")
