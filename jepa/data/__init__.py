"""Moving MNIST for the JEPA: the canonical file or generated sequences, as (video, labels) datasets.

Every item is (video float32 [1, T, H, W] in [0, 1], labels float32 [T, 8, 8] in {0, 1}); batch them with
`make_loader`. `build_datasets` reads the `data` config group (conf/data/*.yaml; its keys: jepa.config.schema).
"""
from jepa.config import validate_data
from jepa.config.errors import ConfigError
from jepa.data import canonical
from jepa.data.canonical import CanonicalMovingMNIST
from jepa.data.digits import load_digits, split_digits
from jepa.data.generator import MovingMNIST
from jepa.data.loader import make_loader

__all__ = ["CanonicalMovingMNIST", "MovingMNIST", "build_datasets", "epoch_sequences", "make_loader"]
CANONICAL_SEQUENCES = 10_000  # sequences in the published file (of canonical.FILE_FRAMES frames each)


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
    validate_data(data_cfg)
    cfg = dict(data_cfg)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError("seed", seed, "a non-negative integer")
    train, val = _canonical(cfg) if cfg["source"] == "canonical" else _generated(cfg, seed)
    if len(train) < cfg["batch_size"]:  # not even one full batch: a batch size that cannot be meant
        raise ConfigError("data.batch_size", cfg["batch_size"],
                          f"at most the {len(train)} training sequences (see data.max_train_sequences)")
    return train, val


def epoch_sequences(data_cfg) -> int:
    """Training sequences of one epoch under the data config, without opening any file (the last partial
    batch is trained too)."""
    if data_cfg.source == "canonical":
        count = (CANONICAL_SEQUENCES - data_cfg.num_val_sequences) * (canonical.FILE_FRAMES // data_cfg.frames)
    else:
        count = data_cfg.num_train
    if data_cfg.get("max_train_sequences") is not None:
        count = min(count, data_cfg.max_train_sequences)
    return count
