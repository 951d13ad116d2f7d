"""Optuna search (jepa.studies.search): a bad space is refused up front; parallel workers share one journal; pruning;
a killed worker's trial is retried in its run folder; a relaunch continues the count; the same on SLURM."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import optuna
import pytest
from omegaconf import OmegaConf
from optuna.trial import TrialState

from jepa.config import ConfigError
from jepa.config.resources import sweeps_dir
from jepa.studies.search.__main__ import main
from jepa.studies.search.launch import prepare_study
from jepa.studies.search.spec import load_sweep, override
from jepa.studies.search.summary import write_summary
from jepa.studies.search.worker import HEARTBEATS, PruningTracker, is_stale, open_study, retry_stale_trials, run_worker
from jepa.tracking import NullTracker
from tests.conftest import TINY

LOW = {"loss.cov_coeff": 1.0, "loss.std_coeff": 0.1}  # small VC loss
HIGH = {"loss.cov_coeff": 1000.0, "loss.std_coeff": 100.0}  # a VC loss orders of magnitude larger


def sweep_file(tmp_path, space=None, **changes):
    """A copy of sweeps/optuna_vc.yaml with top-level keys (and space entries) changed."""
    sweep = OmegaConf.load(sweeps_dir() / "optuna_vc.yaml")
    sweep.merge_with(changes)
    for name, param in (space or {}).items():
        sweep.space[name] = param
    path = tmp_path / "sweep.yaml"
    OmegaConf.save(sweep, path)
    return str(path)


def tiny_spec(tmp_path, *settings, sweep="optuna_vc", **shortcuts):
    return load_sweep(sweep, TINY, settings, study_dir=str(tmp_path / "study"), **shortcuts)


def load(study_dir):
    spec = OmegaConf.load(study_dir / "search.yaml")
    return open_study(study_dir, spec)


def results(study_dir, trial):
    return json.loads((study_dir / trial.user_attrs["run_dir"] / "results.json").read_text())


# ---------------------------------------------------------------- refused before any worker starts
@pytest.mark.parametrize("space, changes, key", [
    ({"loss.cov_coeff": {"type": "float", "low": 0.0, "high": 10.0, "log": True}}, {}, "space.loss.cov_coeff"),
    ({"loss.cov_coeff": {"type": "float", "low": 10.0, "high": 1.0}}, {}, "space.loss.cov_coeff"),
    ({"loss.cov_coeff": {"type": "float", "low": 1.0, "high": 10.0, "scale": "log"}}, {}, "space.loss.cov_coeff.scale"),
    ({"loss.nope": {"type": "float", "low": 1.0, "high": 2.0}}, {"search": ["loss.nope"]}, "loss.nope"),
    ({"model.steps": {"type": "int", "low": 1, "high": 9}}, {"search": ["model.steps"]}, "model.steps"),
    ({"loss.std_coeff": {"type": "float", "low": -1.0, "high": 1.0}}, {}, "loss.std_coeff"),
    (None, {"search": ["optim.momentum"]}, "search"),
    (None, {"pruner": {"name": "percentile"}}, "pruner.name"),
    (None, {"pruner": {"name": "median", "patience": 3}}, "pruner.patience"),
    (None, {"sampler": {"name": "tpe", "n_startup": 3}}, "sampler.n_startup"),
    (None, {"n_trials": 0}, "n_trials"),
    (None, {"launcher": "ray"}, "launcher"),
    (None, {"color": "blue"}, "color"),
])
def test_bad_sweep_is_refused_naming_the_key(tmp_path, space, changes, key):
    with pytest.raises(ConfigError) as err:
        tiny_spec(tmp_path, sweep=sweep_file(tmp_path, space, **changes))
    assert err.value.key == key


@pytest.mark.parametrize("setting, key", [
    ("color=blue", "color"), ("sampler.name=grid", "sampler.name"),
    ("sampler=foo", "sampler"), ("space=5", "space"), ("search=foo", "search"), ("name=null", "name"),
    ("space.loss.cov_coeff.low=-1", "space.loss"),  # dots: would silently add an unsearched junk entry
    ("sampler.seed=abc", "sampler.seed"), ("pruner.n_warmup_steps=-3", "pruner"),  # values optuna refuses
    ("metric=nosuch", "metric"), ("n_trials=true", "n_trials"),
])
def test_a_bad_set_value_is_refused_naming_the_key(tmp_path, setting, key):
    """--set KEY=VALUE is checked like the file's own keys: an unknown key is refused, not written to the study."""
    with pytest.raises(ConfigError) as err:
        tiny_spec(tmp_path, setting)
    assert err.value.key == key


@pytest.mark.parametrize("content, says", [("space: [", "is not valid YAML"), ("space: {}\n", "direction='<missing>'")])
def test_a_broken_sweep_file_is_refused_naming_what_is_wrong(tmp_path, content, says):
    (tmp_path / "broken.yaml").write_text(content)
    with pytest.raises(ConfigError, match=re.escape(says)):
        tiny_spec(tmp_path, sweep=str(tmp_path / "broken.yaml"))


@pytest.mark.parametrize("search_yaml, journal", [("good", None), ("space: [", "good"), ("good", "garbage\n")])
def test_report_of_a_damaged_study_folder_is_refused_and_changes_nothing(tmp_path, capsys, search_yaml, journal):
    study = tmp_path / "study"
    study.mkdir()
    spec = tiny_spec(tmp_path)
    if search_yaml == "good":
        OmegaConf.save(spec, study / "search.yaml")
    else:
        (study / "search.yaml").write_text(search_yaml)
    if journal == "good":
        prepare_study(spec)  # a real journal (and search.yaml, damaged again below)
        (study / "search.yaml").write_text(search_yaml)
    elif journal is not None:
        (study / "journal.log").write_text(journal)
    before = {p: p.read_bytes() for p in study.rglob("*") if p.is_file()}
    assert main(["optuna_vc", "--study-dir", str(study), "--report"]) == 2
    assert f"--study-dir='{study}' is invalid: a study folder" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in study.rglob("*") if p.is_file()} == before


@pytest.mark.parametrize("setting, says", [("slurm.cluster=bogus", "doesn't know any executor named bogus"),
                                           ("slurm.bogus_param=1", "bogus_param")])
def test_bad_slurm_settings_are_refused_before_the_study_folder_is_written(tmp_path, capsys, setting, says):
    study = tmp_path / "study"
    assert main(["optuna_vc", *TINY, "--launcher", "slurm", "--set", setting, "--study-dir", str(study)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("configuration error: slurm=") and says in err and not study.exists()


@pytest.mark.parametrize("name, says", [
    ("submitit_slurm", "hydra-submitit-launcher's own launcher, without this project's checks"),
    ("submitit_local", "use hydra/launcher=local_processes"),
    ("slurmm", "did you mean slurm? the launchers are local, local_processes, slurm, basic"),
])
def test_a_launcher_name_a_sweep_refuses_is_refused_by_the_search(tmp_path, capsys, name, says):
    """The names a sweep refuses (hydra-submitit-launcher's, a misspelt one) are refused by the search too, in
    one line before the study folder is written, instead of running its workers on this machine."""
    study = tmp_path / "study"
    assert main(["optuna_vc", *TINY, f"hydra/launcher={name}", "--study-dir", str(study)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"configuration error: hydra/launcher='{name}' is invalid: ")
    assert says in err[0] and not study.exists()


@pytest.mark.parametrize("flag, value", [("--search", ""), ("--search", "loss.cov_coeff,"), ("--study-dir", "")])
def test_an_empty_command_line_value_is_refused_not_taken_for_the_default(tmp_path, capsys, monkeypatch, flag,
                                                                          value):
    monkeypatch.chdir(tmp_path)  # an empty --study-dir would otherwise be this folder
    study = ["--study-dir", str(tmp_path / "s")] if flag == "--search" else []
    assert main(["optuna_vc", *TINY, flag, value, *study]) == 2
    assert capsys.readouterr().err.startswith("configuration error: ") and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("where", ["a_file", "a_file/study"])
def test_a_study_dir_that_cannot_be_a_folder_is_refused(tmp_path, capsys, where):
    (tmp_path / "a_file").write_text("")
    assert main(["optuna_vc", *TINY, "--study-dir", str(tmp_path / where)]) == 2
    assert "study_dir=" in capsys.readouterr().err and (tmp_path / "a_file").read_text() == ""


def test_cli_refuses_a_bad_space_before_creating_the_study(tmp_path, capsys):
    bad = sweep_file(tmp_path, {"loss.cov_coeff": {"type": "float", "low": 0.0, "high": 1.0, "log": True}})
    assert main([bad, *TINY, "--study-dir", str(tmp_path / "study")]) == 2
    assert "space.loss.cov_coeff" in capsys.readouterr().err
    assert not (tmp_path / "study").exists()


def test_searched_parameter_may_not_be_fixed_too(tmp_path):
    with pytest.raises(ConfigError, match="searched"):
        load_sweep("optuna_vc", [*TINY, "loss.cov_coeff=3"], study_dir=str(tmp_path))


def test_another_pruner_on_the_command_line_drops_the_files_arguments(tmp_path):
    spec = tiny_spec(tmp_path, "pruner.name=hyperband", "pruner.reduction_factor=2")
    assert OmegaConf.to_container(spec.pruner) == {"name": "hyperband", "reduction_factor": 2, "max_resource": 2}
    assert tiny_spec(tmp_path, "pruner.n_warmup_steps=0").pruner.n_startup_trials == 3  # same pruner: merged


def test_overrides_compose_to_the_values(tiny_cfg):
    cfg = tiny_cfg(override("optim.lr", 1e-05), override("model.steps", 3), override("training.progress", True),
                   override("model.encoder_strides", [2, 2, 2]))
    assert cfg.optim.lr == 1e-05 and cfg.model.steps == 3 and cfg.training.progress is True
    assert list(cfg.model.encoder_strides) == [2, 2, 2]


def test_relaunch_with_another_space_or_overrides_is_refused(tmp_path):
    prepare_study(tiny_spec(tmp_path))
    prepare_study(tiny_spec(tmp_path, n_trials=50, workers=4))  # budget and workers may change
    with pytest.raises(ConfigError, match="--study-dir"):
        prepare_study(tiny_spec(tmp_path, search=["loss.cov_coeff", "optim.lr"]))
    with pytest.raises(ConfigError, match="--study-dir"):
        prepare_study(load_sweep("optuna_vc", [*TINY, "seed=1"], study_dir=str(tmp_path / "study")))


# ---------------------------------------------------------------- pruning and killed workers, without training
class FakeTrial:
    def __init__(self, prune: bool):
        self.prune, self.reported = prune, {}

    def report(self, value, step):
        self.reported[step] = value

    def should_prune(self):
        return self.prune


def test_pruning_tracker_reports_each_evaluated_epoch_and_raises_when_told():
    keep, inner = FakeTrial(prune=False), NullTracker()
    tracker = PruningTracker(keep, "val/mAP", inner)
    tracker.log_epoch({"epoch": 1, "train/loss": 3.0})  # not evaluated: nothing to report, no pruning
    tracker.log_epoch({"epoch": 2, "val/mAP": 0.4})
    assert keep.reported == {2: 0.4}
    with pytest.raises(optuna.TrialPruned, match="val/mAP=0.3000 at epoch 3"):
        PruningTracker(FakeTrial(prune=True), "val/mAP", inner).log_epoch({"epoch": 3, "val/mAP": 0.3})


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_trial_of_a_dead_worker_is_failed_once_and_queued_again(tmp_path):
    spec = tiny_spec(tmp_path)
    study_dir = tmp_path / "study"
    prepare_study(spec)
    study, other = open_study(study_dir, spec), open_study(study_dir, spec, index=1)
    alive, dead = study.ask(), study.ask()
    for trial, pid in ((alive, os.getpid()), (dead, dead_pid())):
        trial.suggest_float("loss.cov_coeff", 1.0, 1000.0, log=True)
        trial.set_user_attr("run_dir", f"trial_{trial.number:04d}")
        trial.set_user_attr("worker", {"host": os.uname().nodename, "pid": pid, "slurm_job": None})
    assert retry_stale_trials(study, study_dir, grace_s=60) == [dead.number]
    assert retry_stale_trials(other, study_dir, grace_s=60) == []  # already failed: not retried twice
    states = [t.state for t in study.get_trials()]
    assert states == [TrialState.RUNNING, TrialState.FAIL, TrialState.WAITING]
    retry = study.get_trials()[2]
    assert retry.user_attrs == {"retry_of": dead.number, "run_dir": f"trial_{dead.number:04d}"}
    asked = study.ask()  # the next trial asked for is the retry, with the dead trial's value
    assert asked.number == 2 and asked.suggest_float("loss.cov_coeff", 1.0, 1000.0, log=True) == dead.params[
        "loss.cov_coeff"]


def test_silent_trial_on_another_host_is_stale_after_the_grace_period(tmp_path):
    spec = tiny_spec(tmp_path)
    study_dir = tmp_path / "study"
    prepare_study(spec)
    study = open_study(study_dir, spec)
    trial = study.ask()
    trial.set_user_attr("worker", {"host": "elsewhere", "pid": 1, "slurm_job": "7_1"})
    frozen = study.get_trials()[0]
    beat = study_dir / HEARTBEATS / "0"
    beat.parent.mkdir()
    beat.touch()
    now = time.time()
    assert not is_stale(frozen, study_dir / HEARTBEATS, grace_s=30, now=now + 10)
    assert is_stale(frozen, study_dir / HEARTBEATS, grace_s=30, now=now + 31)


def test_summary_of_a_study_without_a_complete_trial(tmp_path):
    spec = tiny_spec(tmp_path)
    study = prepare_study(spec)
    trial = study.ask()
    trial.suggest_float("loss.cov_coeff", 1.0, 1000.0, log=True)
    trial.report(0.1, 1)
    study.tell(trial, state=TrialState.PRUNED)
    best = write_summary(study, tmp_path / "study", spec)
    out = tmp_path / "study" / "optuna"
    assert best["best"] is None and best["counts"]["PRUNED"] == 1
    assert "trial_0000" not in (out / "trials.csv").read_text()  # no run folder recorded by hand here
    assert "No trial is complete yet" in (out / "summary.md").read_text()
    assert not (out / "importances.png").exists()


def test_relaunch_of_a_finished_study_runs_nothing(tmp_path):
    spec = tiny_spec(tmp_path, n_trials=1)
    study = prepare_study(spec)
    study.enqueue_trial(LOW)
    trial = study.ask()
    study.tell(trial, 0.5)
    assert run_worker(tmp_path / "study") == 0


# ---------------------------------------------------------------- end to end
def cli(study_dir, *args):
    return main(["optuna_vc", *TINY, "--study-dir", str(study_dir), *args])


@pytest.mark.slow
def test_two_local_workers_share_the_study_and_prune(tmp_path):
    """Metric train/vc (minimised) makes pruning certain: LOW trials finish first, HIGH ones are far worse."""
    study_dir = tmp_path / "study"
    settings = ["--set", "metric=train/vc", "--set", "direction=minimize",
                "--set", "pruner.n_startup_trials=1", "--set", "pruner.n_warmup_steps=0"]
    spec = load_sweep("optuna_vc", TINY, [s for s in settings if s != "--set"], study_dir=str(study_dir),
                      n_trials=4)
    study = prepare_study(spec)
    for params in (LOW, LOW, HIGH, HIGH):  # each worker runs one LOW, then one HIGH
        study.enqueue_trial(params)
    start = time.monotonic()
    assert cli(study_dir, "--workers", "2", "--trials", "4", *settings) == 0
    print(f"4 trials, 2 workers: {time.monotonic() - start:.0f} s")
    done = load(study_dir).get_trials()
    assert [t.state for t in done] == [TrialState.COMPLETE] * 2 + [TrialState.PRUNED] * 2
    workers = {t.user_attrs["worker"]["pid"] for t in done}
    assert len(workers) == 2
    for trial in done:
        run = results(study_dir, trial)
        assert (study_dir / trial.user_attrs["run_dir"] / "config.yaml").exists()
        if trial.state == TrialState.PRUNED:
            assert run["status"] == "pruned" and run["reason"].startswith("Pruned: train/vc=")
            assert run["epochs_completed"] == 1 and list(trial.intermediate_values) == [1]
        else:
            assert run["status"] == "done" and trial.value == run["final"]["train/vc"]
    best = json.loads((study_dir / "optuna" / "best.json").read_text())
    assert best["best"]["params"] == LOW and best["counts"]["PRUNED"] == 2
    for name in ("trials.csv", "summary.md", "history.png", "intermediate.png"):
        assert (study_dir / "optuna" / name).exists(), name


@pytest.mark.slow
def test_killed_worker_trial_is_retried_in_its_folder_and_relaunch_continues_the_count(tmp_path):
    study_dir = tmp_path / "study"
    overrides = [*TINY, "training.epochs=3", "training.threads=1"]  # one worker would take both busy cores
    spec = load_sweep("optuna_vc", overrides, study_dir=str(study_dir), n_trials=1)
    prepare_study(spec)
    worker = subprocess.Popen([sys.executable, "-m", "jepa.studies.search.worker", str(study_dir), "0", "1"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    metrics = study_dir / "trial_0000" / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while not (metrics.exists() and metrics.read_text().strip()):
        assert worker.poll() is None and time.monotonic() < deadline, "no epoch before the worker ended"
        time.sleep(0.1)
    worker.send_signal(signal.SIGKILL)  # after epoch 1 of 3
    worker.wait()

    start = time.monotonic()
    assert main(["optuna_vc", *overrides, "--study-dir", str(study_dir), "--workers", "1", "--trials", "2"]) == 0
    print(f"retry + 1 trial, 1 worker: {time.monotonic() - start:.0f} s")
    killed, retry, new = load(study_dir).get_trials()
    assert (killed.state, retry.state, new.state) == (TrialState.FAIL, TrialState.COMPLETE, TrialState.COMPLETE)
    assert retry.params == killed.params and retry.user_attrs["retry_of"] == 0
    assert retry.user_attrs["run_dir"] == "trial_0000" and new.user_attrs["run_dir"] == "trial_0002"
    run = results(study_dir, retry)
    assert run["status"] == "done" and run["resumed"] == 1 and run["epochs_completed"] == 3
    assert sorted(retry.intermediate_values) == [1, 2, 3]  # epoch 1 reported from the killed run's folder
    assert sorted(p.name for p in study_dir.glob("trial_*")) == ["trial_0000", "trial_0002"]


@pytest.mark.slow
@pytest.mark.slurm
def test_slurm_array_workers_share_the_study(slurm_cluster, tmp_path):
    study_dir = tmp_path / "study"
    start = time.monotonic()
    # the sweeps' launcher settings and cluster profile (conf/cluster/localtest.yaml: partition debug, 1 CPU)
    code = cli(study_dir, "hydra/launcher=slurm", "+cluster=localtest", "hydra.launcher.timeout_min=10",
               "--workers", "2", "--trials", "3", "--set", "pruner.n_startup_trials=1",
               "--set", "pruner.n_warmup_steps=0")
    assert code == 0, slurm_cluster.log_tail()
    print(f"3 trials, 2 SLURM tasks: {time.monotonic() - start:.0f} s")
    done = load(study_dir).get_trials()
    assert len(done) == 3 and all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in done)
    jobs = {t.user_attrs["worker"]["slurm_job"] for t in done}
    assert len({job.split("_")[0] for job in jobs}) == 1 and all("_" in job for job in jobs)  # one array
    assert all(t.intermediate_values for t in done)
    assert (study_dir / "optuna" / "best.json").exists()


@pytest.mark.slow
@pytest.mark.slurm
def test_slurm_task_cancelled_mid_trial_is_retried_by_the_other(slurm_cluster, tmp_path):
    study_dir = tmp_path / "study"
    launcher = subprocess.Popen(
        # 3 epochs of about 12 s each: the task must still be training when it is cancelled after epoch 1
        [sys.executable, "-m", "jepa.studies.search", "optuna_vc", *TINY, "training.epochs=3", "data.num_train=256",
         "--study-dir", str(study_dir),
         "--launcher", "slurm", "--workers", "2", "--trials", "3", "--set", "pruner.name=none",
         "--set", f"slurm.slurm_partition={slurm_cluster.partition}", "--set", "slurm.cpus_per_task=1",
         "--set", "slurm.mem_gb=null", "--set", "slurm.timeout_min=10"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    while not (started := [p for p in study_dir.glob("trial_*/metrics.jsonl") if p.read_text().strip()]):
        assert launcher.poll() is None and time.monotonic() < deadline, launcher.stdout.read()
        time.sleep(0.2)
    victim = int(started[0].parent.name.split("_")[1])
    job = load(study_dir).get_trials()[victim].user_attrs["worker"]["slurm_job"]
    slurm_cluster.run("scancel", "--signal=KILL", job)  # after epoch 1 of 3; SIGTERM would give it KillWait
    output = launcher.communicate(timeout=240)[0]
    assert launcher.returncode == 1 and f"SLURM task {job} failed" in output, output  # the cancelled task
    done = load(study_dir).get_trials()
    assert done[victim].state == TrialState.FAIL
    retry = next((t for t in done if t.user_attrs.get("retry_of") == victim), None)
    assert retry is not None, output
    assert retry.state == TrialState.COMPLETE and retry.user_attrs["worker"]["slurm_job"] != job
    assert results(study_dir, retry)["resumed"] == 1
    assert sum(t.state == TrialState.COMPLETE for t in done) == 3
