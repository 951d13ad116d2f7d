"""Where a run stands: epochs and batches done, running loss sums, metric history, time spent.

The checkpoint holds it, so a resumed run continues from the exact batch it stopped at.
"""

from dataclasses import asdict, dataclass, field


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
