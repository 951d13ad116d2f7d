"""The canonical Moving MNIST file behind the published numbers (docs/model.md §1), memory-mapped.

`mnist_test_seq.npy` is uint8 [20, 10000, 64, 64], time first. Sequences are permuted with
`RandomState(split_seed).permutation`; the first `num_val_sequences` validate, the rest train. Each 20-frame
sequence is cut into 20 // T pieces of T frames: item i of a split is piece i % pieces of sequence
split[i // pieces], so with T = 10 items 2k and 2k+1 are the two halves of one sequence.
"""
import http.client
import json
import logging
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from jepa.atomic_write import atomic_write
from jepa.config.errors import ConfigError
from jepa.config.schema import CANONICAL_FILE_FRAMES
from jepa.data.download import CHUNK, fetch, stream_digests
from jepa.data.labels import GRID, contour_labels

log = logging.getLogger(__name__)
FILE_NAME = "mnist_test_seq.npy"
URL = "http://www.cs.toronto.edu/~nitish/unsupervised_video/mnist_test_seq.npy"
FILE_FRAMES = CANONICAL_FILE_FRAMES  # frames per sequence in the published file
# The file's only published digest (torchvision's MovingMNIST lists it): MD5, so MD5 is what is checked. The
# SHA-256 is computed in the same pass and recorded in the verification stamp beside the file.
EXPECTED_MD5 = "be083ec986bfe91a449d63653c411eb2"
LABELER_VERSION = 1  # bump when contour_labels changes: cached labels of an older version are recomputed


def find_file(root: str | Path, download: bool) -> Path:
    """The path of the canonical file in `root`, downloading it when missing and allowed. Raises ConfigError."""
    root = Path(root).expanduser().resolve()
    path = root / FILE_NAME
    if path.is_file():
        return path
    reason = "data.download is false"
    if download:
        try:  # a file that is not the published one is refused before it takes the name: nothing to remove
            found = fetch(URL, path, check=lambda got: refuse_unpublished(path, got["md5"]))
        except ConfigError:
            raise
        except (OSError, ValueError, http.client.HTTPException) as e:
            reason = f"downloading {URL} failed ({e})"
        else:
            stamp_verified(path, found)
            return path
    raise ConfigError("data.root", str(root), f"{FILE_NAME} is not there and {reason}. Put the file in that "
                      f"folder (data.root, or env JEPA_DATA_DIR), or use data=generated, which works offline")


def digests(path: Path) -> dict[str, str]:
    """{'md5': ..., 'sha256': ...} of the file, read once in chunks (about 3 s for the 800 MB file)."""
    with open(path, "rb") as f:
        return stream_digests(iter(lambda: f.read(CHUNK), b""))


def verify(path: Path) -> None:
    """Refuse a file that is not the published one (its MD5), hashing it only once per file version.

    The verified digests are stamped next to the file (`mnist_test_seq.verified.json`, keyed by size and
    mtime like the labels cache), so an unchanged file is not read again on every start.
    """
    key = _stamp_key(path)
    stamp = path.with_suffix(".verified.json")
    try:
        if {k: v for k, v in json.loads(stamp.read_text()).items() if k in key} == key:
            return
    except (OSError, ValueError, AttributeError):
        pass  # missing, stale or damaged: hash the file
    log.info("checking %s against its published MD5 (once; stamped in %s)", path, stamp)
    found = digests(path)
    refuse_unpublished(path, found["md5"])
    stamp_verified(path, found)


def _stamp_key(path: Path) -> dict:
    stat = path.stat()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "md5": EXPECTED_MD5}


def refuse_unpublished(path: Path, md5: str) -> None:
    """ConfigError unless `md5` is the published file's."""
    if md5 != EXPECTED_MD5:
        raise ConfigError("data.root", str(path), f"not the published {FILE_NAME}: MD5 {md5}, expected "
                          f"{EXPECTED_MD5}; delete it and run again to download it (data.download=true), or "
                          f"use data=generated")


def stamp_verified(path: Path, found: dict[str, str]) -> None:
    """Stamp the verified file beside it (keyed by its size and mtime), so `verify` does not hash it again."""
    stamp = path.with_suffix(".verified.json")
    try:
        atomic_write(stamp, lambda out: out.write(json.dumps({**_stamp_key(path), "sha256": found["sha256"]}).encode()))
    except OSError as e:  # a read-only data folder still trains, it just hashes again next run
        log.warning("could not stamp %s as verified: %s", stamp, e)


def open_frames(path: Path, image_size: int = 64) -> np.ndarray:
    """Memory-map the file -> read-only uint8 [F, N, H, W]. Raises ConfigError if it is not that ("corrupt")
    or not the published file (its MD5, checked once per file version: `verify`)."""
    try:
        data = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise ConfigError("data.root", str(path), f"corrupt or unreadable ({e}); delete it to download again") from e
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 4 \
            or data.shape[2:] != (image_size, image_size):
        found = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise ConfigError("data.root", str(path), f"corrupt: expected uint8 [{FILE_FRAMES}, N, {image_size}, "
                          f"{image_size}], found {found}; delete it to download again")
    verify(path)
    return data


def split_sequences(num_sequences: int, num_val: int, split_seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) sequence indices: RandomState(split_seed).permutation, the first num_val validate."""
    if not 0 < num_val < num_sequences:
        raise ConfigError("data.num_val_sequences", num_val, f"between 1 and {num_sequences - 1}: the file "
                          f"holds {num_sequences} sequences")
    order = np.random.RandomState(split_seed).permutation(num_sequences)
    return order[num_val:], order[:num_val]


def cached_labels(path: Path, frames: np.ndarray) -> np.ndarray:
    """Contour labels of every frame, bit-packed -> uint8 [F, N, 8] (unpack a row to an 8x8 map).

    Computed once (about half a minute for the 200,000 frames) and cached next to the file, keyed by the
    file's size and mtime and the labeler version; written atomically so concurrent runs never read half.
    """
    stat = path.stat()
    key = np.array([stat.st_size, stat.st_mtime_ns, LABELER_VERSION], np.int64)
    cache = path.with_suffix(".labels.npz")
    try:
        with np.load(cache) as stored:
            if np.array_equal(stored["key"], key):
                return stored["packed"]
    except (OSError, ValueError, KeyError, EOFError):
        pass  # missing, stale or damaged: compute again
    log.info("computing contour labels of %s (once; cached in %s)", path, cache)
    f, n = frames.shape[:2]
    packed = np.packbits(contour_labels(frames.reshape(f * n, *frames.shape[2:])), axis=-1).reshape(f, n, GRID)
    try:
        atomic_write(cache, lambda out: np.savez(out, key=key, packed=packed))
    except OSError as e:  # a read-only data folder still trains, it just labels again next run
        log.warning("could not cache labels in %s: %s", cache, e)
    return packed


class CanonicalMovingMNIST(Dataset):
    """T-frame pieces of canonical sequences.

    Item -> (video float32 [1, T, 64, 64] in [0, 1], labels float32 [T, 8, 8]).

    Holds only the file path; each process memory-maps the file itself (never pickling the frames to workers).
    """

    def __init__(self, path: Path, sequences: np.ndarray, frames: int, packed_labels: np.ndarray,
                 limit: int | None = None):
        self.path, self.sequences, self.frames, self.packed_labels = path, sequences, frames, packed_labels
        self.pieces = packed_labels.shape[0] // frames  # pieces per sequence
        total = len(sequences) * self.pieces
        self.length = total if limit is None else min(limit, total)
        self._data = None

    @property
    def data(self) -> np.ndarray:
        """The memory-mapped file, uint8 [F, N, H, W], opened lazily once per process."""
        if self._data is None:
            self._data = np.load(self.path, mmap_mode="r")
        return self._data

    def __getstate__(self):
        return {**self.__dict__, "_data": None}  # a pickled np.memmap would carry the whole file along

    def __len__(self) -> int:
        return self.length

    def locate(self, index: int) -> tuple[int, int]:
        """Item -> (sequence index in the file, first frame)."""
        if not 0 <= index < self.length:
            raise IndexError(index)
        return int(self.sequences[index // self.pieces]), (index % self.pieces) * self.frames

    def __getitem__(self, index: int):
        seq, t0 = self.locate(index)
        video = torch.from_numpy(self.data[t0:t0 + self.frames, seq].astype(np.float32) / 255)
        bits = np.unpackbits(self.packed_labels[t0:t0 + self.frames, seq], axis=-1)
        return video.unsqueeze(0), torch.from_numpy(bits.reshape(self.frames, GRID, GRID).astype(np.float32))
