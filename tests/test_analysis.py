"""The offline analysis on synthetic sweep folders with known numbers (docs/run_folder.md is the format)."""

import itertools
import json
import math
import os
import re
import time

import matplotlib
import numpy as np
import pandas as pd
import pytest
import yaml

matplotlib.use("Agg")

from analysis import build_report, load_runs  # noqa: E402
from analysis.cli import main  # noqa: E402
from analysis.group import add_configs, select_records, summarise_configs  # noqa: E402
from analysis.plots import plot_ap_horizon, plot_curves, plot_heatmap  # noqa: E402
from analysis.published import protocol_mismatches  # noqa: E402
from analysis.report import ReportInputError  # noqa: E402
from analysis.tables import pivot  # noqa: E402

# Final val/mAP per (cov_coeff, std_coeff) and seed; hand-computed mean, sample std (ddof=1), n below.
FINAL = {(1, 1): [0.20, 0.30, 0.40], (1, 10): [0.45, 0.55], (100, 1): [0.52], (100, 10): [0.60, 0.61, 0.65]}
EXPECTED = {(1, 1): (0.30, 0.10, 3), (1, 10): (0.50, math.sqrt(0.005), 2), (100, 1): (0.52, math.nan, 1),
            (100, 10): (0.62, math.sqrt(0.0007), 3)}
EPOCHS = 3
COPY_LAST = [0.15 - 0.01 * k for k in range(7)]
CHANCE = 0.05


def make_config(cov=100, std=10, seed=1, steps=4, **sections) -> dict:
    config = {"seed": seed, "loss": {"cov_coeff": cov, "std_coeff": std}, "model": {"steps": steps, "dstc": 16},
              "optim": {"lr": 1e-3}, "data": {"batch_size": 64, "root": "/data"},
              "training": {"epochs": EPOCHS, "device": "cpu"}, "logging": {"group": "sweep"}}
    for section, values in sections.items():
        config.setdefault(section, {}).update(values)
    return config


def record(epoch: int, mean_ap: float, cov: float = 1.0) -> dict:
    """A metrics.jsonl line: AP_k = mAP + 0.1 * (3 - k), so their mean over k = 0..6 is mAP."""
    rec = {"epoch": epoch, "global_step": 10 * epoch, "val/mAP": mean_ap,
           "train/loss": 1.0 / epoch + cov / 1000, "train/vc": 0.5 / epoch, "train/pred": 0.25 / epoch}
    rec |= {f"val/AP_{k}": mean_ap + 0.1 * (3 - k) for k in range(7)}
    rec |= {f"val/AP_full_{k}": mean_ap - 0.01 * k for k in range(8)}
    rec |= {f"val/copy_last/AP_{k}": COPY_LAST[k] for k in range(7)} | {f"val/chance/AP_{k}": CHANCE for k in range(7)}
    return rec


def curve(final: float, cov: float = 1.0) -> list[dict]:
    """EPOCHS records rising to `final`."""
    return [record(e, final - 0.1 * (EPOCHS - e), cov) for e in range(1, EPOCHS + 1)]


def write_run(path, config, records=None, status="done", reason=None, results=True, gif=False):
    path.mkdir(parents=True)
    (path / "config.yaml").write_text(yaml.safe_dump(config))
    if records is not None:
        (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    if results:
        best = max(records, key=lambda r: r.get("val/mAP", 0)) if records else None
        (path / "results.json").write_text(json.dumps({
            "status": status, "reason": reason, "seed": config["seed"], "epochs": EPOCHS,
            "epochs_completed": len(records or []), "final": records[-1] if records else None, "best": best}))
    if gif:
        (path / "rollout.gif").write_bytes(b"GIF89a" + path.name.encode())
    return path


def write_grid(root, values=FINAL, start=0):
    """One finished run per (cov, std, seed) of `values`; returns their paths by key."""
    paths = {}
    i = start
    for (cov, std), finals in values.items():
        for seed, final in enumerate(finals, start=1):
            paths[cov, std, seed] = write_run(root / f"{i}", make_config(cov, std, seed), curve(final, cov),
                                              gif=True)
            i += 1
    return paths


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory):
    """The grid plus one run of each kind that is not in the results, and the clutter a real sweep has.
    Shared by the tests of this module: they read it and write reports only."""
    root = tmp_path_factory.mktemp("sweeps") / "vc_grid"
    write_grid(root)
    write_run(root / "failed", make_config(1, 1, 9), curve(0.3)[:2], status="failed",
              reason="non-finite loss at epoch 3 step 120: train/pred=nan")
    stale = write_run(root / "stale", make_config(1, 1, 8), curve(0.3)[:1], status="running")
    old = time.time() - 5 * 3600
    for name in ("config.yaml", "metrics.jsonl", "results.json"):
        os.utime(stale / name, (old, old))
    write_run(root / "live", make_config(1, 1, 7), curve(0.3)[:2], status="running")
    write_run(root / "partial", make_config(1, 1, 6), curve(0.3)[:1], results=False)
    broken = write_run(root / "broken", make_config(1, 1, 5), curve(0.3), results=False)
    (broken / "results.json").write_text('{"status": "do')
    # Run folders' own sub-folders and an Optuna study: none of them is a run.
    for sub in ("0/.hydra", "0/checkpoints", "0/wandb/run-1"):
        write_run(root / sub, make_config(1, 1, 99), curve(0.99))
    (root / "optuna").mkdir()
    (root / "optuna" / "trials.csv").write_text("number,value\n0,0.5\n")
    (root / "optuna" / "summary.md").write_text("# Optuna study `vc`\n\nBest: trial 0\n\n![history.png](history.png)\n")
    (root / "optuna" / "history.png").write_bytes(b"PNG history")
    write_run(root / "pruned", make_config(1, 1, 4), curve(0.3)[:1], status="pruned",
              reason="Pruned: val/mAP=0.1000 at epoch 1")
    return root


@pytest.fixture(scope="module")
def grid_report(sweep_dir):
    return build_report([sweep_dir])


def parse_cell(text: str):
    """'**0.620 ± 0.026** [0.554, 0.686] (n=3)' -> (0.62, 0.026, 3, bold True, dagger False, '[0.554, 0.686]');
    '0.520 ± – [–] (n=1)' -> (0.52, nan, 1, False, False, '[–]')."""
    match = re.fullmatch(r"(\*\*)?([\d.]+) ± ([\d.]+|–)(\*\*)?(†)? (\[[^\]]*\]) \(n=(\d+)\)", text.strip())
    assert match, text
    std = math.nan if match.group(3) == "–" else float(match.group(3))
    return (float(match.group(2)), std, int(match.group(7)), bool(match.group(1)), bool(match.group(5)),
            match.group(6))


def assert_cell(actual, expected, digits=3):
    mean, std, n = actual[:3]
    assert mean == pytest.approx(expected[0], abs=0.5 * 10**-digits)
    assert (math.isnan(std) and math.isnan(expected[1])) or std == pytest.approx(expected[1], abs=0.5 * 10**-digits)
    assert n == expected[2]


def markdown_grid(text: str) -> dict:
    """{(row, col): cell text} of the first Markdown table in `text`."""
    all_lines = text.splitlines()
    start = next(i for i, line in enumerate(all_lines) if line.startswith("|"))
    lines = list(itertools.takewhile(lambda line: line.startswith("|"), all_lines[start:]))
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    cells = {}
    for line in lines[2:]:
        row, *values = [c.strip() for c in line.strip("|").split("|")]
        cells.update({(row, col): v for col, v in zip(header[1:], values, strict=True)})
    return cells


def selected_records(root, metric="val/mAP", select="final"):
    sweep = load_runs([root])
    keys = add_configs(sweep)
    return sweep, keys, select_records(sweep, metric, select, "max")


# --- the table ---------------------------------------------------------------------------------------------

def test_table_markdown_cells_are_seed_means_spreads_and_counts(grid_report):
    paths = grid_report
    cells = markdown_grid(paths["table.md"].read_text())
    assert set(cells) == {(str(r), str(c)) for r in (1, 100) for c in (1, 10)}
    for (row, col), expected in EXPECTED.items():
        assert_cell(parse_cell(cells[str(row), str(col)]), expected)
    # The best mean (100, 10) is not separable from the runner-up (100, 1), a single seed: † and no bold.
    assert [key for key, text in cells.items() if parse_cell(text)[3]] == []
    assert [key for key, text in cells.items() if parse_cell(text)[4]] == [("100", "10")]
    # logit-scale t-intervals: logits of 0.2, 0.3, 0.4 have mean -0.8797 and sd 0.4905, so
    # expit(-0.8797 ± 4.3027 * 0.4905 / sqrt(3)) = [0.109, 0.584] (the plain t-interval is [0.052, 0.548]);
    # 0.60, 0.61, 0.65 give [0.552, 0.684]
    assert cells["1", "1"] == "0.300 ± 0.100 [0.109, 0.584] (n=3)"
    assert cells["100", "10"] == "0.620 ± 0.026† [0.552, 0.684] (n=3)"
    assert cells["100", "1"] == "0.520 ± – [–] (n=1)"
    text = paths["table.md"].read_text()
    assert "a single seed (n=1), so no spread and no interval" in text
    assert ("The best mean, cov_coeff=100, std_coeff=10, is not separable from 3 of the other 3 at this n (Holm over 3 "
            "comparisons): cov_coeff=100, std_coeff=10 vs cov_coeff=100, std_coeff=1: +0.100 [–] (no interval: n = 3 "
            "and 1; fewer than two shared seeds), Holm p –") in text
    assert "No published values beside the cells: the runs differ from the published protocol" in text


def test_a_separable_best_cell_is_bold(tmp_path):
    # paired over seeds 1-3: differences 0.08, 0.06, 0.09 -> +0.077 [+0.039, +0.115], which excludes zero
    root = tmp_path / "sweep"
    write_grid(root, {(100, 1): [0.52, 0.55, 0.56], (100, 10): [0.60, 0.61, 0.65], (1, 1): [0.2, 0.3, 0.4]})
    paths = build_report([root])
    text = paths["table.md"].read_text()
    cells = markdown_grid(text)
    assert cells["100", "10"] == "**0.620 ± 0.026** [0.552, 0.684] (n=3)"
    assert cells["1", "10"] == ""  # no run of that configuration
    assert not any(parse_cell(t)[4] for t in cells.values() if t)
    # beats every other cell: Holm over 2 paired comparisons (the runner-up at 5%, the other at 2.5%)
    assert ("The best, cov_coeff=100, std_coeff=10, beats every other of the 3 (Holm over 2 paired comparisons"
            in text)
    assert "against the runner-up +0.077 [+0.039, +0.115] (paired t over 3 seeds), Holm p = 0.03" in text
    values = pd.read_csv(paths["table_values.csv"])
    assert values["separable_best"].tolist() == [False, False, True]


def test_table_csv_keeps_the_published_layout_and_exact_values(sweep_dir):
    paths = build_report([sweep_dir], out=sweep_dir / "elsewhere", digits=4)
    wide = pd.read_csv(paths["table.csv"], dtype=str)
    assert list(wide.columns) == ["cov_coeff \\ std_coeff", "1", "10"]
    wide = wide.set_index("cov_coeff \\ std_coeff")
    for (row, col), expected in EXPECTED.items():
        assert_cell(parse_cell(wide.loc[str(row), str(col)]), expected, digits=4)
    values = pd.read_csv(paths["table_values.csv"])
    for (row, col), (mean, std, n) in EXPECTED.items():
        cell = values[(values["loss.cov_coeff"] == row) & (values["loss.std_coeff"] == col)].iloc[0]
        assert cell["mean"] == pytest.approx(mean, abs=1e-12) and cell["n"] == n
        assert (math.isnan(std) and math.isnan(cell["std"])) or cell["std"] == pytest.approx(std, abs=1e-12)
    assert values.loc[values["best"], ["loss.cov_coeff", "loss.std_coeff"]].values.tolist() == [[100, 10]]
    assert not values["separable_best"].any() and values["published"].isna().all()
    best = values[values["best"]].iloc[0]
    assert best["ci_low"] == pytest.approx(0.552173, abs=1e-6) and best["ci_high"] == pytest.approx(0.683900, abs=1e-6)
    assert values["ci_method"].tolist() == ["logit t", "logit t", "none", "logit t"]


def test_table_latex_marks_the_best_cell(grid_report):
    tex = grid_report["table.tex"].read_text()
    assert "\\toprule" in tex and "cov\\_coeff $\\backslash$ std\\_coeff & 1 & 10 \\\\" in tex
    assert tex.count("\\textbf{") == 0  # the best is not separable: a dagger, not bold
    assert ("100 & 0.520 $\\pm$ – {\\scriptsize [–]} {\\scriptsize (1)} & 0.620 $\\pm$ 0.026$^\\dagger$ "
            "{\\scriptsize [0.552, 0.684]} {\\scriptsize (3)} \\\\") in tex


def test_select_best_takes_each_runs_best_epoch(tmp_path):
    root = tmp_path / "sweep"
    write_grid(root)
    peaked = root / "0" / "metrics.jsonl"  # cov=1, std=1, seed 1: final 0.2, best 0.5 at epoch 2
    records = [json.loads(line) for line in peaked.read_text().splitlines()]
    records[1]["val/mAP"] = 0.5
    peaked.write_text("".join(json.dumps(r) + "\n" for r in records))
    final = markdown_grid(build_report([root], out=tmp_path / "final")["table.md"].read_text())
    best = markdown_grid(build_report([root], out=tmp_path / "best", select="best")["table.md"].read_text())
    assert_cell(parse_cell(final["1", "1"]), (0.30, 0.10, 3))
    assert_cell(parse_cell(best["1", "1"]), (0.40, 0.10, 3))


def test_generic_pivot_on_other_keys(tmp_path):
    root = tmp_path / "lr_bs"
    finals = {(1e-3, 32): [0.5, 0.7], (1e-3, 64): [0.4], (1e-4, 32): [0.1, 0.2, 0.3]}
    i = 0
    for (lr, batch), values in finals.items():
        for seed, final in enumerate(values, start=1):
            write_run(root / f"r{i}", make_config(seed=seed, optim={"lr": lr}, data={"batch_size": batch}),
                      curve(final))
            i += 1
    paths = build_report([root], rows="optim.lr", cols="data.batch_size", metric="val/mAP")
    cells = markdown_grid(paths["table.md"].read_text())
    assert_cell(parse_cell(cells["0.0001", "32"]), (0.2, 0.1, 3))
    assert_cell(parse_cell(cells["0.001", "32"]), (0.6, math.sqrt(0.02), 2))
    assert parse_cell(cells["0.001", "32"])[4]  # best mean, not separable from a single-seed runner-up
    assert cells["0.0001", "64"] == ""
    assert "| lr \\ batch_size | 32 | 64 |" in paths["table.md"].read_text()


def test_a_lower_is_better_metric_marks_the_minimum(sweep_dir, tmp_path):
    paths = build_report([sweep_dir], out=tmp_path, metric="train/loss")
    cells = markdown_grid(paths["table.md"].read_text())
    # 1/3 + 0.001 in both: tied, so not separable (†) and never bold
    assert [k for k, v in cells.items() if parse_cell(v)[4]] == [("1", "1"), ("1", "10")]
    assert not any(parse_cell(v)[3] for v in cells.values())
    assert "(the best mean is tied)" in paths["table.md"].read_text()


def test_other_varying_keys_give_one_grid_each(tmp_path):
    root = tmp_path / "sweep"
    for i, (steps, cov, final) in enumerate([(1, 1, 0.1), (1, 100, 0.2), (4, 1, 0.3), (4, 100, 0.4)]):
        write_run(root / f"r{i}", make_config(cov=cov, std=10, steps=steps), curve(final))
    sweep, keys, selected = selected_records(root)
    table = pivot(selected, "loss.cov_coeff", "loss.std_coeff", "val/mAP", keys)
    assert [g.facet for g in table.grids] == [{"model.steps": 1.0}, {"model.steps": 4.0}]
    assert table.grids[1].mean.loc[100.0, 10.0] == pytest.approx(0.4)
    assert [g.best.values.sum() for g in table.grids] == [1, 1]
    report = build_report([root])
    # each grid is a single row (std 10 only): dots per seed (configs.png) instead of one-row heat maps
    assert not any(name.startswith("heatmap") for name in report) and "configs.png" in report
    assert "drawn as dots per seed (configs.png), not as a heat map" in report["report"].read_text()
    assert "**model.steps=4**" in report["table.md"].read_text()


def test_runs_without_the_grid_keys_are_left_out_with_a_note(tmp_path):
    root = tmp_path / "sweep"
    write_grid(root, {(1, 1): [0.2, 0.4]})
    config = make_config(seed=3)
    del config["loss"]["std_coeff"]
    write_run(root / "no_std", config, curve(0.9))
    paths = build_report([root])
    text = paths["table.md"].read_text()
    assert_cell(parse_cell(markdown_grid(text)["1", "1"]), (0.3, math.sqrt(0.02), 2))
    assert "1 run(s) without loss.cov_coeff or loss.std_coeff are not in the table: `sweep/no_std`" in text


def test_a_key_no_run_has_is_refused_before_anything_is_written(tmp_path):
    root = tmp_path / "sweep"
    write_run(root / "r", make_config(), curve(0.5))
    with pytest.raises(ReportInputError, match="--rows='optim.momentum' is invalid: a config key of the runs"):
        build_report([root], rows="optim.momentum")
    assert not (root / "report").exists()


# --- configurations, loading ----------------------------------------------------------------------------------

def test_seeds_group_and_path_logging_device_keys_do_not_split(tmp_path):
    root = tmp_path / "sweep"
    write_run(root / "a", make_config(seed=1, data={"root": "/a"}, logging={"group": "x"}), curve(0.4))
    write_run(root / "b", make_config(seed=2, data={"root": "/b"}, training={"device": "cuda"}), curve(0.6))
    write_run(root / "c", make_config(seed=1, cov=100.0, hydra={"run": {"dir": "/c"}}), curve(0.8))  # 100 == 100.0
    sweep, keys, selected = selected_records(root)
    assert keys == []
    assert set(sweep.runs["config"]) == {"all runs"}
    summary = summarise_configs(selected, "val/mAP")
    assert summary[["mean", "n"]].values.tolist() == [[pytest.approx(0.6), 3]]


def test_configuration_labels_name_the_varying_keys(sweep_dir):
    sweep, keys, selected = selected_records(sweep_dir)
    assert keys == ["loss.cov_coeff", "loss.std_coeff"]
    assert sorted(set(selected["config"])) == [f"cov_coeff={c}, std_coeff={s}" for c, s in sorted(FINAL)]


def test_load_frames_and_statuses(sweep_dir):
    sweep = load_runs([sweep_dir])
    runs = sweep.runs.set_index("run")
    assert len(runs) == sum(map(len, FINAL.values())) + 6
    status = runs["status"].to_dict()
    assert status["vc_grid/failed"] == "failed" and status["vc_grid/partial"] == "incomplete"
    assert status["vc_grid/pruned"] == "pruned"
    assert status["vc_grid/stale"] == status["vc_grid/live"] == "running"
    assert status["vc_grid/broken"] == "incomplete"
    assert "results.json unreadable" in runs.loc["vc_grid/broken", "reason"]
    assert "stale" in runs.loc["vc_grid/stale", "reason"] and "in progress" in runs.loc["vc_grid/live", "reason"]
    assert runs.loc["vc_grid/0", "loss.cov_coeff"] == 1.0
    epochs = sweep.epochs
    assert len(epochs[epochs["run"] == "vc_grid/0"]) == EPOCHS
    assert epochs.loc[(epochs["run"] == "vc_grid/0") & (epochs["epoch"] == 3), "val/mAP"].item() == pytest.approx(0.2)
    assert not any("hydra" in r or "checkpoints" in r or "wandb" in r or "optuna" in r for r in runs.index)


def test_results_json_alone_and_bad_lines_are_read(tmp_path):
    root = tmp_path / "sweep"
    only_results = write_run(root / "a", make_config(seed=1), curve(0.4))
    (only_results / "metrics.jsonl").unlink()
    torn = write_run(root / "b", make_config(seed=2), curve(0.6))
    with open(torn / "metrics.jsonl", "a") as f:
        f.write('{"epoch": 4, "val/m')
    nan_line = write_run(root / "c", make_config(seed=3), curve(0.8))
    with open(nan_line / "metrics.jsonl", "a") as f:
        f.write('{"epoch": 4, "train/loss": NaN, "val/mAP": null}\n')
    sweep, _, selected = selected_records(root)
    assert selected["val/mAP"].to_dict() == {"sweep/a": pytest.approx(0.4), "sweep/b": pytest.approx(0.6),
                                             "sweep/c": pytest.approx(0.8)}  # c: epoch 4 has no mAP
    runs = sweep.runs.set_index("run")
    assert "1 unparsable line(s)" in runs.loc["sweep/b", "reason"]
    assert runs.loc["sweep/a", "n_records"] == 1  # best (epoch 3) and final are the same: one record


# --- figures ---------------------------------------------------------------------------------------------------

def test_heatmap_shows_the_seed_means_on_a_fixed_scale_with_chance(sweep_dir):
    sweep, keys, selected = selected_records(sweep_dir)
    table = pivot(selected, "loss.cov_coeff", "loss.std_coeff", "val/mAP", keys)
    fig = plot_heatmap(table.grids[0], table, chance=CHANCE)
    image = fig.axes[0].images[0]
    expected = np.array([[EXPECTED[r, c][0] for c in (1, 10)] for r in (1, 100)])
    np.testing.assert_allclose(image.get_array(), expected)
    assert image.get_clim() == (0, 1)  # AP lives in [0, 1]: the colours do not stretch a small spread
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert "0.620\n± 0.026\nn=3" in texts and "0.520\n± –\nn=1" in texts
    assert [line.get_ydata()[0] for line in fig.axes[1].lines] == [CHANCE]  # chance marked on the colour bar
    frame = [p for p in fig.axes[0].patches if p.get_edgecolor()[:3] == (1.0, 0.0, 0.0)]
    assert len(frame) == 1 and frame[0].get_linestyle() == "--"  # the best mean, not separable: dashed


def steps_and_cov_sweep(root):
    """model.steps 1 and 4 x cov 1 and 100, seeds 1-3; copy-last AP of a run = 0.01 * steps + 0.001 * cov."""
    finals = {1: [0.3, 0.5, 0.4], 4: [0.45, 0.55, 0.5]}
    i = 0
    for cov in (1, 100):
        for steps, values in finals.items():
            for seed, final in enumerate(values, start=1):
                records = curve(final - 0.1 * (cov == 100))
                for rec in records:
                    rec |= {f"val/copy_last/AP_{k}": 0.01 * steps + 0.001 * cov for k in range(7)}
                write_run(root / f"r{i}", make_config(cov=cov, steps=steps, seed=seed), records)
                i += 1


def test_ap_horizon_panels_follow_the_design_with_seeds_bands_in_0_1_and_copy_last_per_configuration(tmp_path):
    steps_and_cov_sweep(tmp_path / "steps")
    _, keys, selected = selected_records(tmp_path / "steps")
    fig = plot_ap_horizon(selected, keys, hue="model.steps")
    panels = [ax for ax in fig.axes if ax.get_visible() and ax.get_title()]
    assert [ax.get_title() for ax in panels] == ["cov_coeff=1", "cov_coeff=100"]  # by design, not by outcome
    lines = {(ax.get_title(), line.get_label()): line for ax in panels for line in ax.get_lines()}
    np.testing.assert_allclose(lines["cov_coeff=1", "steps=1, n=3"].get_xdata(), range(1, 8))
    np.testing.assert_allclose(lines["cov_coeff=1", "steps=1, n=3"].get_ydata(),
                               [0.4 + 0.1 * (3 - k) for k in range(7)])
    np.testing.assert_allclose(lines["cov_coeff=100", "steps=4, n=3"].get_ydata(),
                               [0.4 + 0.1 * (3 - k) for k in range(7)])
    copies = [line for ax in panels for line in ax.get_lines() if "copy-last" in line.get_label()]
    assert sorted(round(line.get_ydata()[0], 6) for line in copies) == [0.011, 0.041, 0.11, 0.14]
    seeds = [line for ax in panels for line in ax.get_lines() if line.get_linestyle() == "None"]
    assert len(seeds) == 4 and all(len(line.get_xdata()) == 21 for line in seeds)  # 3 seeds x 7 horizons
    for ax in panels:
        for band in ax.collections:
            y = band.get_paths()[0].vertices[:, 1]
            assert y.min() > 0 and y.max() < 1
    # steps 1, cov 1, horizon 1: seeds 0.6, 0.8, 0.7; the band is the t-interval of their logits mapped back
    logits = np.log(np.array([0.6, 0.8, 0.7]) / np.array([0.4, 0.2, 0.3]))
    half = 4.302653 * logits.std(ddof=1) / math.sqrt(3)
    vertices = panels[0].collections[0].get_paths()[0].vertices
    upper = 1 / (1 + math.exp(-(logits.mean() + half)))
    assert vertices[vertices[:, 0] == 1, 1].max() == pytest.approx(upper, abs=1e-6)
    full = {line.get_label() for line in plot_ap_horizon(selected, keys, full=True).axes[0].get_lines()}
    assert "steps=4, n=3" in full


def test_training_curves_are_seed_means_per_configuration(sweep_dir):
    sweep = load_runs([sweep_dir])
    add_configs(sweep)
    fig = plot_curves(sweep.epochs, sweep.runs)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["JEPA loss", "VC loss", "prediction loss", "validation mAP"]
    lines = {line.get_label(): line for line in fig.axes[3].get_lines()}
    assert set(lines) == {f"cov_coeff={c}, std_coeff={s}" for c, s in FINAL}  # failed/running runs not drawn
    mean = np.mean(FINAL[1, 1])
    np.testing.assert_allclose(lines["cov_coeff=1, std_coeff=1"].get_ydata(), [mean - 0.2, mean - 0.1, mean])
    loss = {line.get_label(): line for line in fig.axes[0].get_lines()}["cov_coeff=100, std_coeff=10"]
    np.testing.assert_allclose(loss.get_ydata(), [1 / e + 0.1 for e in (1, 2, 3)])


# --- the report ------------------------------------------------------------------------------------------------

def test_report_lists_every_run_that_is_not_in_the_results(sweep_dir, grid_report):
    paths = grid_report
    assert paths["report"] == sweep_dir / "report" / "report.md"
    text = paths["report"].read_text()
    problems = text.split("## Runs left out or with problems")[1]
    expected = {"vc_grid/failed": "non-finite loss at epoch 3 step 120: train/pred=nan",
                "vc_grid/stale": "stale: no write for", "vc_grid/live": "in progress (2/3 epochs)",
                "vc_grid/partial": "no results.json (1 epoch(s) in metrics.jsonl)",
                "vc_grid/broken": "results.json unreadable", "vc_grid/pruned": "Pruned: val/mAP=0.1000 at epoch 1"}
    for run, reason in expected.items():
        row = next(line for line in problems.splitlines() if f"`{run}`" in line)
        assert reason in row
    assert "| `vc_grid/failed` | failed | 2/3 |" in problems
    assert "\n## Optuna study `vc`\n\nBest: trial 0\n\n![history.png](optuna/vc_grid/history.png)" in text
    assert paths["optuna/vc_grid/history.png"].read_bytes() == b"PNG history"
    for name in ("heatmap.png", "ap_horizon.png", "curves.png", "rollout_best.gif", "heatmap.pdf",
                 "ap_horizon.pdf", "curves.pdf"):
        assert f"]({name})" in text and paths[name].stat().st_size > 0
    assert paths["heatmap.pdf"].read_bytes().startswith(b"%PDF")
    assert "Run `vc_grid/8`" in text  # the best run: cov=100, std=10, seed 3 (0.65)
    assert paths["rollout_best.gif"].read_bytes() == b"GIF89a8"


def test_a_second_report_does_not_read_the_first(sweep_dir, grid_report):
    again = build_report([sweep_dir])
    assert "table.md" in again and "report/" not in again["report"].read_text().split("## Runs left out")[1]


def test_a_finished_run_without_the_metric_is_listed(tmp_path):
    root = tmp_path / "sweep"
    write_grid(root, {(1, 1): [0.2, 0.4]})
    records = curve(0.5)
    for rec in records:
        del rec["val/mAP"]
    write_run(root / "no_map", make_config(seed=3), records)
    text = build_report([root])["report"].read_text()
    assert "| `sweep/no_map` | done | 3/3 | finished but no val/mAP value |" in text
    assert_cell(parse_cell(markdown_grid(text.split("## val/mAP")[1])["1", "1"]), (0.3, math.sqrt(0.02), 2))


def test_two_sweep_folders_combine(tmp_path):
    first, second = tmp_path / "a" / "sweep", tmp_path / "b" / "sweep"
    write_grid(first, {(100, 10): [0.6, 0.61]})
    write_grid(second, {(100, 10): [0.65], (1, 1): [0.2]})
    paths = build_report([first, second], out=tmp_path / "report")
    cells = markdown_grid(paths["table.md"].read_text())
    assert_cell(parse_cell(cells["100", "10"]), (0.62, math.sqrt(0.0007), 3))
    runs = pd.read_csv(paths["runs.csv"])
    assert sorted(runs["run"]) == ["a/sweep/0", "a/sweep/1", "b/sweep/0", "b/sweep/1"]


def test_one_run_folder_alone(tmp_path):
    run = write_run(tmp_path / "run", make_config(), curve(0.5))
    paths = build_report([run])
    cells = markdown_grid(paths["table.md"].read_text())
    assert cells == {("100", "10"): "0.500 ± – [–] (n=1)"}  # a single cell: no best to mark
    assert "None." in paths["report"].read_text()


def test_empty_folder_does_not_crash(tmp_path):
    paths = build_report([tmp_path])
    assert "0 run folder(s)" in paths["report"].read_text()


def test_cli(sweep_dir, tmp_path, capsys):
    out = tmp_path / "cli_report"
    assert main([str(sweep_dir), "--out", str(out), "--select", "best", "--full", "--ignore", "model.dstc"]) == 0
    assert (out / "report.md").exists() and (out / "ap_horizon_full.png").exists()
    assert "report.md" in capsys.readouterr().out


@pytest.mark.parametrize("folder, says", [("missing", "is not a folder"), ("empty", "holds no run folder")])
def test_cli_refuses_a_folder_without_runs(sweep_dir, tmp_path, capsys, folder, says):
    """A mistyped or empty folder is an error (exit 2) naming it, even beside a good one; nothing is written."""
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    out = tmp_path / "report"
    assert main([str(sweep_dir), str(tmp_path / folder), "--out", str(out)]) == 2
    assert f"{tmp_path / folder} {says}" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("args, says", [
    (["--rows", "loss.cov_coef"], "--rows='loss.cov_coef' is invalid: a config key of the runs; closest: loss.cov_"),
    (["--cols", "bogus.key"], "--cols='bogus.key' is invalid: a config key of the runs ("),
    (["--hue", "bogus"], "--hue='bogus' is invalid"),
    (["--metric", "val/mAp"], "--metric='val/mAp' is invalid: a metrics.jsonl key of the runs; closest: val/mAP"),
    (["--cols", "loss.cov_coeff"], "--cols='loss.cov_coeff' is invalid: a config key other than --rows"),
    (["--ignore", "loss.std_coeff"], "--ignore='loss.std_coeff' is invalid: it is the table's cols key"),
    (["--digits", "-1"], "--digits=-1 is invalid"),
    (["--stale-hours", "nan"], "--stale-hours=nan is invalid"),
    (["--out", "A_FILE"], "is invalid: a folder (it is a file)"),
    (["--out", "A_FILE/report"], "the report could not be written"),
])
def test_cli_refuses_options_that_name_nothing_in_the_runs(sweep_dir, tmp_path, capsys, args, says):
    """A mistyped key, metric or bad option is refused with exit 2, naming it and what would be valid;
    no report folder is written."""
    (tmp_path / "a_file").write_text("")
    args = [a.replace("A_FILE", str(tmp_path / "a_file")) for a in args]
    out = tmp_path / "report"
    assert main([str(sweep_dir), "--out", str(out), *args]) == 2
    assert says.replace("A_FILE", str(tmp_path / "a_file")) in capsys.readouterr().err
    assert not out.exists() and (tmp_path / "a_file").read_text() == ""


# --- the published protocol ---------------------------------------------------------------------------------

PUBLISHED_SETTINGS = {
    "data": {"source": "canonical", "labels": "contour", "split_seed": 2025, "num_val_sequences": 1000,
             "max_train_sequences": None, "max_val_sequences": None, "frames": 10, "image_size": 64,
             "batch_size": 64},
    "model": {"dobs": 1, "henc": 32, "hpre": 32, "dstc": 16, "encoder_strides": [1, 1, 1], "steps": 4},
    "optim": {"lr": 1e-3, "decoder_lr_scale": 0.1},
    "training": {"epochs": 50, "precision": "fp32", "mode": "exact"},
}


def test_published_values_stand_beside_runs_of_the_published_protocol(tmp_path):
    root = tmp_path / "published"
    for i, (cov, std, seed, final) in enumerate([(100, 10, 1, 0.60), (100, 10, 2, 0.62), (1, 1, 1, 0.25),
                                                 (1, 1, 2, 0.27)]):
        write_run(root / f"r{i}", make_config(cov, std, seed, **PUBLISHED_SETTINGS), curve(final))
    paths = build_report([root])
    cells = markdown_grid(paths["table.md"].read_text())
    assert cells["100", "10"].endswith("(n=2) · pub 0.607") and cells["1", "1"].endswith("(n=2) · pub 0.259")
    assert "pub: the published value" in paths["table.md"].read_text()
    assert pd.read_csv(paths["table_values.csv"])["published"].tolist() == [0.259, 0.607]
    texts = [t.get_text() for t in plot_heatmap(*_first_grid(root)).axes[0].texts]
    assert any(t.endswith("pub 0.607") for t in texts)

    # One setting off the protocol (30 epochs): the published values are left out, and the note says why.
    other = tmp_path / "short"
    settings = {**PUBLISHED_SETTINGS, "training": {**PUBLISHED_SETTINGS["training"], "epochs": 30}}
    write_run(other / "r0", make_config(100, 10, 1, **settings), curve(0.5))
    write_run(other / "r1", make_config(1, 1, 1, **settings), curve(0.2))
    text = build_report([other])["table.md"].read_text()
    assert "pub" not in markdown_grid(text)["100", "10"]
    assert "training.epochs = 30 (published: 50)" in text


def _first_grid(root):
    _, keys, selected = selected_records(root)
    table = pivot(selected, "loss.cov_coeff", "loss.std_coeff", "val/mAP", keys)
    return table.grids[0], table


def test_protocol_mismatches_name_each_differing_key():
    runs = pd.DataFrame([{"data.source": "generated", "training.epochs": 2.0}])
    found = protocol_mismatches(runs, {"data.source": "canonical", "training.epochs": 50.0, "model.henc": 32.0})
    assert found == ["data.source = generated (published: canonical)", "training.epochs = 2 (published: 50)",
                     "model.henc not recorded (published: 32)"]
    assert protocol_mismatches(runs, {"data.source": "generated"}) == []


def test_report_has_the_claims_section(grid_report):
    text = grid_report["report"].read_text()
    claims = text.split("## Claims of the published study")[1].split("\n## ")[0]
    assert "| 1 | In the cov_coeff x std_coeff grid, cov 100 / std 10 is best. | **inconclusive** |" in claims
    assert "| 3 | Training with model.steps 4 and 8 beats steps 1 and 2 on mAP. | **not applicable** |" in claims
    assert "Published mAP (cov_coeff x std_coeff" in claims
    assert "t-interval" in text.split("## Claims")[0]  # the method is stated before the results
    verdicts = pd.read_csv(grid_report["claims.csv"])
    assert set(verdicts["claim"]) == {1, 2, 3, 4}
    configs = pd.read_csv(grid_report["configs.csv"])
    assert configs.loc[0, "config"] == "cov_coeff=100, std_coeff=10"
    assert configs.loc[0, "ci_low"] == pytest.approx(0.552173, abs=1e-6)  # on the logit scale, as in the table


def test_report_names_folders_relative_to_the_working_directory(tmp_path, monkeypatch):
    root = tmp_path / "study"
    write_grid(root, {(1, 1): [0.2, 0.4]})
    monkeypatch.chdir(tmp_path)
    paths = build_report(["study"], out=tmp_path / "out")
    assert "from `study`." in paths["report"].read_text() and str(tmp_path) not in paths["report"].read_text()
    assert pd.read_csv(paths["runs.csv"])["path"].tolist() == ["study/0", "study/1"]


def test_report_lists_every_problem_the_loader_found(tmp_path):
    """Finished runs with an emptied metrics.jsonl, a truncated last line or a string-valued metric are flagged
    in runs.csv and listed in report.md's problems section, not hidden behind "None"."""
    root = tmp_path / "sweep"
    write_grid(root, {(1, 1): [0.2, 0.4]})
    emptied = write_run(root / "emptied", make_config(seed=3), curve(0.5))
    (emptied / "metrics.jsonl").write_text("")
    torn = write_run(root / "torn", make_config(seed=4), curve(0.5))
    with open(torn / "metrics.jsonl", "a") as f:
        f.write('{"epoch": 4, "val/m')
    text_valued = curve(0.5)
    text_valued[-1]["train/loss"] = "n/a"
    write_run(root / "text", make_config(seed=5), text_valued)
    paths = build_report([root])
    runs = pd.read_csv(paths["runs.csv"]).set_index("run")
    problems = paths["report"].read_text().split("## Runs left out or with problems")[1]
    expected = {"sweep/emptied": "metrics.jsonl holds 1 of 3 epochs", "sweep/torn": "1 unparsable line(s)",
                "sweep/text": "non-numeric metric values in metrics.jsonl: train/loss"}
    for run, reason in expected.items():
        assert reason in runs.loc[run, "reason"]
        row = next(line for line in problems.splitlines() if f"`{run}`" in line)
        assert f"| done | 3/3 | {reason}" in row
    assert "None." not in problems and "`sweep/0`" not in problems


def test_no_training_curves_from_fewer_than_three_evaluations(tmp_path):
    root = tmp_path / "sweep"
    for i, (steps, seed, final) in enumerate([(2, 1, 0.3), (2, 2, 0.4), (4, 1, 0.5), (4, 2, 0.45)]):
        write_run(root / f"r{i}", make_config(steps=steps, seed=seed), curve(final)[:2])
    paths = build_report([root], rows="model.steps", cols="loss.std_coeff")
    assert "curves.png" not in paths and not any(name.startswith("heatmap") for name in paths)  # a 2 x 1 grid
    text = paths["report"].read_text()
    assert "None drawn: no finished run has 3 or more evaluations (the most is 2)" in text
