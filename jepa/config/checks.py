"""Start-up checks of a composed config: every bad value is refused before any work is done.

Each key is checked against its schema entry (jepa.config.schema: type, range, choices); the rules that tie
keys together are the functions below. Each raises ConfigError naming the key, the bad value and what is valid.
"""

from omegaconf import DictConfig, ListConfig, OmegaConf

from .errors import ConfigError
from .resources import conf_dir
from .schema import CANONICAL_FILE_FRAMES, GROUPS, check_value, group_specs, valid_text
from .schema import spec as schema_spec

TOP_LEVEL = {*group_specs(""), *GROUPS, "hydra"}
DEVICES = "auto, cpu, cuda or cuda:N"


def latent_size(image_size: int, strides) -> int:
    """Frame side after the encoder's strided 3x3 convs (padding 1)."""
    size = image_size
    for s in strides:
        size = (size - 1) // s + 1
    return size


def compose_config(overrides: list[str] = (), check: bool = True, with_hydra: bool = False) -> DictConfig:
    """The app's config with command-line style overrides, outside a Hydra run (tests, benchmarks, the
    search's launcher settings: with_hydra keeps the `hydra` node)."""
    from hydra import compose, initialize_config_dir  # Hydra's compose API: only callers outside the app need it

    with initialize_config_dir(str(conf_dir()), version_base="1.3"):
        cfg = compose("config", overrides=list(overrides), return_hydra_config=with_hydra)
    if check:
        validate(cfg)
    return cfg


def _plain(value):
    return OmegaConf.to_container(value, resolve=True) if isinstance(value, (DictConfig, ListConfig)) else value


def check_group(group: str, cfg, applies=lambda spec: True) -> None:
    """Every key of a group ('' for the top level) the schema knows, against its type and range."""
    for name, spec in group_specs(group).items():
        if not applies(spec):
            continue
        value = _plain(cfg.get(name))
        if not check_value(spec, value):
            raise ConfigError(spec.name, value, valid_text(spec))


def check_key(dotted: str, value) -> None:
    """One key against its schema entry, outside a composed config."""
    spec = schema_spec(dotted)
    if not check_value(spec, value):
        raise ConfigError(spec.name, value, valid_text(spec))


def _refuse_unknown(group: str, cfg) -> None:
    known = sorted(group_specs(group))
    for name in cfg:
        if name not in known:
            raise ConfigError(f"{group}.{name}", "<unknown key>", f"{group} keys are {known}")


def validate_data(data_cfg) -> None:
    """The data group alone, without touching any file (what jepa.data.build_datasets checks)."""
    check_group("data", data_cfg, lambda s: s.name == "data.source")
    source = data_cfg.get("source")
    check_group("data", data_cfg, lambda s: s.rule.source in (None, source))
    if source != "canonical":
        return
    if data_cfg.get("labels") != "contour":  # the file has no digit positions to label exactly
        raise ConfigError("data.labels", data_cfg.get("labels"), "one of contour")
    if data_cfg.get("image_size") != 64:
        raise ConfigError("data.image_size", data_cfg.get("image_size"), "64: the canonical frames are 64x64")
    if CANONICAL_FILE_FRAMES % data_cfg.get("frames"):
        divisors = [t for t in range(3, CANONICAL_FILE_FRAMES + 1) if CANONICAL_FILE_FRAMES % t == 0]
        raise ConfigError("data.frames", data_cfg.get("frames"), f"a divisor of the canonical file's "
                          f"{CANONICAL_FILE_FRAMES} frames: one of {', '.join(map(str, divisors))}")


def _check_model(cfg: DictConfig) -> None:
    strides = _plain(cfg.model.encoder_strides)
    if len(strides) != 3:
        raise ConfigError("model.encoder_strides", strides, "three integers >= 1, one per residual block")
    latent = latent_size(cfg.data.image_size, strides)
    if latent % 8:
        raise ConfigError(
            "data.image_size",
            cfg.data.image_size,
            f"the latent grid ({latent}x{latent} with encoder_strides={strides}) must be divisible by 8 for "
            "the predictor's three 2x downsamplings, e.g. image_size=64 with strides [1,1,1], [2,2,1] or [2,2,2]",
        )
    if cfg.model.steps > cfg.data.frames - 2:
        raise ConfigError("model.steps", cfg.model.steps, f"an integer in 1 .. frames-2 = {cfg.data.frames - 2}")


def _check_training(t: DictConfig) -> None:
    device = str(t.device)
    if not (device in ("auto", "cpu", "cuda") or (device.startswith("cuda:") and device[5:].isdigit())):
        raise ConfigError("training.device", device, DEVICES)
    if t.activation_checkpointing == "lean" and t.compile:
        # The lean path tags tensors and swaps what autograd saves: not something torch.compile can trace.
        raise ConfigError(
            "training.activation_checkpointing", "lean", "none, selective or full with training.compile=true"
        )


def validate(cfg: DictConfig) -> None:
    """Raise ConfigError for the first bad value of a composed config."""
    if "sweeps" in cfg:  # a file of sweeps/ that is not a Hydra study lands under the key `sweeps`
        name = cfg.sweeps.get("name", "?") if isinstance(cfg.sweeps, DictConfig) else cfg.sweeps
        raise ConfigError("+sweeps", name, "a Hydra study (cov_std, steps, seeds, reference_grid); "
                          f"{name} is an Optuna search: `python -m jepa.studies.search {name}`")
    for key in cfg:
        if key not in TOP_LEVEL:
            raise ConfigError(str(key), "<unknown key>", f"top-level keys are {sorted(TOP_LEVEL - {'hydra'})}")
    for group in GROUPS:
        _refuse_unknown(group, cfg[group])
    check_group("", cfg)
    validate_data(cfg.data)
    for group in ("model", "loss", "optim", "training", "logging"):
        check_group(group, cfg[group])
    _check_model(cfg)
    _check_training(cfg.training)
