"""The worked notebook in examples/ runs, as a script, on a real tiny study and writes its figure."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import TINY

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_explore_study_notebook_runs_on_a_tiny_study(tmp_path):
    study = tmp_path / "tiny_study"
    train = subprocess.run([sys.executable, "-m", "jepa.train", "-m", *TINY, "training.epochs=1",
                            "loss.cov_coeff=1,100", "seed=1", f"hydra.sweep.dir={study}"],
                           capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert train.returncode == 0, train.stderr[-3000:]
    figure = tmp_path / "out" / "figure.png"
    figure.parent.mkdir()
    # From an empty folder, as a user runs it: nothing may depend on the working directory.
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "explore_study.py"), str(study), str(figure)],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path / "out")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2 runs in" in proc.stdout and "varying keys: ['loss.cov_coeff']" in proc.stdout
    for results in study.glob("*/results.json"):  # the pivot shows each run's final mAP
        run = json.loads(results.read_text())
        cov = "1" if "loss.cov_coeff=1," in results.parent.name else "100"
        row = next(line for line in proc.stdout.splitlines() if line.startswith(f"loss.cov_coeff={cov} "))
        assert f"{run['final']['val/mAP']:.3f}" in row
    pixels = np.asarray(Image.open(figure).convert("L"))
    assert pixels.shape == (480, 720) and pixels.std() > 10  # drawn on, not a blank canvas
