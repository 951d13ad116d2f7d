"""Reading and writing a run folder (layout in docs/run_folder.md). Every write is atomic."""

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf


def atomic_write(path: Path, write) -> None:
    """Write through a temporary file in the same folder, then rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes 0600 files; collaborators on a shared filesystem must read runs
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _json_bytes(obj: Any) -> bytes:
    return json.dumps(obj, indent=2, sort_keys=False, allow_nan=True).encode() + b"\n"


class RunFolder:
    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)

    config = property(lambda self: self.path / "config.yaml")
    metrics = property(lambda self: self.path / "metrics.jsonl")
    results = property(lambda self: self.path / "results.json")
    checkpoint = property(lambda self: self.path / "checkpoints" / "last.pt")
    gif = property(lambda self: self.path / "rollout.gif")
    log = property(lambda self: self.path / "train.log")

    def write_config(self, cfg: DictConfig) -> None:
        text = OmegaConf.to_yaml(cfg, resolve=True).encode()
        atomic_write(self.config, lambda f: f.write(text))

    def write_metrics(self, records: list[dict]) -> None:
        """Rewrite metrics.jsonl from the full history (the checkpoint holds it, so a resume can repair it)."""
        text = b"".join(json.dumps(r).encode() + b"\n" for r in records)
        atomic_write(self.metrics, lambda f: f.write(text))

    def read_metrics(self) -> list[dict]:
        if not self.metrics.exists():
            return []
        return [json.loads(line) for line in self.metrics.read_text().splitlines() if line.strip()]

    def write_results(self, results: dict) -> None:
        data = _json_bytes(results)
        atomic_write(self.results, lambda f: f.write(data))

    def read_results(self) -> dict | None:
        return json.loads(self.results.read_text()) if self.results.exists() else None

    def save_checkpoint(self, state: dict) -> None:
        atomic_write(self.checkpoint, lambda f: torch.save(state, f))

    def load_checkpoint(self, map_location="cpu") -> dict | None:
        if not self.checkpoint.exists():
            return None
        return torch.load(self.checkpoint, map_location=map_location, weights_only=False)
