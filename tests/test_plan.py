"""The seed planner on a synthetic pilot study with a manifest: power, seeds for 80%, the sweep command."""

import json

import matplotlib
import pytest

matplotlib.use("Agg")

from analysis.cli import main  # noqa: E402
from analysis.report import analyse  # noqa: E402
from analysis.stats import power, seeds_for  # noqa: E402
from tests.test_analysis import PUBLISHED_SETTINGS, curve, make_config, write_run  # noqa: E402

FIXED = ["+sweeps=[steps,seeds]", "experiment=quick", "data.num_train=500", "training.epochs=3"]
# final mAP per steps and seed: 4 and 8 well above 1; 8 - 4 noisy
PILOT = {1: [0.10, 0.12, 0.11], 2: [0.12, 0.13, 0.10], 4: [0.30, 0.25, 0.35], 8: [0.32, 0.31, 0.28]}


def pilot(root):
    manifest = {}
    for steps, finals in PILOT.items():
        for seed, final in zip((1, 1000, 10000), finals, strict=True):
            name = f"model.steps={steps},seed={seed}"
            config = make_config(steps=steps, seed=seed, data={"source": "generated", "num_train": 500})
            run = write_run(root / name, config, curve(final))
            results = json.loads((run / "results.json").read_text()) | {"wall_time_s": 100.0}
            (run / "results.json").write_text(json.dumps(results))
            manifest[name] = {"overrides": [f"model.steps={steps}", f"seed={seed}", *FIXED], "launcher": "local"}
    (root / "manifest.json").write_text(json.dumps({"runs": manifest}))
    return root


def test_plan_gives_power_seeds_and_the_command_that_adds_them(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    pilot(tmp_path / "steps")
    a = analyse(["steps"], rows="model.steps", cols="loss.std_coeff")
    assert a.claims[2].verdict == "supported"  # claim 3: 4 and 8 each beat 1 and 2
    saturation = [item for item in a.plan if item.claim == 4]
    assert len(saturation) == 1
    item = saturation[0]
    d = item.comparison.diff
    # steps 8 - steps 4 per seed: +0.02, +0.06, -0.07: mean +0.0033, s = 0.0666; TOST against ±0.02
    assert d.mean == pytest.approx(0.003333, abs=1e-6) and d.std == pytest.approx(0.066583, abs=1e-6)
    assert item.needed > 3 and item.needed_range[0] < item.needed < item.needed_range[1]
    add = item.needed - 3
    new_seeds = f"range(2,{2 + add})"  # 1, 1000 and 10000 are taken
    assert item.commands == [f"python -m jepa.train {' '.join(FIXED)} model.steps=4,8 seed={new_seeds} "
                             "hydra.sweep.dir=steps"]
    # each run: 3 epochs x 500 sequences at the 15 sequences/s the pilot achieved = 100 s
    assert item.hours == pytest.approx(2 * add * 100 / 3600)


def test_cli_plan_prints_the_plan_and_refuses_a_bad_power(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    pilot(tmp_path / "steps")
    assert main(["steps", "--rows", "model.steps", "--plan", "--power", "0.9", "--seq-per-s", "150"]) == 0
    out = capsys.readouterr().out
    assert "claim 4, steps 8 - steps 4 within the margin" in out and "seeds for 90%" in out
    assert "power now 0.00" in out and "python -m jepa.train +sweeps=[steps,seeds]" in out
    assert not (tmp_path / "steps" / "report").exists()  # --plan writes no report
    assert main(["steps", "--plan", "--power", "1.5"]) == 2
    assert "--power=1.5 is invalid: a probability between 0 and 1" in capsys.readouterr().err
    assert main(["steps", "--margin", "-0.1"]) == 2


def test_runs_of_the_published_protocol_are_also_planned_for_the_published_difference(tmp_path):
    root = tmp_path / "published"
    cells = {(100, 10): [0.60, 0.62, 0.58], (10, 1): [0.55, 0.63, 0.57]}  # per seed +0.05, -0.01, +0.01
    for (cov, std), finals in cells.items():
        for seed, final in enumerate(finals, start=1):
            write_run(root / f"c{cov}s{std}_{seed}", make_config(cov, std, seed, **PUBLISHED_SETTINGS), curve(final))
    a = analyse([root])
    (item,) = [i for i in a.plan if i.claim == 1]
    sd = item.comparison.diff.std
    assert item.comparison.diff.mean == pytest.approx(0.016667, abs=1e-6) and sd == pytest.approx(0.030551, abs=1e-6)
    # the published cells differ by 0.607 - 0.448 = 0.159; one other cell, so the test is one-sided 2.5%
    assert item.published_needed == seeds_for(lambda n: power(0.159, sd, n, 0.025))
    assert item.published_needed < item.needed
    # two keys differ: one command per configuration; without manifest.json the study's own overrides are unknown
    add = f"seed=range(4,{item.needed + 1}) (add the study's own overrides: no manifest.json)"
    assert item.commands == [f"python -m jepa.train loss.cov_coeff=100 loss.std_coeff=10 {add}",
                             f"python -m jepa.train loss.cov_coeff=10 loss.std_coeff=1 {add}"]
