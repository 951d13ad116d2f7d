"""Plain submitit against the real local SLURM cluster: results, arrays, failures, requeues.

The job callables live here and travel by value (the job's Python cannot import this test module).
"""

import os
import signal
import sys
import time
from pathlib import Path

import cloudpickle
import pytest
import submitit

pytestmark = pytest.mark.slurm
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def add(a, b):
    return a + b


def square_slowly(x):
    start = time.time()
    time.sleep(1)
    return x * x, start, time.time()


def raise_value_error():
    raise ValueError("boom from the job")


def die_without_result():
    os.kill(os.getpid(), signal.SIGKILL)


def log(progress: Path, line: str) -> None:
    with progress.open("a") as f:
        f.write(f"{time.time():.1f} {line}\n")


class CountsUntilResumed:
    """Counts steps until its time limit's USR2; resumed from its checkpoint, counts three more and ends."""

    def __init__(self, progress: Path):
        self.progress = progress
        self.runs = 0
        self.step = 0

    def __call__(self):
        self.runs += 1
        log(self.progress, f"run {self.runs} from step {self.step}")
        stop_at = self.step + 3 if self.runs > 1 else float("inf")  # SLURM ends the first run
        while self.step < stop_at:
            time.sleep(0.5)
            self.step += 1
        return self.runs, self.step

    def checkpoint(self):
        log(self.progress, f"checkpoint at step {self.step}")
        return submitit.helpers.DelayedSubmission(self)


class SleepsUntilRequeued:
    """First run sleeps until killed; the run after a requeue returns SLURM_RESTART_COUNT."""

    def __init__(self, progress: Path):
        self.progress = progress

    def __call__(self):
        restarts = int(os.environ.get("SLURM_RESTART_COUNT", "0"))
        log(self.progress, f"start restart={restarts}")
        if restarts == 0:
            time.sleep(120)
        return restarts

    def checkpoint(self):
        log(self.progress, "checkpoint")
        return submitit.helpers.DelayedSubmission(self)


@pytest.fixture(scope="module")
def submitit_folder(tmp_path_factory):
    return tmp_path_factory.mktemp("submitit") / "%j"


@pytest.fixture
def executor(slurm_cluster, submitit_folder):
    executor = submitit.AutoExecutor(folder=submitit_folder, cluster="slurm")
    executor.update_parameters(timeout_min=5, slurm_partition=slurm_cluster.partition, cpus_per_task=1)
    return executor


def wait_done(jobs, cluster, timeout_s):
    """Poll until every job is done, or fail with their states and the daemons' logs."""
    deadline = time.monotonic() + timeout_s
    while not all(job.done() for job in jobs):
        if time.monotonic() > deadline:
            states = {job.job_id: job.state for job in jobs}
            pytest.fail(f"jobs not done after {timeout_s} s: {states}\n{cluster.log_tail()}")
        time.sleep(0.5)


def settled_state(job, timeout_s=15):
    """The job's SLURM state once it has left RUNNING/COMPLETING (a result can come before that)."""
    deadline = time.monotonic() + timeout_s
    while not job.watcher.is_done(job.job_id, mode="force") and time.monotonic() < deadline:
        time.sleep(0.5)
    return job.state


def wait_for_line(progress: Path, text: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not (progress.exists() and text in progress.read_text()):
        if time.monotonic() > deadline:
            pytest.fail(f"no '{text}' in {progress} after {timeout_s} s")
        time.sleep(0.2)


def test_job_returns_its_value(executor, slurm_cluster):
    job = executor.submit(add, 2, 3)
    wait_done([job], slurm_cluster, timeout_s=30)
    assert job.result() == 5
    assert settled_state(job) == "COMPLETED"


def test_job_array_respects_parallelism(executor, slurm_cluster):
    executor.update_parameters(slurm_array_parallelism=2)
    jobs = executor.map_array(square_slowly, range(4))
    assert all(job.job_id.startswith(f"{jobs[0].job_id.split('_')[0]}_") for job in jobs)
    wait_done(jobs, slurm_cluster, timeout_s=60)
    results = [job.result() for job in jobs]
    assert [square for square, _, _ in results] == [0, 1, 4, 9]
    running_at = [sum(start <= t < end for _, start, end in results) for _, t, _ in results]
    assert max(running_at) <= 2


def test_raising_job_reports_its_exception(executor, slurm_cluster):
    job = executor.submit(raise_value_error)
    wait_done([job], slurm_cluster, timeout_s=30)
    error = job.exception()
    assert isinstance(error, submitit.core.utils.FailedJobError)
    assert "boom from the job" in str(error)


def test_job_killed_without_result_is_noticed(executor, slurm_cluster, monkeypatch):
    """No result pickle: only the job state (the sacct stand-in) can tell submitit the job is over."""
    monkeypatch.setattr(submitit.SlurmJob, "_results_timeout_s", 1)
    job = executor.submit(die_without_result)
    wait_done([job], slurm_cluster, timeout_s=30)
    assert settled_state(job) == "FAILED"
    assert isinstance(job.exception(), submitit.core.utils.UncompletedJobError)


def test_time_limit_signal_checkpoints_and_requeues(executor, slurm_cluster, tmp_path):
    """timeout_min=1: USR2 arrives before the limit, checkpoint() runs, the job requeues and resumes.

    SLURM checks time limits every 30 s and sends the warning when at most signal_delay_s + 30 s are
    left, so with 20 s the USR2 lands 10 to 40 s into the run: never before submitit's handler is set.
    """
    progress = tmp_path / "progress.txt"
    executor.update_parameters(timeout_min=1, slurm_signal_delay_s=20)
    job = executor.submit(CountsUntilResumed(progress))
    wait_done([job], slurm_cluster, timeout_s=150)
    runs, step = job.result()
    lines = progress.read_text().splitlines()
    assert runs == 2, lines
    assert sum("checkpoint" in line for line in lines) == 1, lines
    checkpoint_step = int(next(line for line in lines if "checkpoint" in line).split()[-1])
    assert checkpoint_step > 0 and step == checkpoint_step + 3, lines


def test_scontrol_requeue_restarts_without_checkpoint(executor, slurm_cluster, tmp_path):
    progress = tmp_path / "progress.txt"
    job = executor.submit(SleepsUntilRequeued(progress))
    wait_for_line(progress, "start restart=0", timeout_s=30)
    slurm_cluster.run("scontrol", "requeue", job.job_id)
    wait_done([job], slurm_cluster, timeout_s=60)
    assert job.result() == 1
    assert "checkpoint" not in progress.read_text()
