"""Each rule the tools share has one home, and every tool that applies it agrees with it.

- what identifies a configuration (jepa.config.identity): run-folder names, wandb names, analysis grouping;
- how metrics.jsonl is read (jepa.runs.read_metrics): the run folder, wandb, the analysis;
- where run folders are (jepa.runs.find_run_folders): the status tool, the wandb replay, the analysis;
- what a run's status means (jepa.runs.status): the status tool, wandb, the analysis.
"""

import json

import pandas as pd
import pytest
import yaml
from omegaconf import OmegaConf

from analysis.group import is_ignored
from analysis.load import load_runs
from jepa.config.identity import identifies, run_name
from jepa.runs import RunFolder, find_run_folders, read_metrics
from jepa.runs.status import STATUSES, exit_code
from jepa.studies.status import run_state, sweep_states
from jepa.tracking import replay
from jepa.tracking.wandb_run import read_metrics as tracker_metrics
from jepa.tracking.wandb_run import run_name as wandb_name

OVERRIDES = ["+sweeps=[cov_std,seeds]", "experiment=quick", "loss.cov_coeff=10", "seed=1", "study=cov_std",
             "training.device=cpu", "training.threads=1", "training.checkpoint_minutes=0.5", "data.root=/scratch",
             "data.digits_path=/x/mnist.npz", "logging.mode=disabled", "hydra/launcher=slurm", "+cluster=mysite",
             "training.cpu_allocator=caching", "model.steps=2", "optim.lr=0.0005"]


def test_identity_one_rule_for_folder_names_wandb_names_and_the_analysis(tmp_path):
    keys = [o.split("=", 1)[0].lstrip("+") for o in OVERRIDES]
    identifying = [k for k in keys if identifies(k)]
    assert identifying == ["experiment", "loss.cov_coeff", "model.steps", "optim.lr"]

    assert run_name(OVERRIDES, 1) == "experiment=quick,loss.cov_coeff=10,model.steps=2,optim.lr=0.0005,seed=1"

    (tmp_path / ".hydra").mkdir()
    (tmp_path / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(OVERRIDES))
    config = {"model": {"steps": 2}, "loss": {"cov_coeff": 10.0, "std_coeff": 10.0}, "optim": {"lr": 0.0005},
              "data": {"batch_size": 16}, "seed": 1}
    assert wandb_name(tmp_path, config) == "steps=2,cov=10,std=10,lr=0.0005,bs=16,experiment=quick"

    flat_keys = ["seed", "study", "training.device", "training.threads", "training.checkpoint_minutes",
                 "data.root", "data.digits_path", "logging.mode", "training.cpu_allocator", "loss.cov_coeff",
                 "model.steps", "optim.lr", "training.epochs"]
    assert [k for k in flat_keys if not is_ignored(k)] == ["loss.cov_coeff", "model.steps", "optim.lr",
                                                           "training.epochs"]


def test_identity_names_stay_inside_the_study_folder():
    name = run_name(["data.digits=../../../escaped", "loss.cov_coeff=1", "logging.project=x/../../up"], 3)
    assert "/" not in name and name == "data.digits=.._.._.._escaped,loss.cov_coeff=1,seed=3"


def write_run(folder, status: str, records: list, extra_lines: str = "") -> None:
    RunFolder(folder).write_config(OmegaConf.create({"seed": 1, "loss": {"cov_coeff": 1.0}}))
    text = "".join(json.dumps(r) + "\n" for r in records) + extra_lines
    (folder / "metrics.jsonl").write_text(text)
    final = records[-1] if records else None
    (folder / "results.json").write_text(json.dumps({"status": status, "reason": f"{status} here", "epochs": 2,
                                                     "epochs_completed": len(records), "final": final}))


def test_one_metrics_reader_for_the_run_folder_wandb_and_the_analysis(tmp_path):
    records = [{"epoch": 1, "val/mAP": 0.1}, {"epoch": 2, "val/mAP": 0.2}, {"epoch": 2, "val/mAP": 0.25}]
    write_run(tmp_path / "run", "done", records, extra_lines='{"epoch": 3, "val/m\n[1, 2]\n')
    metrics = read_metrics(tmp_path / "run")
    assert metrics.records == [{"epoch": 1, "val/mAP": 0.1}, {"epoch": 2, "val/mAP": 0.25}]  # the redo wins
    assert metrics.bad_lines == 2  # a torn line and a line that is not a record
    assert RunFolder(tmp_path / "run").read_metrics() == metrics.records
    assert tracker_metrics(tmp_path / "run") == metrics.records
    epochs = load_runs([tmp_path]).epochs
    assert epochs["val/mAP"].tolist() == [0.1, 0.25]


def test_one_finder_for_the_status_tool_the_replay_and_the_analysis(tmp_path):
    study = tmp_path / "study"
    for name in ("a=1,seed=1", "a=10,seed=1", "a=2,seed=1"):
        write_run(study / name, "done", [{"epoch": 1}])
    (study / "a=1,seed=1" / "checkpoints").mkdir()
    write_run(study / "a=1,seed=1" / "wandb", "done", [{"epoch": 1}])  # inside a run folder: not a run
    write_run(study / "optuna", "done", [{"epoch": 1}])  # a study's optuna/ folder: not a run
    expected = [study / "a=1,seed=1", study / "a=2,seed=1", study / "a=10,seed=1"]  # natural order
    assert find_run_folders([study]) == expected
    assert [study / s.name for s in sweep_states(study)] == sorted(expected)
    assert replay.find_run_folders([study]) == expected
    assert sorted(load_runs([study]).runs["path"]) == sorted(str(p) for p in expected)


@pytest.mark.parametrize("status", STATUSES)
def test_one_status_vocabulary_for_the_status_tool_wandb_and_the_analysis(tmp_path, status):
    write_run(tmp_path / "run", status, [{"epoch": 1, "val/mAP": 0.1}])
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    shown = run_state("run", results, {}, activity=None).state
    analysed = load_runs([tmp_path]).runs["status"].iloc[0]
    assert shown == analysed == status
    assert exit_code(status) == (0 if status in ("done", "pruned") else 1)


def test_analysis_and_status_agree_on_a_study_mixing_every_status(tmp_path):
    for status in STATUSES:
        write_run(tmp_path / f"s={status}", status, [{"epoch": 1}])
    counts = pd.Series([s.state for s in sweep_states(tmp_path)]).value_counts().to_dict()
    assert counts == load_runs([tmp_path]).runs["status"].value_counts().to_dict()
