"""From a real (tiny) sweep on disk to the report: the table holds the runs' own numbers."""

import json
import subprocess
import sys

import pytest

from analysis import build_report
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
    assert "heatmap.png" in report and "ap_horizon.png" in report and "curves.png" in report
    assert (tmp_path / "report" / "rollout_best.gif").exists()
