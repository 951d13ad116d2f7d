"""Which torch device a run computes on (training.device)."""

import torch

from ..config import ConfigError


def resolve_device(name: str) -> torch.device:
    """training.device as a torch device. Raises ConfigError for a CUDA device this machine does not have."""
    name = str(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError("training.device", name, "this machine has no CUDA device: use auto or cpu")
        index = int(name[5:]) if name[5:].isdigit() else 0
        if index >= torch.cuda.device_count():
            raise ConfigError("training.device", name,
                              f"this machine has {torch.cuda.device_count()} CUDA device(s): cuda:0 to "
                              f"cuda:{torch.cuda.device_count() - 1}, or auto")
    return torch.device(name)
