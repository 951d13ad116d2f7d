"""From a real (tiny) sweep on disk to the report: the table holds the runs' own numbers and intervals."""

import json
import subprocess
import sys

import pytest

from analysis import build_report
from analysis.stats import interval_text, metric_interval
from tests.conftest import TINY


@pytest.mark.slow
def test_tiny_cov_std_sweep_to_report(tmp_path):
    sweep = tmp_path / "sweep"
    cmd = [sys.executable, "-m", "jepa.train", "+sweeps=cov_std", *TINY, "training.epochs=2",
           "loss.cov_coeff=1,100", "loss.std_coeff=1,10", f"hydra.sweep.dir={sweep}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = sorted(p.parent for p in sweep.glob("*/results.json"))
    assert len(runs) == 4
    assert all("seed=2025" in r.name and "loss.cov_coeff=" in r.name and "loss.std_coeff=" in r.name for r in runs)

    paths = build_report([sweep], out=tmp_path / "report")
    table = (tmp_path / "report" / "table.csv").read_text()
    for run in runs:
        results = json.loads((run / "results.json").read_text())
        assert results["status"] == "done"
        # Each cell is a single seed, so it shows the run's final mAP itself (3 decimals).
        assert f"{results['final']['val/mAP']:.3f}" in table
    report = paths["report"].read_text()
    assert "heatmap.png" in report and "ap_horizon.png" in report
    assert "None drawn: no finished run has 3 or more evaluations (the most is 2)" in report  # curves need 3 points
    assert (tmp_path / "report" / "rollout_best.gif").exists()


@pytest.mark.slow
def test_tiny_steps_study_with_seeds_to_report_with_intervals_and_claims(tmp_path):
    """Two model.steps values x two seeds through the study launcher, then the report: each cell's interval is
    the t-interval of the runs' own final mAP, and the claims section checks claim 3 on them (paired)."""
    sweep = tmp_path / "steps"
    tiny = [o for o in TINY if not o.startswith("model.steps=")]
    cmd = [sys.executable, "-m", "jepa.train", "+sweeps=[steps,seeds]", *tiny, "model.steps=2,4", "seed=1,2",
           f"hydra.sweep.dir={sweep}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    finals = {}
    for run in sweep.glob("*/results.json"):
        results = json.loads(run.read_text())
        assert results["status"] == "done"
        steps = int(run.parent.name.split("model.steps=")[1].split(",")[0])
        finals.setdefault(steps, {})[results["seed"]] = results["final"]["val/mAP"]
    assert {k: sorted(v) for k, v in finals.items()} == {2: [1, 2], 4: [1, 2]}

    paths = build_report([sweep], out=tmp_path / "report", rows="model.steps", cols="loss.std_coeff")
    table = paths["table.md"].read_text()
    for by_seed in finals.values():
        iv = metric_interval(list(by_seed.values()), "val/mAP")  # on the logit scale: inside [0, 1]
        assert f"{interval_text(iv)} (n=2)" in table and 0 <= iv.low <= iv.high <= 1
    report = paths["report"].read_text()
    claim3 = next(line for line in report.splitlines() if line.startswith("| 3 |"))
    assert any(f"**{v}**" in claim3 for v in ("supported", "contradicted", "inconclusive"))
    assert "paired t over 2 seeds" in report and "| 1 |" in report and "**not applicable**" in report
    for name in ("configs.pdf", "ap_horizon.pdf", "claims.csv", "configs.csv"):  # a 2 x 1 grid: dots, no heat map
        assert (tmp_path / "report" / name).stat().st_size > 0
