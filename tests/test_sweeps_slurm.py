"""Real sweeps on the local SLURM cluster (tests/slurm) through hydra/launcher=slurm and +cluster=localtest.

A 2x2 grid is one job array with every result; a run whose time limit is shorter than its training is
requeued at each USR2 and ends with the metrics of an uninterrupted run; a run hit by `scontrol requeue`
(no warning) resumes from its periodic checkpoint, submitted fire-and-forget and followed with the status
command; a failing run leaves the rest of the sweep complete and reported. Wall times are printed.
"""

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jepa.studies.manifest import read_manifest
from jepa.studies.status import sweep_states
from tests.test_sweeps import FAILING, GRID, REPO, SWEEP_TINY, by_state, comparable, keys, results, run_sweep

pytestmark = pytest.mark.slurm

SLURM = ["hydra/launcher=slurm", "+cluster=localtest"]
# Epochs of about 20 s: `scontrol requeue` sends SIGTERM, then SIGKILL after KillWait (2 s) plus slurmd's own
# delay; with 8 s epochs (192 sequences) the epoch-end checkpoint was sometimes written before the kill
SHORT = ["-m", *SWEEP_TINY, "data.num_train=480"]
# A 2-minute limit with a 50 s signal delay: USR2 comes 40 to 70 s into each job (SLURM checks limits every
# 30 s); a run of about 85 s of training (at the speed measured here) cannot finish in the first job, and
# often does in the second
TIME_LIMIT = ["hydra.launcher.timeout_min=2", "hydra.launcher.signal_delay_s=50"]


@pytest.fixture(scope="module")
def grid(slurm_cluster, tmp_path_factory):
    """The 2x2 cov_std grid on SLURM, run once: (the launcher's process, its wall time, the sweep folder)."""
    sweep = tmp_path_factory.mktemp("grid") / "cov_std"
    proc, seconds = run_sweep(sweep, *GRID, *SLURM)
    return proc, seconds, sweep


@pytest.fixture(scope="module")
def train_speed(grid) -> float:
    """Training sequences per second of a run on one CPU of this cluster: the median over the grid's runs of
    their second (warm) epoch. Sizes the run that must outlast its time limit, whatever the machine."""
    speeds = [json.loads(path.read_text().splitlines()[-1])["time/seq_per_s"]
              for path in grid[2].glob("*/metrics.jsonl")]
    assert len(speeds) == 4
    return statistics.median(speeds)


def lasting(seconds: float, speed: float) -> str:
    """The data.num_train override for about `seconds` of training (2 epochs of TINY) at `speed`."""
    return f"data.num_train={max(64, 8 * round(speed * seconds / 2 / 8))}"


def report(capsys, what: str, seconds: float) -> None:
    with capsys.disabled():
        print(f"\n[wall time] {what}: {seconds:.0f} s")


def wait_for(condition, timeout_s: float, what: str, cluster):
    deadline = time.monotonic() + timeout_s
    while not (value := condition()):
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} after {timeout_s} s\n{cluster.log_tail()}")
        time.sleep(0.5)
    return value


def run_folder(sweep_dir: Path) -> Path:
    (name,) = read_manifest(sweep_dir)["runs"]
    return sweep_dir / name


@pytest.fixture
def uninterrupted(tmp_path):
    """start(args): run the 1-run sweep `args` uninterrupted with the local launcher, in the background while
    the test's SLURM run trains; returns a function that waits for it and gives its metrics."""
    procs = []

    def start(args: list[str]):
        sweep, output = tmp_path / "uninterrupted", tmp_path / "uninterrupted.log"
        with output.open("w") as out:
            proc = subprocess.Popen([sys.executable, "-m", "jepa.train", *args, f"hydra.sweep.dir={sweep}"],
                                    stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
        procs.append(proc)

        def metrics() -> list[dict]:
            assert proc.wait(timeout=600) == 0, output.read_text()[-3000:]
            return comparable(run_folder(sweep))

        return metrics

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_grid_is_one_job_array_with_every_result(slurm_cluster, grid, capsys):
    proc, seconds, sweep = grid
    report(capsys, "2x2 SLURM sweep (submit, run, collect)", seconds)
    assert proc.returncode == 0, proc.stderr[-3000:] + slurm_cluster.log_tail()
    assert "4 runs: 4 done" in proc.stdout
    manifest = read_manifest(sweep)["runs"]
    arrays = {entry["job_id"].split("_")[0] for entry in manifest.values()}
    assert len(arrays) == 1 and sorted(e["job_id"].split("_")[1] for e in manifest.values()) == ["0", "1", "2", "3"]
    assert sorted((keys(n)["loss.cov_coeff"], keys(n)["loss.std_coeff"]) for n in manifest) == [
        (c, s) for c in ("1", "100") for s in ("1", "10")]
    assert all(results(sweep / name)["status"] == "done" for name in manifest)

    again, seconds = run_sweep(sweep, *GRID, *SLURM)
    assert again.returncode == 0 and "4 of 4 runs are already done: skipped" in again.stdout + again.stderr
    assert read_manifest(sweep)["runs"] == manifest  # nothing submitted
    report(capsys, "relaunch of the finished 2x2 SLURM sweep", seconds)


def test_failing_run_leaves_the_rest_complete_and_reported(slurm_cluster, tmp_path):
    sweep = tmp_path / "lr"
    proc, _ = run_sweep(sweep, *FAILING, *SLURM)
    assert proc.returncode == 1, proc.stderr[-3000:] + slurm_cluster.log_tail()
    assert "2 runs: 1 done, 1 failed" in proc.stdout and "non-finite loss" in proc.stdout
    states = by_state(sweep)
    assert [keys(n)["optim.lr"] for n in states["done"]] == ["0.001"]
    assert [keys(n)["optim.lr"] for n in states["failed"]] == ["1e+30"]


def test_time_limit_requeues_and_ends_like_an_uninterrupted_run(slurm_cluster, tmp_path, uninterrupted, capsys,
                                                               train_speed):
    long = ["-m", *SWEEP_TINY, lasting(85, train_speed)]
    sweep, expected = tmp_path / "limited", uninterrupted(long)
    proc, seconds = run_sweep(sweep, *long, *SLURM, *TIME_LIMIT)
    report(capsys, f"time-limit requeue test (2-minute limit, {long[-1]})", seconds)
    assert proc.returncode == 0, proc.stderr[-3000:] + slurm_cluster.log_tail()
    run = run_folder(sweep)
    assert results(run)["status"] == "done"
    assert results(run)["resumed"] >= 1, f"{long[-1]} ended before its first time-limit signal: too short here"
    log = (run / "train.log").read_text()
    assert log.count("time-limit signal: checkpointed") == results(run)["resumed"]
    assert comparable(run) == expected()


def test_scontrol_requeue_resumes_from_the_periodic_checkpoint(slurm_cluster, tmp_path, uninterrupted, capsys):
    """Submitted fire-and-forget; `scontrol requeue` kills the job without a warning once the run has
    checkpointed mid-epoch (every 3 s); the requeued job resumes from that checkpoint."""
    sweep, expected = tmp_path / "requeued", uninterrupted(SHORT)
    proc, seconds = run_sweep(sweep, *SHORT, *SLURM, "hydra.launcher.wait=false", "training.checkpoint_minutes=0.05")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "submitted 1 runs" in proc.stdout  # returned once submitted: the job is still queued or running
    run = run_folder(sweep)
    assert [s.state for s in sweep_states(sweep)] in (["pending"], ["running"])

    start = time.monotonic()
    wait_for(lambda: (run / "checkpoints" / "last.pt").exists(), 120, "periodic checkpoint", slurm_cluster)
    (job_id,) = [e["job_id"] for e in read_manifest(sweep)["runs"].values()]
    slurm_cluster.run("scontrol", "requeue", job_id)
    wait_for(lambda: sweep_states(sweep)[0].state == "pending", 30, "pending state after requeue", slurm_cluster)
    state = wait_for(lambda: (s := sweep_states(sweep)[0]).state in ("done", "failed") and s, 300, "end",
                     slurm_cluster)
    report(capsys, "scontrol requeue test, from the requeue to done", time.monotonic() - start)

    assert state.state == "done", state
    status = subprocess.run([sys.executable, "-m", "jepa.studies", "status", str(sweep), "--json"],
                            capture_output=True, text=True, check=True, cwd=REPO).stdout
    assert json.loads(status)["counts"]["done"] == 1
    resumed = [line for line in (run / "train.log").read_text().splitlines() if "resumed from" in line]
    assert len(resumed) == 1 and " batch 0 " not in resumed[0], resumed  # mid-epoch: the periodic checkpoint
    assert comparable(run) == expected()
