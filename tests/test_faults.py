"""What a run folder guarantees when users are hostile and clusters unlucky: the project's promise, by fault.

Each test's docstring states one guarantee; docs/run_folder.md ("What a run folder guarantees") counts them.

    kill points        a run stopped by a signal checkpoints and records why; a restart resumes it
    bad inputs         a config, override or folder that cannot work is refused before any work, with one line
    concurrent starts  one trainer per run folder, on any host sharing the file system
    corrupt files      an unreadable file is named with its way out; nothing runs code from a run folder

Fast tests build checkpoints without training; the ones that start `python -m jepa.train` are marked slow.
"""

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import jepa.runs.lock as lock_module
import jepa.training.trainer
from analysis.load import read_run
from jepa.config import ConfigError
from jepa.config.identity import run_name
from jepa.performance.device import resolve_device
from jepa.runs import CheckpointError, RunFolder, RunFolderError, RunLock, RunLocked, live_holder
from jepa.runs.lock import describe
from jepa.studies.cli import main as status_main
from jepa.studies.manifest import manifest_lock, read_manifest, update_manifest
from jepa.studies.status import sweep_states
from jepa.training import StopRequested, Trainer, train
from jepa.training.environment import rng_state, set_rng_state
from jepa.training.progress import Progress
from jepa.training.start import check_resume
from tests.conftest import TINY


def record(epoch: int) -> dict:
    return {"epoch": epoch, "global_step": 4 * epoch, "train/loss": 1.0 / epoch, "val/mAP": 0.1 * epoch}


def checkpoint_at(cfg, run_dir: Path, epoch: int | None = None, resumed: int = 0, elapsed: float = 0.0) -> Trainer:
    """A run folder whose checkpoint says `epoch` epochs (default: all) are done, written without training."""
    trainer = Trainer(cfg, run_dir)
    epoch = cfg.training.epochs if epoch is None else epoch
    trainer.progress = Progress(epoch=epoch, global_step=4 * epoch, history=[record(e) for e in range(1, epoch + 1)],
                                elapsed=elapsed, resumed=resumed)
    trainer.session_start = time.monotonic()
    trainer.save()
    trainer.folder.write_config(cfg)
    return trainer


def results(run_dir: Path) -> dict:
    return json.loads((run_dir / "results.json").read_text())


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# ==================================================================== bad inputs

@pytest.mark.parametrize("change, shown", [
    ("optim.lr=1e30", "optim.lr: 0.001 -> 1e+30"),
    ("loss.cov_coeff=3", "loss.cov_coeff"),
    ("data.batch_size=16", "data.batch_size: 8 -> 16"),
    ("seed=7", "seed: 2025 -> 7"),
])
def test_resume_under_a_changed_config_is_refused_with_what_changed(tiny_cfg, tmp_path, change, shown):
    """A resume whose config differs from its checkpoint's in what the run computes is refused before any
    work, listing `key: old -> new` and the ways out; config.yaml and results.json are left as they were."""
    checkpoint_at(tiny_cfg(), tmp_path, epoch=1)
    config_before = (tmp_path / "config.yaml").read_text()
    with pytest.raises(ConfigError, match="allow_config_change") as refused:
        train(tiny_cfg(change), tmp_path)
    assert shown in str(refused.value) and "training.resume=false" in str(refused.value)
    assert (tmp_path / "config.yaml").read_text() == config_before
    assert not (tmp_path / "results.json").exists()


def test_an_allowed_config_change_takes_effect_and_is_recorded(tiny_cfg, tmp_path):
    """With training.allow_config_change=true the run continues under the new values (the optimiser's rate
    included) and config_changes.jsonl records what changed, when."""
    checkpoint_at(tiny_cfg(), tmp_path)
    done = train(tiny_cfg("optim.lr=0.01", "training.allow_config_change=true"), tmp_path)
    assert done["status"] == "done"
    change = json.loads((tmp_path / "config_changes.jsonl").read_text())
    assert change["changes"] == {"optim.lr": [0.001, 0.01]} and change["epoch"] == 2
    assert "lr: 0.01" in (tmp_path / "config.yaml").read_text()
    resumed = Trainer(tiny_cfg("optim.lr=0.01"), tmp_path)
    resumed.restore(RunFolder(tmp_path).load_checkpoint())
    assert [g["lr"] for g in resumed.learner.optimizer.param_groups][:2] == [0.01, 0.01]


def test_a_finished_run_started_under_other_values_is_refused_not_taken_for_done(tiny_cfg, tmp_path):
    """Starting a finished run's folder again under other values is refused with `key: old -> new`
    (it is not the new values' run); under the same values, or with the documented switch, it is skipped as done."""
    checkpoint_at(tiny_cfg(), tmp_path)
    done = train(tiny_cfg(), tmp_path)
    kept = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file() and p.name != "train.log"}
    with pytest.raises(ConfigError, match="finished run of other values") as refused:
        train(tiny_cfg("loss.cov_coeff=3"), tmp_path)
    assert "loss.cov_coeff: 100.0 -> 3" in str(refused.value)
    assert {p: p.read_bytes() for p in kept} == kept
    assert train(tiny_cfg("training.threads=1"), tmp_path) == done
    assert train(tiny_cfg("loss.cov_coeff=3", "training.allow_config_change=true"), tmp_path) == done


def test_epochs_may_grow_but_not_fall_below_the_epochs_done(tiny_cfg, tmp_path):
    """training.epochs may change on resume (extending a run is legitimate, and recorded), but never below
    the epochs already completed: the folder would describe more epochs than its config."""
    trainer = checkpoint_at(tiny_cfg(), tmp_path)
    ckpt = RunFolder(tmp_path).load_checkpoint()
    with pytest.raises(ConfigError, match="training.epochs=1"):
        check_resume(tiny_cfg("training.epochs=1"), ckpt, trainer.folder)
    assert check_resume(tiny_cfg("training.epochs=5"), ckpt, trainer.folder) == {"training.epochs": (2, 5)}
    assert check_resume(tiny_cfg("training.threads=1", "training.checkpoint_minutes=3"), ckpt, trainer.folder) == {}


@pytest.mark.slow
def test_the_app_refuses_a_changed_resume_and_leaves_the_folder_as_it_was(tmp_path):
    """`python -m jepa.train ... optim.lr=1e30` over a finished run exits 2 with one line saying what
    changed; config.yaml, .hydra/ and results.json still describe the run that happened."""
    cmd = [sys.executable, "-m", "jepa.train", *TINY, f"hydra.run.dir={tmp_path}"]
    first = subprocess.run([*cmd, "training.epochs=1"], capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr
    assert f"run folder: {tmp_path.resolve()}\n" in first.stdout + first.stderr  # the log names it first
    kept = {p: p.read_bytes() for p in [tmp_path / "config.yaml", tmp_path / "results.json",
                                        *(tmp_path / ".hydra").glob("*.yaml")]}
    again = subprocess.run([*cmd, "training.epochs=2", "optim.lr=1e30"], capture_output=True, text=True, timeout=600)
    assert again.returncode == 2, again.stderr
    [line] = again.stderr.strip().splitlines()
    assert "optim.lr: 0.001 -> 1e+30" in line and "training.allow_config_change=true" in line
    assert {p: p.read_bytes() for p in kept} == kept
    finished = subprocess.run([*cmd, "training.epochs=1", "optim.lr=1e30"], capture_output=True, text=True,
                              timeout=600)
    assert finished.returncode == 2, finished.stderr
    assert "finished run of other values" in finished.stderr and "optim.lr: 0.001 -> 1e+30" in finished.stderr
    assert {p: p.read_bytes() for p in kept} == kept


def test_a_restart_before_any_checkpoint_under_a_changed_config_is_refused_or_recorded(tiny_cfg, tmp_path):
    """A run whose first start failed before its first checkpoint (config.yaml written, no checkpoint),
    started again with another value, is refused with `key: old -> new` like a changed resume, config.yaml
    kept; with training.allow_config_change=true it trains and the change is in config_changes.jsonl."""
    folder = RunFolder(tmp_path)
    folder.write_config(tiny_cfg("optim.lr=0.01"))
    folder.write_results({"status": "failed", "reason": "NonFiniteLoss: nan", "resumed": 0})
    kept = folder.config.read_bytes()
    with pytest.raises(ConfigError, match=r"optim.lr: 0.01 -> 0.001.*allow_config_change=true"):
        train(tiny_cfg(), tmp_path)
    assert folder.config.read_bytes() == kept and not (tmp_path / "config_changes.jsonl").exists()
    done = train(tiny_cfg("training.allow_config_change=true"), tmp_path)
    assert done["status"] == "done" and done["resumed"] == 1
    [change] = [json.loads(x) for x in (tmp_path / "config_changes.jsonl").read_text().splitlines()]
    assert change["changes"] == {"optim.lr": [0.01, 0.001]} and change["global_step"] == 0


@pytest.mark.slow
def test_the_app_refuses_a_changed_restart_of_a_diverged_run(tmp_path):
    """A run that went NaN before its first checkpoint, started again in its folder with another optim.lr,
    exits 2 with one line saying what changed; config.yaml and results.json still describe the failed start."""
    cmd = [sys.executable, "-m", "jepa.train", *TINY, "training.epochs=1", f"hydra.run.dir={tmp_path}"]
    first = subprocess.run([*cmd, "optim.lr=1e30"], capture_output=True, text=True, timeout=600)
    assert first.returncode == 1, first.stderr
    kept = {p: p.read_bytes() for p in (tmp_path / "config.yaml", tmp_path / "results.json")}
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert again.returncode == 2, again.stderr
    [line] = again.stderr.strip().splitlines()
    assert "optim.lr: 1e+30 -> 0.001" in line and "training.allow_config_change=true" in line
    assert {p: p.read_bytes() for p in kept} == kept


@pytest.mark.slow
def test_the_app_records_a_diverged_run_as_failed_and_says_so_in_one_line(tmp_path):
    """A run whose loss turns NaN exits 1 with one line naming the step and the record (no traceback), and its
    results.json says failed with the same reason."""
    proc = subprocess.run([sys.executable, "-m", "jepa.train", *TINY, "optim.lr=1e30", "training.epochs=1",
                           f"hydra.run.dir={tmp_path}"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith("run failed: non-finite loss at epoch 1 step ") and "results.json" in line
    recorded = results(tmp_path)
    assert recorded["status"] == "failed" and recorded["reason"].startswith("NonFiniteLoss: non-finite loss")


@pytest.mark.slow
def test_a_sweep_whose_run_would_refuse_its_resume_is_refused_before_any_run_starts(tiny_cfg, tmp_path):
    """Relaunching a sweep where one run's checkpoint holds other values (here optim.lr, which names no run
    folder) refuses the whole sweep with exit 2, naming the run and `key: old -> new`: no run starts, so no
    other run trains and no run is turned into a failure."""
    base = [*TINY, "training.threads=1"]
    held = tmp_path / run_name([*base, "loss.cov_coeff=1"], 2025)
    checkpoint_at(tiny_cfg("training.threads=1", "loss.cov_coeff=1", "optim.lr=0.01"), held, epoch=1)
    kept = {p: p.read_bytes() for p in held.rglob("*") if p.is_file()}
    proc = subprocess.run([sys.executable, "-m", "jepa.train", "-m", *base, "loss.cov_coeff=1,10",
                           f"hydra.sweep.dir={tmp_path}"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "sweep refused, nothing was launched: 1 problem(s) among 2 runs" in proc.stderr
    assert "optim.lr: 0.01 -> 0.001" in proc.stderr and "loss.cov_coeff=1\n" in proc.stderr, proc.stderr
    assert {p: p.read_bytes() for p in held.rglob("*") if p.is_file()} == kept
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == [held.name]  # the other never started


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_a_cuda_device_this_machine_lacks_is_a_config_error(tiny_cfg, tmp_path, device):
    """training.device=cuda on a machine without CUDA is refused as a bad value before the run folder is
    written, not an AssertionError from torch mid-run."""
    with pytest.raises(ConfigError, match="training.device"):
        resolve_device(device)
    with pytest.raises(ConfigError, match="no CUDA"):
        train(tiny_cfg(f"training.device={device}"), tmp_path / "run")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("override", ["logging.project=x/../../../escaped", "optim.name=../../../escaped",
                                      "loss.cov_coeff=..", "data.digits_path=/etc/../../x"])
def test_run_folder_names_stay_inside_the_sweep_folder(tmp_path, override):
    """No override value, however many `../` it holds, puts a sweep's run folder outside the sweep folder."""
    name = run_name([override], 1)
    assert "/" not in name and "\\" not in name
    assert (tmp_path / name).resolve().parent == tmp_path.resolve()


@pytest.mark.slow
@pytest.mark.parametrize("args, first_line", [
    (["training.epochs=0"], "configuration error: training.epochs=0"),  # a bad value (jepa.config.validate)
    (["notakey=1"], "configuration error: notakey is not a key of the config: the top-level keys are data,"),
    (["training.foo=1"], "training.foo is not a key of the config: the keys of training are epochs, device,"),
    (["trainin.epochs=2"], "trainin is not a key of the config: did you mean training? the top-level keys"),
    (["experiment=quik"], "experiment='quik' is invalid: did you mean quick? the options of experiment are "),
    (["data=generatd"], "data='generatd' is invalid: did you mean generated? the options of data are "),
    (["model=nosuchmodel"], "configuration error: model='nosuchmodel' is invalid: the options of model are"),
    (["training.epochs=["], "configuration error: no viable alternative at input '['"),  # override syntax
    (["hydra.run.dir={tmp}/new/a;b$(x)"], "configuration error: LexerNoViableAltException: hydra.run.dir="),
    (["hydra.run.dir=/proc/self/run"], "configuration error: hydra.run.dir"),  # a folder that cannot be made
    (["hydra.run.dir={tmp}/a_file/run"], "configuration error: hydra.run.dir"),  # ... under a file
    (["-m", "hydra.sweep.dir={tmp}/a_file/sweep"], "configuration error: hydra.sweep.dir"),  # a sweep's
])
def test_the_app_refuses_bad_input_with_exit_2_and_no_traceback(tmp_path, args, first_line):
    """Every bad value, override, config group option or run folder exits 2 with one line naming the problem
    and what is valid (the closest names, a group's options), no traceback."""
    (tmp_path / "a_file").write_text("")
    args = [a.format(tmp=tmp_path) for a in args]
    if not any(a.startswith("hydra.run.dir") for a in args):
        args.append(f"hydra.run.dir={tmp_path / 'run'}")
    proc = subprocess.run([sys.executable, "-m", "jepa.train", *TINY, *args], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 2, proc.stderr
    [line] = proc.stderr.strip().splitlines()
    assert first_line in line and "Traceback" not in proc.stderr, proc.stderr
    assert not (tmp_path / "new").exists()  # a refused start leaves no folder it made


def test_the_app_refuses_hydra_flags_that_exclude_each_other_with_exit_2():
    """`-m` with `--cfg job` (which Hydra refuses with a ValueError) is a bad input: exit 2, one line."""
    proc = subprocess.run([sys.executable, "-m", "jepa.train", "-m", "--cfg", "job", *TINY], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith("configuration error: Only one of --run, --multirun, --cfg"), line


# ==================================================================== corrupt files

class Exploit:
    """A pickle that runs a command when loaded the unsafe way."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_crafted_checkpoint_cannot_run_code(tiny_cfg, tmp_path):
    """Checkpoints load with weights_only: a file that would run code when unpickled is refused, its code
    never runs, and results.json says failed with the file and the way out."""
    marker = tmp_path / "pwned"
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    torch.save({"model": Exploit(marker)}, tmp_path / "run" / "checkpoints" / "last.pt")
    with pytest.raises(CheckpointError, match="training.resume=false"):
        train(tiny_cfg(), tmp_path / "run")
    assert not marker.exists()
    saved = results(tmp_path / "run")
    assert saved["status"] == "failed" and "last.pt" in saved["reason"]


@pytest.fixture(scope="module")
def real_checkpoint(tmp_path_factory):
    """The bytes of a checkpoint of the tiny run, and one of a bigger model recorded under the tiny config."""
    from jepa.config import compose_config

    folder = tmp_path_factory.mktemp("real")
    tiny = compose_config(TINY)
    checkpoint_at(tiny, folder / "tiny")
    big = checkpoint_at(compose_config([*TINY, "model.henc=8"]), folder / "big")
    ckpt = big.folder.load_checkpoint()
    ckpt["config"] = RunFolder(folder / "tiny").load_checkpoint()["config"]
    torch.save(ckpt, folder / "big.pt")
    return (folder / "tiny" / "checkpoints" / "last.pt").read_bytes(), (folder / "big.pt").read_bytes()


@pytest.mark.parametrize("kind", ["truncated", "random", "empty", "wrong size", "not a dict"])
def test_a_corrupt_checkpoint_names_the_file_and_the_way_out(tiny_cfg, tmp_path, real_checkpoint, kind):
    """A truncated, random, empty, wrong-size or wrong-type checkpoints/last.pt stops the run with one
    message naming the file and training.resume=false, and results.json records failed with that reason
    (not the status it had); training.resume=false then starts afresh."""
    good, big = real_checkpoint
    content = {"truncated": good[: len(good) // 2], "random": os.urandom(4096), "empty": b"", "wrong size": big,
               "not a dict": None}[kind]
    path = tmp_path / "checkpoints" / "last.pt"
    path.parent.mkdir()
    if content is None:
        torch.save([1, 2, 3], path)
    else:
        path.write_bytes(content)
    RunFolder(tmp_path).write_results({"status": "running", "reason": None, "resumed": 0})
    with pytest.raises(CheckpointError) as failed:
        train(tiny_cfg(), tmp_path)
    message = str(failed.value)
    assert str(path) in message and "training.resume=false" in message and len(message.splitlines()) == 1
    saved = results(tmp_path)
    assert saved["status"] == "failed" and saved["reason"] == message


def test_checkpoints_hold_only_plain_types_and_restore_every_generator(tiny_cfg, tmp_path):
    """A checkpoint holds tensors and plain containers only (it loads with weights_only=True) and still
    restores torch's, numpy's and Python's random generators exactly."""
    state = rng_state()
    torch.save(state, tmp_path / "rng.pt")
    expected = (torch.rand(3), np.random.rand(3), random.random())
    set_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True))
    again = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(expected[0], again[0]) and np.array_equal(expected[1], again[1]) and expected[2] == again[2]


@pytest.mark.parametrize("content", ["{x", '{"status": "done"}', "[]", "", '{"status": "running", "resumed": "3"}',
                                     '{"status": 5}', '{"status": "failed", "epochs_completed": [1]}'])
def test_an_unreadable_results_json_is_named_not_a_crash(tmp_path, capsys, content):
    """An unreadable, wrongly shaped or wrongly typed results.json is reported with its path and the fix by
    every reader: the status tool lists the run as a problem instead of crashing."""
    run = tmp_path / "sweep" / "a_run"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text("seed: 1\n")
    (run / "results.json").write_text(content)
    with pytest.raises(RunFolderError, match="results.json is unreadable.*move it aside"):
        RunFolder(run).read_results()
    [state] = sweep_states(tmp_path / "sweep")
    assert state.state == "failed" and str(run / "results.json") in state.reason
    assert status_main(["status", str(tmp_path / "sweep")]) == 0
    assert "1 runs: 1 failed" in capsys.readouterr().out


@pytest.mark.parametrize("content", ["{not json", "", "[]", "{}", '{"runs": {"a_run": 5}}'])
def test_an_unreadable_manifest_is_named_and_the_run_folders_still_report(tmp_path, capsys, content):
    """`python -m jepa.studies status` over a corrupt manifest.json names it and the way out, and still
    lists every run from its own folder (the manifest only adds job ids)."""
    run = tmp_path / "sweep" / "a_run"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text("seed: 1\n")
    RunFolder(run).write_results({"status": "failed", "reason": "NonFiniteLoss: nan"})
    (tmp_path / "sweep" / "manifest.json").write_text(content)
    assert status_main(["status", str(tmp_path / "sweep")]) == 0
    out, err = capsys.readouterr()
    assert f"{tmp_path / 'sweep' / 'manifest.json'} is unreadable" in err and "move it aside" in err
    assert "1 runs: 1 failed" in out and "NonFiniteLoss: nan" in out


def test_a_numeric_job_id_in_the_manifest_is_shown(tmp_path, capsys):
    run = tmp_path / "a_run"
    run.mkdir()
    update_manifest(tmp_path, {"a_run": {"overrides": [], "launcher": "slurm", "job_id": 5}})
    assert status_main(["status", str(tmp_path)]) == 0
    assert any(line.split()[-2:] == ["5", "a_run"] for line in capsys.readouterr().out.splitlines())


@pytest.mark.slow
def test_a_sweep_over_an_unreadable_manifest_is_refused_before_any_run_starts(tmp_path):
    (tmp_path / "manifest.json").write_text("{not json")
    proc = subprocess.run([sys.executable, "-m", "jepa.train", "-m", *TINY, "training.threads=1", "seed=1,2",
                           f"hydra.sweep.dir={tmp_path}"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "sweep refused, nothing was launched" in proc.stderr and "manifest.json is unreadable" in proc.stderr
    assert not [p for p in tmp_path.iterdir() if p.is_dir()]  # no run folder (Hydra wrote its multirun.yaml)
    assert (tmp_path / "manifest.json").read_text() == "{not json"


@pytest.mark.parametrize("content", ["{x", '{"status": "running", "resumed": "3"}', '{"status": 5}'])
def test_a_run_restarted_over_an_unreadable_results_json_rebuilds_it(tiny_cfg, tmp_path, content):
    """Starting a run again over an unreadable or wrongly typed results.json warns and rebuilds it from the
    checkpoint."""
    checkpoint_at(tiny_cfg(), tmp_path)
    (tmp_path / "results.json").write_text(content)
    done = train(tiny_cfg(), tmp_path)
    assert done["status"] == "done" and results(tmp_path)["epochs_completed"] == 2


def test_a_finished_run_repairs_its_emptied_metrics_and_the_analysis_flags_it(tiny_cfg, tmp_path):
    """A done run whose metrics.jsonl lost epochs is flagged by the analysis, and starting it again (a
    sweep relaunch) rebuilds the file from its checkpoint; a metric that is not a number is flagged too."""
    checkpoint_at(tiny_cfg(), tmp_path)
    train(tiny_cfg(), tmp_path)
    (tmp_path / "metrics.jsonl").write_text("")
    assert "holds 1 of 2 epochs" in read_run(tmp_path)[0]["reason"]  # results.json's final record is the one left
    train(tiny_cfg(), tmp_path)
    assert [json.loads(x)["epoch"] for x in (tmp_path / "metrics.jsonl").read_text().splitlines()] == [1, 2]
    assert read_run(tmp_path)[0]["reason"] is None
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write(json.dumps({**record(3), "val/mAP": "0.9"}) + "\n")
    assert "non-numeric" in read_run(tmp_path)[0]["reason"]


def test_restarts_that_die_before_their_first_checkpoint_still_count(tiny_cfg, tmp_path):
    """`resumed` and `wall_time_s` count every restart, also one killed before it wrote a checkpoint:
    results.json (written when a restart starts) carries them when the checkpoint is older."""
    checkpoint_at(tiny_cfg(), tmp_path, resumed=0, elapsed=5.0)
    RunFolder(tmp_path).write_results({"status": "running", "reason": None, "resumed": 2, "wall_time_s": 100.0,
                                       "started": "2026-01-01T00:00:00+00:00"})
    done = train(tiny_cfg(), tmp_path)
    assert done["resumed"] == 3 and done["wall_time_s"] >= 100 and done["started"].startswith("2026-01-01")


def test_a_start_killed_during_data_set_up_still_counts(tiny_cfg, tmp_path):
    """A restart SIGKILLed while it builds its data sets, before the trainer writes anything, is counted in
    `resumed` by the next start."""
    checkpoint_at(tiny_cfg(), tmp_path, epoch=1)
    killed = ("import os, signal, sys; import jepa.training.trainer as t; from jepa.training import train; "
              "from tests.conftest import TINY; from jepa.config import compose_config; "
              "t.build_datasets = lambda *a: os.kill(os.getpid(), signal.SIGKILL); "
              f"train(compose_config(TINY), {str(tmp_path)!r})")
    proc = subprocess.run([sys.executable, "-c", killed], capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    done = train(tiny_cfg(), tmp_path)
    assert done["status"] == "done" and done["resumed"] == 2


def test_a_start_refused_during_its_data_set_up_is_recorded_failed(tiny_cfg, tmp_path, capsys):
    """A start whose data set-up refuses (the canonical file missing, downloads off) never trained: results.json
    says failed with that reason, not running, and `status` lists it so."""
    missing = ("data=canonical", f"data.root={tmp_path / 'no-data'}", "data.download=false")
    run = tmp_path / "sweep" / "a_run"
    with pytest.raises(ConfigError, match="mnist_test_seq.npy is not there"):
        train(tiny_cfg(*missing), run)
    saved = results(run)
    assert saved["status"] == "failed" and "mnist_test_seq.npy is not there" in saved["reason"]
    [state] = sweep_states(tmp_path / "sweep")
    assert state.state == "failed" and "mnist_test_seq.npy is not there" in state.reason


def test_temporary_files_of_interrupted_writes_are_removed_at_start(tiny_cfg, tmp_path):
    """A kill during a write leaves `.NAME.*.tmp` behind (a whole checkpoint for last.pt): the next start of
    the run, holding its lock, deletes them."""
    checkpoint_at(tiny_cfg(), tmp_path)
    train(tiny_cfg(), tmp_path)
    left = [tmp_path / "checkpoints" / ".last.pt.k1ll3d.tmp", tmp_path / ".results.json.x.tmp",
            tmp_path / ".rollout.gif.y.tmp", tmp_path / "rollout.tmp.gif"]
    for path in left:
        path.write_bytes(b"half")
    train(tiny_cfg(), tmp_path)
    assert not any(p.exists() for p in left) and (tmp_path / "checkpoints" / "last.pt").exists()


def test_the_report_deletes_only_the_optuna_copies_it_made(tmp_path):
    """`python -m analysis S --out S` never deletes files it did not write (an Optuna study's own folder)."""
    from analysis.report import _copy_optuna_studies

    study = tmp_path / "optuna"
    study.mkdir()
    (study / "summary.md").write_text("# Study\n![p](plot.png)\n")
    (study / "plot.png").write_bytes(b"png")
    (study / "journal.log").write_text("trials")
    for _ in range(2):
        _copy_optuna_studies([study], tmp_path, {})
    assert (study / "journal.log").read_text() == "trials" and (study / "plot.png").read_bytes() == b"png"
    out = tmp_path / "report"
    (out / "optuna").mkdir(parents=True)
    (out / "optuna" / "mine.txt").write_text("keep")
    _copy_optuna_studies([study], out, {})
    _copy_optuna_studies([], out, {})
    assert (out / "optuna" / "mine.txt").exists() and not (out / "optuna" / tmp_path.name / "plot.png").exists()


# ==================================================================== concurrent starts

def test_the_lock_admits_one_holder_and_breaks_only_stale_locks(tmp_path, monkeypatch):
    """One holder at a time; a lock is stale when its pid is dead on this host or its heartbeat (refreshed
    by a thread) is older than STALE_S on any host; a fresh lock of another host is respected."""
    monkeypatch.setattr(lock_module, "HEARTBEAT_S", 0.05)
    with RunLock(tmp_path) as held:
        with pytest.raises(RunLocked, match=f"pid {os.getpid()}"):
            RunLock(tmp_path).acquire()
        assert live_holder(tmp_path)["pid"] == os.getpid()
        os.utime(held.path, (0, 0))
        time.sleep(0.3)
        assert time.time() - held.path.stat().st_mtime < 5  # the heartbeat
    assert not (tmp_path / ".lock").exists() and live_holder(tmp_path) is None

    def holder(host, pid, age):
        (tmp_path / ".lock").write_text(json.dumps({"host": host, "pid": pid, "token": "t"}))
        os.utime(tmp_path / ".lock", (time.time() - age, time.time() - age))

    holder(socket.gethostname(), dead_pid(), 0)  # a crashed process on this host
    RunLock(tmp_path).acquire().release()
    holder("another-node", 12345, 10)  # a live run on another node of the cluster
    with pytest.raises(RunLocked, match="another-node"):
        RunLock(tmp_path).acquire()
    holder("another-node", 12345, lock_module.STALE_S + 60)  # a node that died
    RunLock(tmp_path).acquire().release()


def test_a_locked_run_folder_is_refused_and_left_untouched(tiny_cfg, tmp_path):
    """A second start of a run being trained is refused (RunLocked, exit 3 in the app) before it reads or
    writes anything: results.json, config.yaml and the checkpoint keep the first trainer's content."""
    checkpoint_at(tiny_cfg(), tmp_path, epoch=1)
    RunFolder(tmp_path).write_results({"status": "running", "reason": None})
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    with RunLock(tmp_path):
        with pytest.raises(RunLocked):
            train(tiny_cfg("optim.lr=0.5"), tmp_path)
    after = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert after == before


@pytest.mark.slow
def test_two_starts_of_one_run_train_it_once(tmp_path):
    """Two `python -m jepa.train` started together on one folder: one trains to done, the other exits 3
    with one line; the finished run's results.json says done."""
    cmd = [sys.executable, "-m", "jepa.train", *TINY, "training.epochs=1", f"hydra.run.dir={tmp_path}"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 3], outs
    refused = outs[[p.returncode for p in procs].index(3)][1]
    assert "being trained by another process" in refused and "Traceback" not in refused
    assert results(tmp_path)["status"] == "done" and not (tmp_path / ".lock").exists()


def test_status_follows_the_run_lock_when_the_recorded_job_has_ended(tmp_path, monkeypatch):
    """A run whose manifest job has ended (its job skipped the run: a manual start trains it) reads running
    while another live process holds its folder, naming that process and its job; failed once none does."""
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "70")  # the holder runs in a SLURM array task
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "3")
    monkeypatch.delenv("SUBMITIT_EXECUTOR", raising=False)
    sweep = tmp_path / "sweep"
    run = sweep / "a_run"
    run.mkdir(parents=True)
    (run / "results.json").write_text(json.dumps({"status": "running"}))
    update_manifest(sweep, {"a_run": {"overrides": [], "launcher": "local_processes", "job_id": str(dead_pid()),
                                      "host": socket.gethostname()}})
    with RunLock(run):
        [state] = sweep_states(sweep)
        holder = describe(live_holder(run))
        assert (state.state, state.reason) == ("running", f"being trained by another process ({holder})")
        assert holder.startswith(f"job 70_3, pid {os.getpid()}") and state.job_id == "70_3"
    [state] = sweep_states(sweep)
    assert state.state == "failed" and state.reason.startswith("its job ended before the run finished")


@pytest.mark.slow
def test_a_sweep_skips_a_run_another_process_is_training(tmp_path):
    """A sweep launched while another process holds one of its run folders (a second copy of the sweep, a
    manual start) skips that run with a message instead of training it twice at once."""
    overrides = [*TINY, "training.threads=1", "loss.cov_coeff=1"]
    run = tmp_path / run_name(overrides, 2025)
    run.mkdir(parents=True)
    with RunLock(run):
        proc = subprocess.run([sys.executable, "-m", "jepa.train", "-m", *overrides, f"hydra.sweep.dir={tmp_path}"],
                              capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"being trained by another process (pid {os.getpid()}" in proc.stdout + proc.stderr
    assert sorted(p.name for p in run.iterdir()) == []


def test_manifest_updates_of_two_launchers_lose_nothing(tmp_path):
    """Two processes recording runs in one sweep folder's manifest at once (two launches of a sweep) lose none
    of each other's entries, and leave no lock file behind."""
    script = ("import sys; from jepa.studies.manifest import update_manifest\n"
              "for i in range(40): update_manifest(sys.argv[1], {f'{sys.argv[2]}{i}': {'overrides': [], 'job_id': i}})")
    procs = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path), who]) for who in "ab"]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    assert sorted(read_manifest(tmp_path)["runs"]) == sorted(f"{who}{i}" for who in "ab" for i in range(40))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.json"]


def test_a_launcher_waits_for_the_one_holding_the_manifest_lock(tmp_path):
    """A launcher of the sweep waits while another holds the manifest lock (deciding, submitting, recording its
    runs), says whom it waits for, and records its runs once the lock is free."""
    script = "import sys; from jepa.studies.manifest import update_manifest; update_manifest(sys.argv[1], {'b': {}})"
    with manifest_lock(tmp_path):
        update_manifest(tmp_path, {"a": {}})  # its holder may record
        waiting = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], stderr=subprocess.PIPE, text=True)
        time.sleep(3)
        assert waiting.poll() is None and sorted(read_manifest(tmp_path)["runs"]) == ["a"]
    _, err = waiting.communicate(timeout=60)
    assert waiting.returncode == 0 and sorted(read_manifest(tmp_path)["runs"]) == ["a", "b"]
    assert f"waiting for another launcher of this sweep (pid {os.getpid()} on {socket.gethostname()}" in err


@pytest.mark.slow
def test_a_second_copy_of_a_sweep_leaves_each_run_to_the_job_that_trains_it(tmp_path):
    """A copy of a local_processes sweep launched while the first one trains its first run trains the second
    run itself. The first copy, going on, skips that run: it submits no job for it, and the manifest keeps the
    job that trained it."""
    args = ["-m", *TINY, "training.threads=1", "loss.cov_coeff=1,2", "hydra/launcher=local_processes",
            f"hydra.sweep.dir={tmp_path}"]
    first = subprocess.Popen([sys.executable, "-m", "jepa.train", *args], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 300
    while not list(tmp_path.glob("*/results.json")):  # its first run trains
        assert first.poll() is None and time.monotonic() < deadline, first.stdout.read()[-3000:]
        time.sleep(0.2)
    os.kill(first.pid, signal.SIGSTOP)  # held between its runs while the second copy runs
    try:
        second = subprocess.run([sys.executable, "-m", "jepa.train", *args], capture_output=True, text=True,
                                timeout=600)
    finally:
        os.kill(first.pid, signal.SIGCONT)
    output = first.communicate(timeout=600)[0]
    assert second.returncode == 0 and first.returncode == 0, (second.stderr[-3000:], output[-3000:])
    first_run, second_run = (run_name([*TINY, f"loss.cov_coeff={c}"], 2025) for c in (1, 2))
    assert results(tmp_path / second_run)["status"] == "done" and results(tmp_path / second_run)["resumed"] == 0
    assert f"skipped {second_run}: done" in output, output[-3000:]
    # one job a run, each the manifest's: the second run's is the second copy's job, which trained it
    jobs = {name: entry["job_id"] for name, entry in read_manifest(tmp_path)["runs"].items()}
    assert sorted(p.name for p in (tmp_path / ".submitit").iterdir()) == sorted([jobs[first_run], jobs[second_run]])


# ==================================================================== kill points (signals)

STOP_SIGNALS = [s for s in ("SIGTERM", "SIGHUP", "SIGUSR1", "SIGUSR2", "SIGINT") if hasattr(signal, s)]


@pytest.mark.parametrize("name", STOP_SIGNALS)
def test_a_terminating_signal_ends_in_a_checkpoint_and_a_recorded_reason(tiny_cfg, tmp_path, monkeypatch, name):
    """SIGTERM (scancel, preemption), SIGHUP, SIGUSR1, SIGUSR2 and SIGINT (Ctrl-C) make a run checkpoint at the step it
    reached and record `running` with the signal's name as the reason; the handlers are restored after."""
    sig = getattr(signal, name)
    real_step = jepa.training.trainer.Trainer.train_step

    def step_then_signal(self, video, labels):
        out = real_step(self, video, labels)
        if self.global_step == 1:  # the second step: signalled while training
            os.kill(os.getpid(), sig)
        return out

    monkeypatch.setattr(jepa.training.trainer.Trainer, "train_step", step_then_signal)
    before = signal.getsignal(sig)
    with pytest.raises(StopRequested) as stopped:
        train(tiny_cfg(), tmp_path)
    assert stopped.value.signum == sig and signal.getsignal(sig) == before
    saved = results(tmp_path)
    assert saved["status"] == "running" and name in saved["reason"] and saved["global_step"] == 2
    assert RunFolder(tmp_path).load_checkpoint()["global_step"] == 2


def test_a_second_ctrl_c_stops_at_once_keeping_the_last_checkpoint(tiny_cfg, tmp_path, monkeypatch):
    """A second SIGINT before the first one's checkpoint stops the run at once: no traceback of a failure,
    results.json says running (resumable) and why, and the handlers are restored after."""
    real_step = jepa.training.trainer.Trainer.train_step

    def step_then_two_interrupts(self, video, labels):
        out = real_step(self, video, labels)
        if self.global_step == 1:
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)
        return out

    monkeypatch.setattr(jepa.training.trainer.Trainer, "train_step", step_then_two_interrupts)
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_cfg(), tmp_path)
    assert signal.getsignal(signal.SIGINT) == before
    saved = results(tmp_path)
    assert saved["status"] == "running" and "second SIGINT" in saved["reason"]
    assert not (tmp_path / "checkpoints" / "last.pt").exists()


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_a_stop_signal_to_the_app_checkpoints_exits_128_plus_n_in_one_line_and_resumes(tmp_path, signum):
    """`kill -TERM` (what SLURM sends on scancel and preemption) or Ctrl-C (SIGINT) to a training app: it
    checkpoints at the step reached, records `running` and why, exits 128+N with one line and no traceback,
    and the same command resumes it to done."""
    cmd = [sys.executable, "-m", "jepa.train", *TINY, "training.epochs=1", f"hydra.run.dir={tmp_path}"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not (tmp_path / "results.json").exists():  # training has started
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=300)
    name = signal.Signals(signum).name
    assert proc.returncode == 128 + signum, err
    assert "Traceback" not in out + err and "KeyboardInterrupt" not in out + err
    assert f"stopped by {name} at epoch 1" in out + err
    saved = results(tmp_path)
    assert saved["status"] == "running" and name in saved["reason"]
    assert RunFolder(tmp_path).load_checkpoint()["global_step"] == saved["global_step"] > 0
    assert not (tmp_path / ".lock").exists()
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert results(tmp_path)["status"] == "done" and results(tmp_path)["resumed"] == 1


# ==================================================================== a full disk

@pytest.fixture
def small_disk(tmp_path):
    """A 1 MiB file system (tmpfs) of its own: room for one tiny checkpoint, not for the next one beside it.
    Mounting needs root; elsewhere the test is skipped (the machine's own disk is not for filling)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip("cannot mount a small tmpfs (needs root)")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


@pytest.mark.slow
def test_a_full_disk_ends_the_run_in_one_line_with_the_space_needed_and_it_resumes(small_disk):
    """A checkpoint that no longer fits on the disk ends the run with exit 1 and one line naming the run
    folder, the space its checkpoint needs and what is free; results.json says failed with that reason, the
    last good checkpoint is intact, and the same command resumes from it once there is space."""
    run = small_disk / "run"
    cmd = [sys.executable, "-m", "jepa.train", *TINY, "training.epochs=2", f"hydra.run.dir={run}"]
    full = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert full.returncode == 1, full.stderr
    [line] = full.stderr.strip().splitlines()
    assert line.startswith(f"run failed: disk full: {run} needs about 0.6 MiB free to write its next checkpoint")
    assert "MiB is free now; its last checkpoint is intact" in line and "start the same command again" in line
    saved = results(run)
    assert saved["status"] == "failed" and saved["reason"].startswith("disk full: ")
    assert RunFolder(run).load_checkpoint()["epoch"] == 1
    subprocess.run(["mount", "-o", "remount,size=16m", str(small_disk)], check=True)
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert results(run)["status"] == "done" and results(run)["resumed"] == 1
