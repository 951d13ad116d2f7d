"""Digit sources for generated Moving MNIST: MNIST training digits as uint8 [N, 28, 28]."""
import functools
import gzip
import struct
from importlib import resources
from pathlib import Path

import numpy as np

from jepa.config.errors import ConfigError
from jepa.config.schema import DIGIT_SOURCES, same_value
from jepa.data.download import fetch_first

BUILTIN_FILE = "mnist_digits.npz"  # its source and licence: MNIST_NOTICE.md beside it
DIGIT_SIZE = 28
SPLIT_SEED = 0  # the train/val digit split ignores the run seed: every seed validates on the same digits
# Where a full MNIST training split is looked for inside `root` (keras, raw IDX and torchvision layouts).
LOCAL_NAMES = ("mnist.npz", "train-images-idx3-ubyte", "train-images-idx3-ubyte.gz",
               "MNIST/raw/train-images-idx3-ubyte", "MNIST/raw/train-images-idx3-ubyte.gz")
# Public mirrors, tried in order: (url, file name written into `root`).
MNIST_MIRRORS = (
    ("https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz", "mnist.npz"),
    ("https://ossci-datasets.s3.amazonaws.com/mnist/train-images-idx3-ubyte.gz", "train-images-idx3-ubyte.gz"),
    ("https://yann.lecun.com/exdb/mnist/train-images-idx3-ubyte.gz", "train-images-idx3-ubyte.gz"),
)


@functools.lru_cache(maxsize=1)
def builtin_digits() -> np.ndarray:
    """The 5,000 MNIST training digits shipped in the package (500 per class, sorted by class) -> [5000, 28, 28].

    Read-only: the array is shared by every caller of this cache.
    """
    with resources.files("jepa.data").joinpath(BUILTIN_FILE).open("rb") as f, np.load(f) as archive:
        images = archive["images"]
    images.flags.writeable = False
    return images


def read_mnist_file(path: Path) -> np.ndarray:
    """A keras `mnist.npz` (key x_train) or an IDX image file (optionally .gz) -> uint8 [N, 28, 28]."""
    try:
        if path.suffix == ".npz":
            with np.load(path) as archive:
                images = archive["x_train"]
        else:
            with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as f:
                raw = f.read()
            magic, n, rows, cols = struct.unpack(">4I", raw[:16])
            if magic != 2051:  # IDX magic for a 3-D uint8 array
                raise ValueError(f"IDX magic {magic} is not 2051")
            images = np.frombuffer(raw, np.uint8, offset=16).reshape(n, rows, cols)
    except (OSError, ValueError, KeyError, EOFError, struct.error) as e:
        raise ConfigError("data.digits_path", str(path), f"corrupt or unreadable MNIST file ({e})") from e
    if images.ndim != 3 or images.shape[1:] != (DIGIT_SIZE, DIGIT_SIZE) or images.dtype != np.uint8:
        raise ConfigError("data.digits_path", str(path),
                          f"corrupt: expected uint8 [N, 28, 28] images, got {images.dtype} {images.shape}")
    return np.ascontiguousarray(images)


def find_mnist(root: Path, digits_path: str | None, download: bool) -> Path:
    """The full-MNIST file to read: `digits_path`, else one in `root`, else a fresh download into `root`."""
    if digits_path is not None:
        path = Path(digits_path).expanduser()
        if not path.is_file():
            raise ConfigError("data.digits_path", digits_path, "no such file; give a mnist.npz or "
                              "train-images-idx3-ubyte[.gz], or null to look in data.root")
        return path
    for name in LOCAL_NAMES:
        if (root / name).is_file():
            return root / name
    reason = "data.download is false"
    if download:
        try:
            return fetch_first([(url, root / name) for url, name in MNIST_MIRRORS])
        except OSError as e:
            reason = f"download failed: {e}"
    raise ConfigError("data.digits", "mnist", f"the MNIST training images are not in {root} and {reason}. "
                      f"Put mnist.npz (keras layout) or train-images-idx3-ubyte[.gz] there (the folder is "
                      f"data.root, env JEPA_DATA_DIR) or set data.digits_path; data.digits=builtin works offline")


def load_digits(source: str, root: str | Path, digits_path: str | None = None, download: bool = False) -> np.ndarray:
    """Digits of `source` (one of DIGIT_SOURCES) -> uint8 [N, 28, 28]. Raises ConfigError when unavailable."""
    if same_value("data.digits", source) == "builtin":  # or a former name of it
        return builtin_digits()
    if source == "mnist":
        return read_mnist_file(find_mnist(Path(root).expanduser().resolve(), digits_path, download))
    raise ConfigError("data.digits", source, f"one of {', '.join(DIGIT_SOURCES)}")


def split_digits(digits: np.ndarray, val_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Disjoint (train, val) digit sets: a fixed permutation, the first round(N * val_fraction) validate."""
    num_val = round(len(digits) * val_fraction)
    if not 0 < num_val < len(digits):
        raise ConfigError("data.val_digit_fraction", val_fraction,
                          f"must leave at least one of the {len(digits)} digits on each side")
    order = np.random.default_rng(SPLIT_SEED).permutation(len(digits))
    return digits[order[num_val:]], digits[order[:num_val]]
