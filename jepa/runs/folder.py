"""Reading and writing a run folder (layout in docs/run_folder.md). Every write is atomic."""

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from ..atomic_write import atomic_write

log = logging.getLogger(__name__)

CONFIG, METRICS, RESULTS = "config.yaml", "metrics.jsonl", "results.json"
CHECKPOINT, GIF, LOG = "checkpoints/last.pt", "rollout.gif", "train.log"


def _json_bytes(obj: Any) -> bytes:
    return json.dumps(obj, indent=2, sort_keys=False, allow_nan=True).encode() + b"\n"


try:  # orjson parses metrics.jsonl about 3x faster; the standard library also reads NaN literals
    from orjson import loads as _fast_loads
except ImportError:  # pragma: no cover - orjson is optional
    _fast_loads = json.loads


@dataclass
class Metrics:
    """metrics.jsonl as read: one record per epoch in epoch order, and the lines that were not records."""

    records: list[dict] = field(default_factory=list)
    bad_lines: int = 0


def read_metrics(path: Path | str) -> Metrics:
    """Read a metrics.jsonl (or the one in a run folder). Never raises for bad content.

    An epoch written twice (a restart that redid it) keeps its last record; a line that is not a JSON object
    with an integer `epoch` (a write torn by a crash) is counted in `bad_lines` and skipped.
    """
    path = Path(path)
    if path.is_dir():
        path = path / METRICS
    if not path.is_file():
        return Metrics()
    by_epoch, bad = {}, 0
    with open(path, "rb") as f:
        for line in f:
            if not line.strip():
                continue
            try:
                record = _fast_loads(line)
            except ValueError:
                try:
                    record = json.loads(line)  # NaN / Infinity literals
                except ValueError:
                    record = None
            epoch = record.get("epoch") if isinstance(record, dict) else None
            if not isinstance(epoch, (int, float)) or isinstance(epoch, bool) or epoch != int(epoch):
                bad += 1
                continue
            by_epoch[int(epoch)] = record
    if bad:
        log.warning("%s: %d line(s) are not epoch records (a torn write?); skipped", path, bad)
    return Metrics([by_epoch[e] for e in sorted(by_epoch)], bad)


class RunFolder:
    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)

    config = property(lambda self: self.path / CONFIG)
    metrics = property(lambda self: self.path / METRICS)
    results = property(lambda self: self.path / RESULTS)
    checkpoint = property(lambda self: self.path / CHECKPOINT)
    gif = property(lambda self: self.path / GIF)
    log = property(lambda self: self.path / LOG)

    def write_config(self, cfg: DictConfig) -> None:
        text = OmegaConf.to_yaml(cfg, resolve=True).encode()
        atomic_write(self.config, lambda f: f.write(text))

    def write_metrics(self, records: list[dict]) -> None:
        """Rewrite metrics.jsonl from the full history (the checkpoint holds it, so a resume can repair it)."""
        text = b"".join(json.dumps(r).encode() + b"\n" for r in records)
        atomic_write(self.metrics, lambda f: f.write(text))

    def read_metrics(self) -> list[dict]:
        return read_metrics(self.metrics).records

    def write_results(self, results: dict) -> None:
        data = _json_bytes(results)
        atomic_write(self.results, lambda f: f.write(data))

    def read_results(self) -> dict | None:
        return json.loads(self.results.read_text()) if self.results.exists() else None

    def save_checkpoint(self, state: dict) -> None:
        import torch

        atomic_write(self.checkpoint, lambda f: torch.save(state, f))

    def load_checkpoint(self, map_location="cpu") -> dict | None:
        import torch

        if not self.checkpoint.exists():
            return None
        return torch.load(self.checkpoint, map_location=map_location, weights_only=False)
