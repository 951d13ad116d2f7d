"""Moving MNIST for the JEPA: the canonical file or generated sequences, as (video, labels) datasets.

Every item is (video float32 [1, T, H, W] in [0, 1], labels float32 [T, 8, 8] in {0, 1}); batch them with
`make_loader`. `build_datasets` reads the `data` config group (conf/data/*.yaml).
"""
import math

from jepa.config.errors import ConfigError
from jepa.data import canonical
from jepa.data.canonical import CanonicalMovingMNIST
from jepa.data.digits import DIGIT_SIZE, DIGIT_SOURCES, load_digits, split_digits
from jepa.data.generator import LABEL_KINDS, MovingMNIST
from jepa.data.loader import make_loader

__all__ = ["CanonicalMovingMNIST", "MovingMNIST", "build_datasets", "make_loader", "validate_data_cfg"]
SOURCES = ("canonical", "generated")
MIN_FREE_PX = 4  # generated frames need some room around a 28 px digit to move in


def _check_int(cfg, key: str, minimum: int, allow_none: bool = False) -> None:
    value = cfg.get(key)
    if allow_none and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        valid = f"an integer >= {minimum}" + (" or null" if allow_none else "")
        raise ConfigError(f"data.{key}", value, valid)


def _check_choice(cfg, key: str, choices: tuple) -> None:
    if cfg.get(key) not in choices:
        raise ConfigError(f"data.{key}", cfg.get(key), f"one of {', '.join(choices)}")


def validate_data_cfg(data_cfg) -> None:
    """Check the data keys without touching any file. Raises ConfigError naming the key and what is valid."""
    cfg = dict(data_cfg)  # a DictConfig resolves its interpolations (root's env var) here
    _check_choice(cfg, "source", SOURCES)
    _check_int(cfg, "frames", 3)  # the predictor needs 2 context frames and 1 target
    _check_int(cfg, "batch_size", 1)
    _check_int(cfg, "num_workers", 0)
    _check_int(cfg, "max_train_sequences", 1, allow_none=True)
    _check_int(cfg, "max_val_sequences", 1, allow_none=True)
    if not isinstance(cfg.get("root"), str) or not cfg.get("root"):
        raise ConfigError("data.root", cfg.get("root"), "a folder path (default: env JEPA_DATA_DIR, else data)")
    if cfg.get("source") == "canonical":
        _check_choice(cfg, "labels", ("contour",))  # the file has no digit positions to label exactly
        _check_int(cfg, "split_seed", 0)
        _check_int(cfg, "num_val_sequences", 1)
        if cfg.get("image_size") != 64:
            raise ConfigError("data.image_size", cfg.get("image_size"), "64: the canonical frames are 64x64")
        if canonical.FILE_FRAMES % cfg.get("frames"):
            divisors = [t for t in range(3, canonical.FILE_FRAMES + 1) if canonical.FILE_FRAMES % t == 0]
            raise ConfigError("data.frames", cfg.get("frames"), f"a divisor of the canonical file's "
                              f"{canonical.FILE_FRAMES} frames: one of {', '.join(map(str, divisors))}")
        return
    _check_choice(cfg, "labels", LABEL_KINDS)
    _check_choice(cfg, "digits", DIGIT_SOURCES)
    _check_int(cfg, "image_size", DIGIT_SIZE + MIN_FREE_PX)
    for key in ("num_train", "num_val", "num_digits"):
        _check_int(cfg, key, 1)
    _check_int(cfg, "val_seed", 0)
    speed = cfg.get("speed")
    if isinstance(speed, bool) or not isinstance(speed, (int, float)) or not 0 < speed < math.inf:
        raise ConfigError("data.speed", speed, "a positive number of pixels per frame")
    fraction = cfg.get("val_digit_fraction")
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
        raise ConfigError("data.val_digit_fraction", fraction, "a fraction strictly between 0 and 1")


def _canonical(cfg):
    path = canonical.find_file(cfg.get("root"), bool(cfg.get("download")))
    frames = canonical.open_frames(path)
    if frames.shape[0] % cfg["frames"]:
        raise ConfigError("data.frames", cfg["frames"], f"a divisor of the file's {frames.shape[0]} frames")
    train_seq, val_seq = canonical.split_sequences(frames.shape[1], cfg["num_val_sequences"], cfg["split_seed"])
    packed = canonical.cached_labels(path, frames)
    return (CanonicalMovingMNIST(path, train_seq, cfg["frames"], packed, cfg.get("max_train_sequences")),
            CanonicalMovingMNIST(path, val_seq, cfg["frames"], packed, cfg.get("max_val_sequences")))


def _first(count: int, limit: int | None) -> int:
    return count if limit is None else min(count, limit)


def _generated(cfg, seed: int):
    digits = load_digits(cfg["digits"], cfg.get("root"), cfg.get("digits_path"), bool(cfg.get("download")))
    train_digits, val_digits = split_digits(digits, cfg["val_digit_fraction"])
    common = {key: cfg[key] for key in ("frames", "image_size", "num_digits", "speed", "labels")}
    num_train = _first(cfg["num_train"], cfg.get("max_train_sequences"))
    num_val = _first(cfg["num_val"], cfg.get("max_val_sequences"))
    return (MovingMNIST(train_digits, num_train, seed=seed, split="train", **common),
            MovingMNIST(val_digits, num_val, seed=cfg["val_seed"], split="val", **common))


def build_datasets(data_cfg, seed: int):
    """The data config group -> (train_ds, val_ds). Raises ConfigError for bad keys and missing/corrupt files.

    Generated training sequences depend on the run's `seed` (item i is a function of (seed, "train", i));
    validation sequences on data.val_seed alone, so every run seed is evaluated on the same sequences, as the
    canonical split depends only on data.split_seed.
    """
    validate_data_cfg(data_cfg)
    cfg = dict(data_cfg)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError("seed", seed, "a non-negative integer")
    train, val = _canonical(cfg) if cfg["source"] == "canonical" else _generated(cfg, seed)
    if len(train) < cfg["batch_size"]:  # not even one full batch: a batch size that cannot be meant
        raise ConfigError("data.batch_size", cfg["batch_size"],
                          f"at most the {len(train)} training sequences (see data.max_train_sequences)")
    return train, val
