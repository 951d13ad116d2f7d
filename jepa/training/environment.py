"""What a run records and sets about the machine it runs on: device, seeds, versions, tensor layout."""

import platform
import random
import subprocess
from pathlib import Path

import numpy as np
import torch

from .. import __version__


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict:
    """Every generator's state as tensors and plain values, so a checkpoint loads with weights_only=True."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    return {"torch": torch.get_rng_state(),
            "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                      "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
            "python": {"version": version, "internal": torch.tensor(internal, dtype=torch.int64), "gauss": gauss},
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def set_rng_state(rng: dict) -> None:
    torch.set_rng_state(rng["torch"])
    n, p = rng["numpy"], rng["python"]
    if isinstance(n, dict):
        n = (n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"])
    np.random.set_state(n)  # a tuple in checkpoints written before the states were stored as tensors
    if isinstance(p, dict):
        p = (p["version"], tuple(int(x) for x in p["internal"].tolist()), p["gauss"])
    random.setstate(p)
    if rng["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])


def to_model_layout(video: torch.Tensor) -> torch.Tensor:
    """Data gives [B, C, T, H, W]; the model folds time next to batch: [B, T, C, H, W]."""
    return video.transpose(1, 2).contiguous()


def versions() -> dict:
    """Python, torch and project versions, and the git commit when the project runs from a checkout."""
    try:
        root = Path(__file__).resolve().parents[2]
        git = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5
        ).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        git = None
    return {"python": platform.python_version(), "torch": torch.__version__, "jepa": __version__, "git": git}
