"""Where a run stands: epochs and batches done, running loss sums, metric history, time spent.

The checkpoint holds it, so a resumed run continues from the exact batch it stopped at.
"""

from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone

from ..runs import RUNNING
from .environment import versions


@dataclass
class Progress:
    epoch: int = 0  # completed epochs
    batch: int = 0  # batches done in the current epoch
    global_step: int = 0
    sums: dict[str, float] = field(default_factory=dict)  # the current epoch's loss sums
    history: list[dict] = field(default_factory=list)  # one metrics.jsonl record per completed epoch
    elapsed: float = 0.0  # wall seconds spent in earlier sessions of this run
    resumed: int = 0  # times the run restarted from its checkpoint

    def add_step(self, values: dict[str, float]) -> None:
        for k, v in values.items():
            self.sums[k] = self.sums.get(k, 0.0) + v
        self.batch += 1
        self.global_step += 1

    def end_epoch(self, record: dict) -> None:
        self.history.append(record)
        self.epoch, self.batch, self.sums = self.epoch + 1, 0, {}

    def mean_losses(self) -> dict[str, float]:
        return {f"train/{k}": v / max(self.batch, 1) for k, v in self.sums.items()}

    def best(self, metric: str = "val/mAP") -> dict | None:
        return max(self.history, key=lambda r: r.get(metric, float("-inf")), default=None)

    def state_dict(self, session_seconds: float) -> dict:
        return {**asdict(self), "elapsed": self.elapsed + session_seconds}

    @classmethod
    def restored(cls, state: dict) -> "Progress":
        """The progress of a checkpoint, counting this restart."""
        fields = {k: state[k] for k in ("epoch", "batch", "global_step", "sums", "history", "elapsed")}
        return cls(**fields, resumed=state["resumed"] + 1)

    def count_restart(self, previous: dict) -> None:
        """Count a restart that died before its first checkpoint: only results.json kept its count and time."""
        self.resumed = max(self.resumed, (previous.get("resumed") or 0) + 1)
        if isinstance(previous.get("wall_time_s"), (int, float)):
            self.elapsed = max(self.elapsed, float(previous["wall_time_s"]))

    def results(self, status: str, reason: str | None, cfg, session_seconds: float, started: str, device) -> dict:
        """results.json's content (docs/run_folder.md) for a run of `cfg` standing here."""
        return {
            "status": status, "reason": reason, "seed": cfg.seed, "epochs": cfg.training.epochs,
            "epochs_completed": self.epoch, "global_step": self.global_step,
            "final": self.history[-1] if self.history else None, "best": self.best(),
            "wall_time_s": round(self.elapsed + session_seconds, 3), "started": started,
            "finished": None if status == RUNNING else datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "resumed": self.resumed, "versions": versions(), "device": str(device),
        }
