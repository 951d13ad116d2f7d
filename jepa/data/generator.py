"""Moving MNIST generated on the fly with the classic bouncing dynamics (docs/model.md §1) and exact labels.

Item i of a split is a pure function of (seed, split, i): the same sequence in every worker, epoch and restart.
"""
import numpy as np
import torch
from torch.utils.data import Dataset

from jepa.data.digits import DIGIT_SIZE
from jepa.data.labels import GRID, contour_labels

SPLIT_IDS = {"train": 0, "val": 1}  # mixed into the seed so the two splits never share a random stream


def bounce(start: np.ndarray, velocity: np.ndarray, frames: int, free: float) -> np.ndarray:
    """Top-left corners of bouncing digits, start and velocity [D, 2] (x, y) -> float64 [T, D, 2] in [0, free].

    Frame 0 is `start`; each frame adds `velocity`, and a coordinate that leaves [0, free] is clamped to
    the edge while its velocity component flips (the classic generator's rule).
    """
    path = np.empty((frames, *start.shape))
    # Plain floats, one coordinate at a time: numpy's per-call overhead would dwarf 2 x D numbers per frame.
    for d, (p0, v0) in enumerate(zip(start.tolist(), velocity.tolist(), strict=True)):
        for axis in range(2):
            p, v = p0[axis], v0[axis]
            for t in range(frames):
                path[t, d, axis] = p
                p += v
                if p < 0 or p > free:
                    p, v = min(max(p, 0.0), free), -v
    return path


def random_motion(rng: np.random.Generator, num_digits: int, free: float, speed: float):
    """Start uniform over [0, free]^2, direction uniform in [0, 2pi), `speed` px/frame -> (start, velocity) [D, 2]."""
    start = rng.uniform(0, free, size=(num_digits, 2))
    theta = rng.uniform(0, 2 * np.pi, size=num_digits)
    return start, speed * np.stack([np.cos(theta), np.sin(theta)], axis=1)


def render(digits: np.ndarray, corners: np.ndarray, image_size: int) -> np.ndarray:
    """Digits uint8 [D, 28, 28] at integer corners [T, D, 2] (x, y) -> float32 [T, H, W] in [0, 1].

    Overlapping digits combine with a pixel-wise maximum.
    """
    patches = digits.astype(np.float32) / 255
    video = np.zeros((len(corners), image_size, image_size), np.float32)
    for t, frame_corners in enumerate(corners):
        for patch, (x, y) in zip(patches, frame_corners, strict=True):
            window = video[t, y:y + DIGIT_SIZE, x:x + DIGIT_SIZE]
            np.maximum(window, patch, out=window)
    return video


def ink_centres(digits: np.ndarray) -> np.ndarray:
    """Ink bounding-box centres inside each 28x28 patch, uint8 [N, 28, 28] -> float64 [N, 2] (x, y).

    Ink = pixels above half the digit's peak, the reference's threshold on a lone digit, so exact and contour
    labels agree wherever the contour method is not confused (merged or broken blobs). The centre follows
    cv2.boundingRect: x + w / 2 with w = xmax - xmin + 1.
    """
    ink = digits.astype(np.int32) * 2 > digits.max(axis=(1, 2), keepdims=True)
    centres = []
    for axis in (1, 2):  # any ink per column (x), then per row (y)
        occupied = ink.any(axis=axis)
        first = occupied.argmax(axis=1)
        last = occupied.shape[1] - 1 - occupied[:, ::-1].argmax(axis=1)
        centres.append(first + (last - first + 1) / 2)
    return np.stack(centres, axis=1)


def exact_labels(corners: np.ndarray, centres: np.ndarray, image_size: int) -> np.ndarray:
    """Corners int [T, D, 2] and ink centres [D, 2] -> uint8 [T, 8, 8], the cell of every digit's centre."""
    cells = np.clip(((corners + centres) / image_size * GRID).astype(np.int64), 0, GRID - 1)  # [T, D, 2]
    labels = np.zeros((len(corners), GRID, GRID), np.uint8)
    t = np.repeat(np.arange(len(corners)), corners.shape[1])
    labels[t, cells[..., 1].ravel(), cells[..., 0].ravel()] = 1
    return labels


class MovingMNIST(Dataset):
    """Generated bouncing-digit videos: item -> (video float32 [1, T, H, W] in [0, 1], labels float32 [T, 8, 8])."""

    def __init__(self, digits: np.ndarray, num_sequences: int, frames: int = 10, image_size: int = 64,
                 num_digits: int = 2, speed: float = 3.6, seed: int = 0, split: str = "train", labels: str = "exact"):
        self.digits, self.num_sequences, self.frames, self.image_size = digits, num_sequences, frames, image_size
        self.num_digits, self.speed, self.seed, self.split_id = num_digits, speed, seed, SPLIT_IDS[split]
        self.labels = labels
        self.centres = ink_centres(digits)  # once per dataset: exact labels then cost one lookup per frame

    def __len__(self) -> int:
        return self.num_sequences

    def sequence(self, index: int):
        """Sequence `index` as numpy: (video float32 [T, H, W], corners int [T, D, 2] (x, y), digit ids [D])."""
        if not 0 <= index < self.num_sequences:
            raise IndexError(index)
        rng = np.random.default_rng([self.seed, self.split_id, index])
        ids = rng.integers(len(self.digits), size=self.num_digits)
        start, velocity = random_motion(rng, self.num_digits, self.image_size - DIGIT_SIZE, self.speed)
        corners = bounce(start, velocity, self.frames, self.image_size - DIGIT_SIZE).astype(np.int64)  # floor
        return render(self.digits[ids], corners, self.image_size), corners, ids

    def __getitem__(self, index: int):
        video, corners, ids = self.sequence(index)
        if self.labels == "exact":
            labels = exact_labels(corners, self.centres[ids], self.image_size)
        else:
            labels = contour_labels(video, self.image_size)
        return torch.from_numpy(video).unsqueeze(0), torch.from_numpy(labels).float()
