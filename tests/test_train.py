"""A training run writes its whole run folder, resumes exactly, and records failures."""

import json
import logging
import os
import signal
import subprocess
import sys
import time

import pytest
from PIL import Image

import jepa.training.learner
from jepa.training import NonFiniteLoss, StopRequested, Trainer, progress_log, train
from jepa.training.progress_log import duration, long_run_warning

TIMING = ("time/",)


def comparable(record: dict) -> dict:
    return {k: v for k, v in record.items() if not k.startswith(TIMING)}


def test_run_folder_holds_everything(tiny_cfg, tmp_path):
    results = train(tiny_cfg(), tmp_path)
    assert results["status"] == "done" and results["epochs_completed"] == 2 and results["seed"] == 2025
    for name in ("config.yaml", "metrics.jsonl", "results.json", "checkpoints/last.pt", "rollout.gif", "train.log"):
        assert (tmp_path / name).exists(), name
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    expected = {"train/loss", "train/vc", "train/std", "train/cov", "train/pred", "train/det_bce", "train/dec_mse",
                "val/mAP", "val/mAP_full", "val/copy_last/mAP", "val/chance/mAP", "val/dec_mse", "val/det_bce",
                "time/epoch_s", "time/seq_per_s", *(f"val/AP_{k}" for k in range(7)),
                *(f"val/AP_full_{k}" for k in range(8))}
    assert expected <= records[-1].keys()
    assert 0 < records[-1]["val/chance/mAP"] < 0.1  # about 2 digits in 64 cells
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["final"] == records[-1] and saved["best"]["val/mAP"] == max(r["val/mAP"] for r in records)
    assert saved["versions"]["torch"] and saved["wall_time_s"] > 0
    gif = Image.open(tmp_path / "rollout.gif")
    assert gif.n_frames == 10 and gif.size == (8 * 64 * 2, 3 * 64 * 2)
    assert "epoch 2/2" in (tmp_path / "train.log").read_text()


class StopAfter(Trainer):
    """Asks to stop after `n` steps, as a SLURM signal handler would."""

    n = 3

    def train_step(self, video, labels):
        out = super().train_step(video, labels)
        if self.global_step + 1 == self.n:
            self.request_stop()
        return out


def test_resume_after_stop_ends_with_the_same_metrics(tiny_cfg, tmp_path):
    cfg = tiny_cfg("training.epochs=2")  # 4 batches an epoch: stop mid-epoch 1
    straight = Trainer(cfg, tmp_path / "straight").fit()

    with pytest.raises(StopRequested):
        StopAfter(cfg, tmp_path / "resumed").fit()
    status = json.loads((tmp_path / "resumed" / "results.json").read_text())
    assert status["status"] == "running" and status["global_step"] == 3
    resumed = Trainer(cfg, tmp_path / "resumed").fit()

    assert resumed["resumed"] == 1 and resumed["global_step"] == straight["global_step"]
    assert comparable(resumed["final"]) == comparable(straight["final"])
    lines = (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [1, 2]


def test_non_finite_loss_fails_the_run_with_a_reason(tiny_cfg, tmp_path, monkeypatch):
    real = jepa.training.learner.training_losses

    def explode_on_step_2(*args, **kwargs):
        out = real(*args, **kwargs)
        explode_on_step_2.calls += 1
        if explode_on_step_2.calls == 2:
            out["pred"] = out["pred"] * float("nan")
        return out

    explode_on_step_2.calls = 0
    monkeypatch.setattr(jepa.training.learner, "training_losses", explode_on_step_2)
    with pytest.raises(NonFiniteLoss):
        train(tiny_cfg(), tmp_path)
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["status"] == "failed"
    assert "train/pred=nan" in results["reason"] and "step 2" in results["reason"]


@pytest.mark.slow
def test_killed_run_restarted_in_its_folder_matches_an_uninterrupted_one(tmp_path):
    from tests.conftest import TINY

    args = [*TINY, "training.epochs=2", "data.num_train=64", "training.checkpoint_minutes=0.001"]
    cmd = [sys.executable, "-m", "jepa.train", *args]
    straight = subprocess.run([*cmd, f"hydra.run.dir={tmp_path / 'a'}"], capture_output=True, text=True, timeout=600)
    assert straight.returncode == 0, straight.stderr

    run = tmp_path / "b"
    proc = subprocess.Popen([*cmd, f"hydra.run.dir={run}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + 300
    while not (run / "checkpoints" / "last.pt").exists():  # killed right after its first mid-epoch checkpoint
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert json.loads((run / "results.json").read_text())["status"] == "running"
    again = subprocess.run([*cmd, f"hydra.run.dir={run}"], capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr

    a = [comparable(json.loads(x)) for x in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    b = [comparable(json.loads(x)) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert a == b and len(a) == 2
    assert json.loads((run / "results.json").read_text())["resumed"] >= 1


@pytest.mark.slow
def test_cli_failure_exits_non_zero_and_records_failed(tmp_path):
    from tests.conftest import TINY

    # A learning rate this large drives the weights to inf within a few steps.
    proc = subprocess.run(
        [sys.executable, "-m", "jepa.train", *TINY, "optim.lr=1e30", f"hydra.run.dir={tmp_path}"],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode != 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["status"] == "failed" and "non-finite" in results["reason"]


def test_last_partial_batch_is_trained_and_resumes(tiny_cfg, tmp_path):
    # 36 sequences in batches of 8: 4 full batches and one of 4, ceil(36 / 8) = 5 steps an epoch.
    cfg = tiny_cfg("data.num_train=36", "training.epochs=1")
    straight = Trainer(cfg, tmp_path / "straight").fit()
    assert straight["global_step"] == 5

    class StopAtPartial(StopAfter):
        n = 4  # checkpoint after 4 steps: only the partial batch is left

    with pytest.raises(StopRequested):
        StopAtPartial(cfg, tmp_path / "resumed").fit()
    assert json.loads((tmp_path / "resumed" / "results.json").read_text())["global_step"] == 4
    resumed = Trainer(cfg, tmp_path / "resumed").fit()
    assert resumed["global_step"] == 5
    assert comparable(resumed["final"]) == comparable(straight["final"])


@pytest.mark.parametrize("projected_s, device, warns", [
    (2 * 86400, "cpu", True),
    (20 * 3600, "cpu", False),  # under a day
    (30 * 86400, "cuda", False),  # a GPU run is as long as it is
])
def test_long_cpu_run_warning_names_the_ways_out(projected_s, device, warns):
    warning = long_run_warning(projected_s, device)
    assert (warning is not None) == warns
    if warns:
        assert "experiment=quick" in warning and "training.device=cuda" in warning and "hydra/launcher=slurm" in warning
        assert f"about {duration(projected_s)} on the CPU" in warning


def test_progress_rates_and_projection_leave_the_time_between_epochs_out(monkeypatch, caplog):
    """Steps of 2 s and 4 sequences, with 100 s of evaluation between the two epochs: the first line after the
    evaluation says 2 sequences/s, and the time left is 2 s a step, as before it."""
    clock = [0.0]
    monkeypatch.setattr(progress_log.time, "monotonic", lambda: clock[0])
    caplog.set_level(logging.INFO, logger="jepa")
    plog = progress_log.ProgressLog(every_minutes=0, total_steps=8, epochs=2, device_type="cpu")
    plog.lines = True
    for epoch in (1, 2):
        clock[0] += 100.0 * (epoch == 2)  # the first epoch's evaluation and checkpoint
        plog.epoch_start()
        for step in range(4 * epoch - 3, 4 * epoch + 1):
            clock[0] += 2.0
            plog.step(epoch, step, 0.5, 4)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("progress: ")]
    assert len(lines) == 7 and all(" 2.00 sequences/s, " in line for line in lines), lines
    assert lines[3].startswith("progress: epoch 2/2 step 5/8") and lines[3].endswith("about 6s left")
    assert "(2.00 s a step;" in next(r.getMessage() for r in caplog.records if "projected" in r.getMessage())


def test_without_a_terminal_the_log_shows_progress_and_the_projected_time(tmp_path):
    from tests.conftest import TINY

    # training.progress=true: the bar would be on at a terminal; the pipes below are none
    args = [*TINY, "training.progress=true", "training.progress_minutes=0.00001", f"hydra.run.dir={tmp_path}"]
    proc = subprocess.run([sys.executable, "-m", "jepa.train", *args], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    log = (tmp_path / "train.log").read_text()
    lines = [line.split(" - ", 1)[1] for line in log.splitlines() if " - progress: " in line]
    # every step after the first of the run: 4 steps an epoch, 2 epochs
    assert [line.split(" loss=")[0] for line in lines] == [f"progress: epoch {1 + (s - 1) // 4}/2 step {s}/8"
                                                           for s in range(2, 9)]
    assert all(" sequences/s, about " in line and line.endswith(" left") for line in lines)
    (projected,) = [line for line in log.splitlines() if "projected wall time: " in line]
    assert "for the 4 training steps left" in projected  # after the first step and 3 timed ones
    assert "experiment=quick" not in log  # seconds on the CPU: no warning
