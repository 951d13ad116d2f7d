"""A study's projected GPU-hours (jepa.studies.cost): runs composed as the sweep composes them."""

import json

import pytest

from jepa.config import compose_config
from jepa.data import epoch_sequences
from jepa.studies.cli import main
from jepa.studies.cost import bench_throughput, study_cost, sweep_runs


def test_canonical_epoch_is_the_published_18000_sequences_last_partial_batch_included():
    cfg = compose_config(["experiment=published"])
    assert epoch_sequences(cfg.data) == 18000  # 282 steps at batch 64, the last of 16 sequences


def test_cov_std_grid_at_119_sequences_per_second():
    costs = study_cost(["+sweeps=cov_std", "experiment=published"], seq_per_s=119)
    assert len(costs) == 9
    assert {(c.epochs, c.train_sequences) for c in costs} == {(50, 18000)}
    assert costs[0].hours == pytest.approx(50 * 18000 / 119 / 3600)  # 2.10 h a run
    assert sum(c.hours for c in costs) == pytest.approx(9 * 50 * 18000 / 119 / 3600)  # 18.9 h
    pairs = {(o[-2], o[-1]) for o in (c.overrides for c in costs)}
    assert ("loss.cov_coeff=100", "loss.std_coeff=1") in pairs and len(pairs) == 9


def test_cov_std_with_seeds_is_27_runs_and_the_command_line_wins():
    runs = sweep_runs(["+sweeps=[cov_std,seeds]"])
    assert len(runs) == 27 and len({tuple(r) for r in runs}) == 27
    assert {r[-1] for r in runs} == {"seed=1", "seed=1000", "seed=10000"}
    costs = study_cost(["+sweeps=[cov_std,seeds]", "experiment=quick", "training.epochs=3"], seq_per_s=10)
    assert len(costs) == 27 and sum(c.hours for c in costs) == pytest.approx(27 * 3 * 2000 / 10 / 3600)
    assert len(sweep_runs(["+sweeps=cov_std", "loss.cov_coeff=1,2"])) == 6  # replaces the file's three values


def test_cost_command_reads_the_bench_json_lines(tmp_path, capsys):
    bench = tmp_path / "bench.jsonl"
    rows = [{"impl": "reference", "mode": "reference", "seq_per_s": 100.0, "batch_size": 64, "device": "cuda"},
            {"impl": "ours", "mode": "gpu_fast", "seq_per_s": 600.0, "batch_size": 64, "device": "cuda",
             "model": {"henc": 32, "hpre": 32, "dstc": 16, "steps": 4}}]
    bench.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert bench_throughput(bench)[0] == 600.0 and bench_throughput(bench, "reference")[0] == 100.0
    assert main(["cost", "+sweeps=steps", "experiment=published", "--bench", str(bench), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["seq_per_s"] == 600.0 and len(out["runs"]) == 4
    assert out["total_hours"] == pytest.approx(4 * 50 * 18000 / 600 / 3600)
    assert main(["cost", "+sweeps=steps", "experiment=published", "--bench", str(bench)]) == 0
    text = capsys.readouterr().out
    assert "total: " in text and "differ from the measured run" in text  # steps 1, 2, 8 were not measured


@pytest.mark.parametrize("args, says", [
    (["--bench", "BENCH", "--mode", "exact"], "--mode='exact' is invalid: a mode measured in BENCH: gpu_fast"),
    (["--bench", "MISSING"], "--bench='MISSING' is invalid: a file of JSON lines"),
    (["--bench", "EMPTY"], "it holds no bench run"),
    (["--seq-per-s", "0"], "--seq-per-s=0.0 is invalid: a throughput > 0"),
    ([], "give the throughput"),
    (["model.nokey=1", "--seq-per-s", "1"], "model.nokey is not a key of the config"),
    (["+sweeps=nope", "--seq-per-s", "1"], "sweeps='nope' is invalid: the options of sweeps are "),
])
def test_cost_command_refuses_bad_input_with_one_line_and_exit_2(tmp_path, capsys, args, says):
    paths = {"BENCH": tmp_path / "bench.jsonl", "MISSING": tmp_path / "missing.jsonl", "EMPTY": tmp_path / "e.jsonl"}
    paths["BENCH"].write_text(json.dumps({"mode": "gpu_fast", "seq_per_s": 600.0}) + "\n")
    paths["EMPTY"].write_text("not json\n")
    args = [str(paths.get(a, a)) for a in args]
    study = [] if any(a.startswith("+sweeps") for a in args) else ["+sweeps=steps"]
    assert main(["cost", *study, *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("configuration error: ") and "Traceback" not in err
    for name, path in paths.items():
        says = says.replace(name, str(path))
    assert says in err
