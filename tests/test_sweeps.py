"""Study launchers (hydra_plugins/jepa_launchers) and `python -m jepa.studies status`, on this machine.

A bad run refuses the whole sweep before anything runs; run folders are named by every swept key and the seed;
the manifest lists the runs; a relaunch skips finished runs; a failing run leaves the others done and is
reported; under submitit (local_processes, SLURM's code path) the time-limit signal (USR2) checkpoints and
requeues the run, which ends with the metrics of an uninterrupted one. tests/test_sweeps_slurm.py: on SLURM.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from hydra_plugins.jepa_launchers import SlurmLauncher
from jepa.studies.manifest import read_manifest, update_manifest
from jepa.studies.status import RunState, counts, format_table, run_state, sweep_states
from tests.conftest import TINY

REPO = Path(__file__).resolve().parents[1]
# one torch thread: runs in different processes (and on SLURM) give bit-identical metrics, and 2 shared cores
# are not oversubscribed
SWEEP_TINY = [*TINY, "training.threads=1"]
GRID = ["+sweeps=cov_std", *SWEEP_TINY, "loss.cov_coeff=1,100", "loss.std_coeff=1,10"]
FAILING = ["-m", *SWEEP_TINY, "optim.lr=1e-3,1e30"]  # 1e30 turns the losses non-finite within two steps


def run_sweep(sweep_dir: Path, *args: str, timeout: float = 600) -> tuple[subprocess.CompletedProcess, float]:
    """`python -m jepa.train ARGS hydra.sweep.dir=SWEEP_DIR`; its result and wall time."""
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "jepa.train", *args, f"hydra.sweep.dir={sweep_dir}"],
                          check=False, capture_output=True, text=True, timeout=timeout, cwd=REPO)
    return proc, time.monotonic() - start


def comparable(run_dir: Path) -> list[dict]:
    """metrics.jsonl without the timings."""
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if not k.startswith("time/")} for r in records]


def keys(run_name: str) -> dict[str, str]:
    """'a=1,b=2,seed=3' -> {'a': '1', 'b': '2', 'seed': '3'}"""
    return dict(part.split("=", 1) for part in run_name.split(","))


def results(run_dir: Path) -> dict:
    return json.loads((run_dir / "results.json").read_text())


def by_state(sweep_dir: Path) -> dict[str, list[str]]:
    states = {}
    for s in sweep_states(sweep_dir):
        states.setdefault(s.state, []).append(s.name)
    return states


# ---------------------------------------------------------------- run states, manifest, settings

def test_run_state_from_results_and_job():
    done = {"status": "done", "epochs": 2, "epochs_completed": 2, "final": {"val/mAP": 0.5}, "resumed": 1}
    running = {"status": "running", "reason": "stopped to be requeued", "epochs": 2, "epochs_completed": 1}
    failed = {"status": "failed", "reason": "NonFiniteLoss: nan", "epochs": 2, "epochs_completed": 0}
    slurm = {"launcher": "slurm", "job_id": "7_1", "log": "/x/7_1_0_log.err"}
    local = {"launcher": "local", "job_id": "123"}
    cases = [
        (done, slurm, "running", "done", None),  # a finished run whose job is still completing
        (None, slurm, "waiting", "pending", None),
        (running, slurm, "waiting", "pending", "requeued"),
        (running, slurm, "running", "running", None),
        (None, slurm, "running", "running", "starting"),
        (failed, slurm, "ended", "failed", "NonFiniteLoss: nan"),
        (failed, slurm, "waiting", "pending", None),  # relaunched
        (running, slurm, "ended", "failed", "its job ended before the run finished; job log: /x/7_1_0_log.err"),
        (None, slurm, "ended", "failed", "its job ended before the run started; job log: /x/7_1_0_log.err"),
        (running, slurm, None, "running", "stopped to be requeued"),  # squeue cannot answer
        (None, local, "ended", "pending", "not started and its launcher is gone"),
        (None, local, "running", "pending", None),  # its launcher runs another run first
        (failed, local, "running", "pending", None),  # and will run it again
        (running, local, "running", "running", None),
        (None, {}, None, "pending", None),
    ]
    for results, entry, activity, state, reason in cases:
        got = run_state("r", results, entry, activity)
        assert got.state == state, (results, activity, got)
        assert (got.reason is None) if reason is None else got.reason.startswith(reason), got.reason
    assert run_state("r", done, slurm, None).val_map == 0.5 and run_state("r", done, slurm, None).resumed == 1


def test_table_and_counts():
    states = [RunState("a=1,seed=1", "done", None, 2, 2, 0.25, 1, "7_0"),
              RunState("a=2,seed=1", "failed", "NonFiniteLoss: nan", 0, 2, None, 0, "7_1")]
    table = format_table(states).splitlines()
    assert table[0].split() == ["STATE", "EPOCHS", "VAL/MAP", "RESUMED", "JOB", "RUN"]
    assert table[1].split() == ["done", "2/2", "0.2500", "1", "7_0", "a=1,seed=1"]
    assert table[3].strip() == "NonFiniteLoss: nan"
    assert counts(states) == {"pending": 0, "running": 0, "done": 1, "pruned": 0, "failed": 1, "requeued": 1}


def test_manifest_updates_merge(tmp_path):
    update_manifest(tmp_path, {"a": {"overrides": ["x=1"], "job_id": "1_0"}, "b": {"overrides": ["x=2"]}})
    update_manifest(tmp_path, {"a": {"overrides": ["x=1"]}, "b": {"job_id": "2_0"}})
    runs = read_manifest(tmp_path)["runs"]
    assert runs == {"a": {"overrides": ["x=1"], "job_id": "1_0"}, "b": {"overrides": ["x=2"], "job_id": "2_0"}}


def slurm_settings(**changes) -> dict:
    settings = OmegaConf.load(REPO / "conf/hydra/launcher/slurm.yaml")
    settings.merge_with(changes, {"submitit_folder": "unused", "name": "jepa"})
    return {k: v for k, v in OmegaConf.to_container(settings).items() if k != "_target_"}


def test_slurm_defaults_requeue_and_leave_time_to_checkpoint():
    for profile in (None, "localtest", "example"):
        settings = slurm_settings(**(OmegaConf.load(REPO / f"conf/cluster/{profile}.yaml").hydra.launcher
                                     if profile else {}))
        assert settings["max_num_timeout"] > 0, profile
        assert settings["timeout_min"] * 60 - settings["signal_delay_s"] - 30 >= 10, profile


def test_slurm_refuses_a_signal_delay_its_time_limit_cannot_hold(capsys):
    launcher = SlurmLauncher(**slurm_settings(timeout_min=1, signal_delay_s=120))
    with pytest.raises(SystemExit) as exit_:
        launcher.launch([["seed=1"]], 0)  # refused before the sweep's config is even looked at
    assert exit_.value.code == 2
    assert "timeout_min * 60 - signal_delay_s - 30 >= 10" in capsys.readouterr().err


# ---------------------------------------------------------------- real sweeps (the CLI)

@pytest.mark.slow
@pytest.mark.parametrize("args, bad", [
    (["model.steps=1,99"], ["model.steps=99 is invalid"]),
    (["training.threads=1,2"], ["would share the run folder"]),  # a key left out of folder names
], ids=["bad-value", "same-folder"])
def test_a_bad_run_refuses_the_whole_sweep(tmp_path, args, bad):
    tiny = [o for o in TINY if not o.startswith("model.steps=")]
    proc, _ = run_sweep(tmp_path / "sweep", "-m", *tiny, *args)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "sweep refused, nothing was launched" in proc.stderr
    assert all(text in proc.stderr for text in bad), proc.stderr
    assert not list((tmp_path / "sweep").glob("*/results.json")) and not (tmp_path / "sweep/manifest.json").exists()


@pytest.mark.parametrize("stock, ours, settings", [
    ("submitit_slurm", "slurm", ["hydra.launcher.partition=debug", "hydra.launcher.timeout_min=5"]),
    ("submitit_local", "local_processes", ["hydra.launcher.timeout_min=5"]),
])
def test_stock_submitit_launchers_are_refused_before_anything_starts(tmp_path, stock, ours, settings):
    """Their stock settings still compose, so the refusal is the one line naming the project's launcher."""
    proc, _ = run_sweep(tmp_path / "sweep", "-m", *SWEEP_TINY, "seed=1,2", f"hydra/launcher={stock}",
                        *settings, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"configuration error: hydra/launcher={stock} "), proc.stderr
    assert f"use hydra/launcher={ours} " in lines[0]
    assert not list((tmp_path / "sweep").glob("**/*"))  # no run folder, no manifest


@pytest.mark.slow
def test_hydra_basic_launcher_is_the_local_study_launcher(tmp_path):
    """hydra/launcher=basic: the same launcher as local (checks, manifest, summary, skipping finished runs)."""
    sweep = tmp_path / "seeds"
    args = ["-m", *SWEEP_TINY, "seed=1,2", "hydra/launcher=basic"]
    proc, _ = run_sweep(sweep, *args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2 runs: 2 done" in proc.stdout
    assert all(e["launcher"] == "local" for e in read_manifest(sweep)["runs"].values())
    again, _ = run_sweep(sweep, *args)
    assert again.returncode == 0 and "2 of 2 runs are already done: skipped" in again.stdout + again.stderr


@pytest.mark.slow
def test_local_grid_names_its_runs_and_a_relaunch_skips_them(tmp_path):
    sweep = tmp_path / "cov_std"
    proc, _ = run_sweep(sweep, *GRID)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "4 runs: 4 done" in proc.stdout
    runs = sorted(p.parent for p in sweep.glob("*/results.json"))
    assert [(keys(r.name)["loss.cov_coeff"], keys(r.name)["loss.std_coeff"]) for r in runs] == [
        (c, s) for c in ("1", "100") for s in ("1", "10")]
    assert all(r.name.endswith(",seed=2025") and results(r)["status"] == "done" for r in runs)
    manifest = read_manifest(sweep)["runs"]
    assert sorted(manifest) == [r.name for r in runs]
    assert all(e["launcher"] == "local" and "+sweeps=cov_std" in e["overrides"] for e in manifest.values())

    written = {r: {p: p.stat().st_mtime_ns for p in r.rglob("*") if p.is_file()} for r in runs}
    again, _ = run_sweep(sweep, *GRID)
    assert again.returncode == 0 and "4 of 4 runs are already done: skipped" in again.stdout + again.stderr
    # nothing trained again: no file of any run folder was written
    assert all({p: p.stat().st_mtime_ns for p in r.rglob("*") if p.is_file()} == written[r] for r in runs)


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["local", "local_processes"])
def test_failing_run_leaves_the_rest_done_and_is_reported(tmp_path, launcher):
    """Exit 1 in both: the runs train in this process (local) or in others (local_processes, as on SLURM),
    where the launcher's exit 1 must not read as a Hydra composition error (exit 2)."""
    sweep = tmp_path / "lr"
    proc, _ = run_sweep(sweep, *FAILING, f"hydra/launcher={launcher}")
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "2 runs: 1 done, 1 failed" in proc.stdout
    assert "failed    " in proc.stdout and "optim.lr=1e+30" in proc.stdout and "non-finite loss" in proc.stdout
    states = by_state(sweep)
    assert [keys(n)["optim.lr"] for n in states["done"]] == ["0.001"]
    assert [keys(n)["optim.lr"] for n in states["failed"]] == ["1e+30"]
    if launcher == "local_processes":  # one folder per job, named by its id, and no literal `%j` one beside them
        jobs = sorted(p.name for p in (sweep / ".submitit").iterdir())
        assert len(jobs) == 2 and all(name.isdigit() for name in jobs), jobs

    status = subprocess.run([sys.executable, "-m", "jepa.studies", "status", str(sweep)],
                            capture_output=True, text=True, check=True, cwd=REPO).stdout.splitlines()
    assert status[0] == f"{sweep}: 2 runs: 1 done, 1 failed"
    assert status[1].split() == ["STATE", "EPOCHS", "VAL/MAP", "RESUMED", "JOB", "RUN"]
    failed = next(i for i, line in enumerate(status) if line.startswith("failed"))
    assert status[failed + 1].strip().startswith("NonFiniteLoss: non-finite loss at epoch 1")
    as_json = json.loads(subprocess.run([sys.executable, "-m", "jepa.studies", "status", str(sweep), "--json"],
                                        capture_output=True, text=True, check=True, cwd=REPO).stdout)
    assert as_json["counts"]["done"] == 1 and as_json["counts"]["failed"] == 1


def children(pid: int) -> list[int]:
    """The processes whose parent is pid (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid:
            found.append(int(stat.parent.name))
    return found


@pytest.mark.slow
def test_local_processes_usr2_checkpoints_requeues_and_matches(tmp_path):
    """local_processes runs each run as a submitit job, SLURM's code path. The job gets the USR2 that comes
    before a time limit (sent here once it trains, rather than waiting for one): it checkpoints, requeues, and
    the resumed run ends with the metrics of an uninterrupted one."""
    args = ["-m", *SWEEP_TINY, "data.num_train=192"]
    straight = subprocess.Popen([sys.executable, "-m", "jepa.train", *args, f"hydra.sweep.dir={tmp_path / 'a'}"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO)
    sweep = tmp_path / "b"
    launcher = subprocess.Popen([sys.executable, "-m", "jepa.train", *args, "hydra/launcher=local_processes",
                                 f"hydra.sweep.dir={sweep}"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, cwd=REPO)
    deadline = time.monotonic() + 300
    while not list(sweep.glob("*/results.json")):  # the run trains
        assert launcher.poll() is None and time.monotonic() < deadline, launcher.stdout.read()[-3000:]
        time.sleep(0.2)
    (entry,) = read_manifest(sweep)["runs"].values()
    (task,) = children(int(entry["job_id"]))  # the job's controller runs one task: the run
    os.kill(task, signal.SIGUSR2)
    output = launcher.communicate(timeout=600)[0]
    assert straight.wait(timeout=600) == 0
    assert launcher.returncode == 0, output[-3000:]
    (run,) = [p.parent for p in sweep.glob("*/results.json")]
    assert results(run)["status"] == "done" and results(run)["resumed"] == 1
    assert "time-limit signal: checkpointed" in (run / "train.log").read_text()
    assert comparable(run) == comparable(tmp_path / "a" / run.name)
