"""Progress a person can follow in a log file: where tqdm's bar is off (no terminal: a SLURM job's log, a
redirected run, training.progress=false), a line every training.progress_minutes with the epoch, the step,
the loss, sequences/s and the projected time left; in every run, once its first steps are timed, one line
with the projected wall time of the training left; where that exceeds a day on a CPU, one warning naming
`experiment=quick` and the GPU route.

The projection and the rates time the steps after the first of this session (the first pays for warm-up) and
leave out the time between epochs (evaluation, checkpoint, the next loader's start): they are the training
steps' time.
"""

import logging
import time

log = logging.getLogger("jepa")

TIMED_STEPS = 3  # steps after the first that the projected wall time is based on
LONG_ON_CPU_S = 24 * 3600


def duration(seconds: float) -> str:
    """'3d 4h', '5h 12m', '4m 10s', '12s'."""
    s = int(round(seconds))
    days, hours, minutes = s // 86400, s // 3600 % 24, s // 60 % 60
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {s % 60}s" if minutes else f"{s}s"


def long_run_warning(projected_s: float, device_type: str) -> str | None:
    """The warning for a run projected to train for more than a day on a CPU, else None."""
    if device_type != "cpu" or projected_s <= LONG_ON_CPU_S:
        return None
    return (f"this run would train for about {duration(projected_s)} on the CPU: `experiment=quick` trains a small "
            "model in minutes here; the published default belongs on a GPU (training.device=cuda, or a sweep "
            "with hydra/launcher=slurm on a GPU cluster; README, docs/sweeps.md)")


class ProgressLog:
    """Fed every training step by the trainer; logs what the module docstring says."""

    def __init__(self, every_minutes: float, total_steps: int, epochs: int, device_type: str):
        self.every_s, self.total_steps, self.epochs = every_minutes * 60, total_steps, epochs
        self.device_type = device_type
        self.lines = False  # set per epoch: whether tqdm's bar is off
        self.first: tuple[float, int] | None = None  # (time, global step) at the end of this session's first step
        self.projected = False
        self.last_line, self.sequences = time.monotonic(), 0
        self.last_step: float | None = None  # when the last step ended
        self.between_epochs_s = 0.0  # time between epochs since the first step, left out of the projection

    def epoch_start(self) -> None:
        """Called as an epoch's first step is about to run: the time since the last step is left out."""
        if self.last_step is not None:
            gap = time.monotonic() - self.last_step
            self.last_line += gap
            if self.first is not None:
                self.between_epochs_s += gap

    def step(self, epoch: int, global_step: int, loss: float, sequences: int) -> None:
        now = self.last_step = time.monotonic()
        self.sequences += sequences
        if self.first is None:
            self.first = (now, global_step)
            return
        timed = global_step - self.first[1]
        per_step = (now - self.first[0] - self.between_epochs_s) / timed
        left_s = (self.total_steps - global_step) * per_step
        if not self.projected and timed >= TIMED_STEPS:
            self.projected = True
            log.info("projected wall time: %s for the %d training steps left (%.2f s a step; evaluations not "
                     "counted)", duration(left_s), self.total_steps - global_step, per_step)
            if warning := long_run_warning(left_s, self.device_type):
                log.warning("%s", warning)
        if self.lines and now - self.last_line >= self.every_s:
            rate = self.sequences / (now - self.last_line)
            log.info("progress: epoch %d/%d step %d/%d loss=%.4f %.2f sequences/s, about %s left", epoch,
                     self.epochs, global_step, self.total_steps, loss, rate, duration(left_s))
            self.last_line, self.sequences = now, 0
