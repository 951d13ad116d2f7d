"""What a run records and sets about the machine it runs on: device, seeds, versions, tensor layout."""

import platform
import random
import subprocess
from pathlib import Path

import numpy as np
import torch

from .. import __version__


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict:
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def set_rng_state(rng: dict) -> None:
    torch.set_rng_state(rng["torch"])
    np.random.set_state(rng["numpy"])
    random.setstate(rng["python"])
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
