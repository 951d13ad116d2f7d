"""Turn sweep folders into a report folder: tables, figures (PNG and PDF), the study's claims checked, the best
run's rollout and report.md."""

from __future__ import annotations

import difflib
import json
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from analysis.claims import MARGIN, Check, best_test, check_claims, claims_markdown, seed_values
from analysis.factorial import factorial, factorial_frame, factorial_markdown
from analysis.group import add_configs, ap_keys, infer_goal, select_records, summarise_configs, varying_keys
from analysis.load import Sweep, find_optuna_studies, load_runs, progress_text
from analysis.plan import make_plan, plan_markdown
from analysis.plots import MIN_EVALUATIONS, evaluations, plot_ap_horizon, plot_configs, plot_curves, plot_heatmap
from analysis.published import published_table_markdown
from analysis.stats import POWER, bounded, fmt, method_text
from analysis.tables import PivotTable, facet_title, pivot, to_csv, to_latex, to_markdown, to_values_frame

DPI = 130
# What build_report writes; cleared first so a rebuilt report keeps no file from an earlier one.
OUTPUTS = ("report.md", "runs.csv", "table.md", "table.csv", "table.tex", "table_values.csv", "claims.csv",
           "configs.csv", "factorial.csv", "heatmap*.png", "heatmap*.pdf", "ap_horizon*.png", "ap_horizon*.pdf",
           "configs.png", "configs.pdf", "curves.png", "curves.pdf", "rollout_best.gif")
MAX_CURVES = 12  # configurations drawn in the training curves: the best ones, beyond that lines blur


@dataclass
class Analysis:
    """Everything the report shows, computed once."""

    sweep: Sweep
    keys: list[str]
    selected: pd.DataFrame
    configs: pd.DataFrame  # one row per configuration, best first, with its interval
    table: PivotTable
    claims: list
    factorial: object
    plan: list
    metric: str
    goal: str
    hue: str
    margin: float
    power: float


def analyse(folders, rows: str = "loss.cov_coeff", cols: str = "loss.std_coeff", metric: str = "val/mAP",
            select: str = "final", goal: str | None = None, hue: str = "model.steps", stale_hours: float = 1.0,
            ignore=(), digits: int = 3, margin: float = MARGIN, power: float = POWER,
            seq_per_s: float | None = None, skip=()) -> Analysis:
    """Read the run folders under `folders` and compute the tables, claims, factorial view and seed plan."""
    sweep = load_runs([Path(f) for f in folders], skip=skip, stale_hours=stale_hours)
    check_report_keys(sweep, rows, cols, metric, hue, ignore)
    goal = goal or infer_goal(metric)
    keys = add_configs(sweep, ignore)
    selected = select_records(sweep, metric, select, goal)
    table = pivot(selected, rows, cols, metric, varying_keys(selected, keys), select, goal)
    configs = summarise_configs(selected, metric, goal)
    claims = check_claims(selected, keys, metric, digits, margin)
    plan = make_plan(claims, selected, sweep.runs, keys, power, seq_per_s, display_path)
    grid_keys = [k for k in keys if k not in (rows, cols)]
    design = factorial(selected, rows, cols, metric) if table.grids and not grid_keys else None
    return Analysis(sweep, keys, selected, configs, table, claims, design, plan, metric, goal, hue, margin, power)


def build_report(folders, out=None, rows: str = "loss.cov_coeff", cols: str = "loss.std_coeff",
                 metric: str = "val/mAP", select: str = "final", goal: str | None = None,
                 hue: str = "model.steps", full: bool = False, stale_hours: float = 1.0, ignore=(),
                 digits: int = 3, margin: float = MARGIN, power: float = POWER,
                 seq_per_s: float | None = None) -> dict[str, Path]:
    """Read the run folders under `folders` and write the report into `out` (default `<folders[0]>/report`).

    rows, cols, metric: the pivot table; select: 'final' or 'best' epoch of each run; goal: 'max' or 'min'
    (default: from the metric name); hue: the config key with one line per value in the AP plot; full: also
    plot AP over the whole validation set; stale_hours: a 'running' run silent for longer is called stale;
    ignore: extra config keys that do not split configurations; margin: claim 4's equivalence margin;
    power, seq_per_s: the seed plan's target power and throughput (analysis.plan).
    Returns {name: path} of everything written; 'report' is report.md.
    """
    out = Path(out) if out is not None else Path(folders[0]) / "report"
    a = analyse(folders, rows, cols, metric, select, goal, hue, stale_hours, ignore, digits, margin, power,
                seq_per_s, skip=[out])
    out.mkdir(parents=True, exist_ok=True)
    for pattern in OUTPUTS:
        for old in out.glob(pattern):
            old.unlink()
    paths = _write_tables(a.table, out, digits) if a.table.grids else {}
    _write_figures(a, out, paths, digits, full)
    _write_csvs(a, out, paths)
    best_run = _copy_best_rollout(a.sweep, a.selected, metric, a.goal, out)
    if best_run:
        paths["rollout_best.gif"] = out / "rollout_best.gif"
    optuna_md = _copy_optuna_studies(find_optuna_studies(a.sweep.folders), out, paths)
    paths["report"] = out / "report.md"
    paths["report"].write_text(report_markdown(a, paths, best_run, digits, optuna_md))
    return paths


def _write_figures(a: Analysis, out: Path, paths: dict, digits: int, full: bool) -> None:
    chance = _chance(a.selected)
    for name, grid in _heatmaps(a.table):
        _save(plot_heatmap(grid, a.table, digits, chance), out / name, paths)
    if len(a.configs):
        _save(plot_configs(a.selected, a.configs, a.metric, chance), out / "configs.png", paths)
    for full_protocol in (False, True) if full else (False,):
        name = "ap_horizon_full.png" if full_protocol else "ap_horizon.png"
        _save(plot_ap_horizon(a.selected, a.keys, a.hue, full_protocol), out / name, paths)
    if _most_evaluations(a) >= MIN_EVALUATIONS:
        shown = list(a.configs["config"][:MAX_CURVES])
        curve_configs = [c for c in dict.fromkeys(a.sweep.runs["config"]) if c in shown]
        _save(plot_curves(a.sweep.epochs, a.sweep.runs, configs=curve_configs), out / "curves.png", paths)


def _most_evaluations(a: Analysis) -> int:
    """The most epoch records of a finished run (0 without one): a training curve needs MIN_EVALUATIONS."""
    return int(max(evaluations(a.sweep.epochs, a.sweep.runs), default=0))


def _heatmaps(table: PivotTable) -> list[tuple[str, object]]:
    """(file name, grid) of the grids drawn as heat maps: two rows and two columns at least (a single row or
    column is a dot plot: configs.png)."""
    width = len(str(len(table.grids)))
    names = [("heatmap.png" if len(table.grids) == 1 else f"heatmap_{i + 1:0{width}d}.png", grid)
             for i, grid in enumerate(table.grids)]
    return [(name, grid) for name, grid in names if min(grid.mean.shape) >= 2]


def _chance(selected: pd.DataFrame) -> float | None:
    """The chance AP of the runs (mean of val/chance/AP_k), None when not logged."""
    columns = [c for c in selected.columns if str(c).startswith("val/chance/AP_")]
    return float(selected[columns].astype(float).stack().mean()) if columns else None


def _write_csvs(a: Analysis, out: Path, paths: dict) -> None:
    claims = pd.DataFrame([{"claim": c.number, "statement": c.statement, "verdict": c.verdict,
                            "context": check.context, "context_verdict": check.verdict, "evidence": check.evidence}
                           for c in a.claims for check in (c.checks or [Check("", c.verdict, c.summary)])])
    frames = {"claims.csv": claims, "configs.csv": a.configs, "factorial.csv": factorial_frame(a.factorial),
              "runs.csv": _runs_frame(a.sweep, a.selected, a.metric, a.keys)}
    for name, frame in frames.items():
        if name != "factorial.csv" or len(frame):
            paths[name] = out / name
            frame.to_csv(paths[name], index=False)


class ReportInputError(ValueError):
    """A report option that names nothing in the runs; the message lists what would be valid."""


def check_report_keys(sweep: Sweep, rows: str, cols: str, metric: str, hue: str, ignore=()) -> None:
    """rows, cols and hue must be config keys of the runs, metric a metrics.jsonl key (when any epoch was
    recorded), rows and cols different and neither ignored."""
    def unknown(option: str, value: str, known: list[str], what: str) -> ReportInputError:
        close = difflib.get_close_matches(value, known, n=5, cutoff=0.5)
        hint = f"; closest: {', '.join(close)}" if close else f" ({len(known)} of them, e.g. {', '.join(known[:5])})"
        return ReportInputError(f"{option}={value!r} is invalid: {what}{hint}")

    keys = list(sweep.config_keys)
    if not keys:  # no readable run: the report lists the folders' problems
        return
    for option, value in (("--rows", rows), ("--cols", cols), ("--hue", hue)):
        if value not in keys:
            raise unknown(option, value, keys, "a config key of the runs")
    if rows == cols:
        raise ReportInputError(f"--cols={cols!r} is invalid: a config key other than --rows")
    for option, value in (("--rows", rows), ("--cols", cols)):
        if value in ignore:
            raise ReportInputError(f"--ignore={value!r} is invalid: it is the table's {option[2:]} key")
    metrics = [c for c in sweep.epochs.columns if c not in ("run", "epoch", "global_step")]
    if metrics and metric not in metrics:
        raise unknown("--metric", metric, metrics, "a metrics.jsonl key of the runs")


def _copy_optuna_studies(studies: list[Path], out: Path, paths: dict[str, Path]) -> list[str]:
    """Each Optuna study's summary (jepa.studies.search: best parameters, trial table, plots) as report sections.

    Its plots are copied to out/optuna_<study>/ and its headings demoted under the report's own."""
    _remove_earlier_copies(out / "optuna")
    md = []
    for study in studies:
        summary = study / "summary.md"
        if not summary.exists():
            md += [f"## Optuna study in `{study.parent}`", "", "No summary.md yet (no trial has finished).", ""]
            continue
        target = out / "optuna" / study.parent.name
        target.mkdir(parents=True, exist_ok=True)
        text = summary.read_text()
        for image in sorted(study.glob("*.png")):
            copy = target / image.name
            if copy.resolve() != image.resolve():  # --out the sweep folder itself: the study's own plots
                shutil.copy2(image, copy)
            paths[f"optuna/{study.parent.name}/{image.name}"] = copy
            text = text.replace(f"]({image.name})", f"](optuna/{study.parent.name}/{image.name})")
        md += [("#" + line) if line.startswith("#") else line for line in text.splitlines()] + [""]
    _record_copies(out / "optuna", [p for k, p in paths.items() if k.startswith("optuna/")])
    return md


COPIES = ".copied_by_report.json"  # the files the report copied into out/optuna/: the only ones it deletes


def _remove_earlier_copies(folder: Path) -> None:
    """Delete the files an earlier report copied into `folder`, and nothing else (it may be a study's own)."""
    try:
        names = json.loads((folder / COPIES).read_text())
    except (OSError, ValueError):
        return
    for name in names if isinstance(names, list) else []:
        path = folder / str(name)
        if ".." not in Path(str(name)).parts and path.is_file():
            path.unlink()


def _record_copies(folder: Path, copies: list[Path]) -> None:
    if copies:
        (folder / COPIES).write_text(json.dumps([p.relative_to(folder).as_posix() for p in copies]))


def _save(fig, path: Path, paths: dict | None = None) -> Path:
    """Write the figure as PNG (`path`) and as PDF beside it; record both in `paths`. The PDF carries no
    creation date, so the same runs give the same bytes (a regenerated report differs only where it says more)."""
    fig.savefig(path, dpi=DPI)
    pdf = path.with_suffix(".pdf")
    fig.savefig(pdf, metadata={"CreationDate": None})
    if paths is not None:
        paths[path.name], paths[pdf.name] = path, pdf
    return path


def display_path(path) -> str:
    """`path` relative to the working directory when it lies under it (reports stay free of machine paths),
    else as it is."""
    path = Path(path)
    try:
        return path.relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return str(path)


def _write_tables(table: PivotTable, out: Path, digits: int) -> dict[str, Path]:
    paths = {name: out / name for name in ("table.md", "table.csv", "table.tex", "table_values.csv")}
    paths["table.md"].write_text(to_markdown(table, digits))
    paths["table.csv"].write_text(to_csv(table, digits))
    paths["table.tex"].write_text(to_latex(table, digits))
    to_values_frame(table).to_csv(paths["table_values.csv"], index=False)
    return paths


def _copy_best_rollout(sweep: Sweep, selected: pd.DataFrame, metric: str, goal: str, out: Path) -> str | None:
    """Copy rollout.gif of the best finished run that has one; returns that run's id."""
    ranked = selected[metric].astype(float).sort_values(ascending=goal == "min")
    paths = sweep.runs.set_index("run")["path"]
    for run in ranked.index:
        gif = Path(paths[run]) / "rollout.gif"
        if gif.is_file():
            shutil.copyfile(gif, out / "rollout_best.gif")
            return run
    return None


def _runs_frame(sweep: Sweep, selected: pd.DataFrame, metric: str, keys: list[str]) -> pd.DataFrame:
    """One row per run: status, reason, configuration, the varying keys and the value that counts."""
    runs = sweep.runs[["run", "status", "reason", "epochs_completed", "epochs", "config", *keys, "path"]].copy()
    runs["path"] = [display_path(p) for p in runs["path"]]
    runs.insert(5, metric, runs["run"].map(selected[metric]) if metric in selected else float("nan"))
    return runs


def problem_runs(sweep: Sweep, selected: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Runs that are not in the results, or are with a problem the loader found, and why: failed, running,
    incomplete, invalid, finished without a value of `metric`, or finished with a problem in its files
    (an emptied or truncated metrics.jsonl, a non-numeric metric, an unreadable results.json)."""
    runs = sweep.runs.copy()
    no_value = (runs["status"] == "done") & ~runs["run"].isin(selected.index)
    runs.loc[no_value, "reason"] = [f"finished but no {metric} value" + (f"; {r}" if isinstance(r, str) else "")
                                    for r in runs.loc[no_value, "reason"]]
    flagged = (runs["status"] == "done") & runs["reason"].notna() & (runs["reason"].astype(str) != "")
    order = {status: i for i, status in enumerate(("failed", "invalid", "running", "incomplete", "pruned", "done"))}
    problems = runs[(runs["status"] != "done") | no_value | flagged]
    return problems.sort_values("status", key=lambda s: s.map(order), kind="stable")


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    clean = lambda text: str(text).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    return (["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            + ["| " + " | ".join(map(clean, row)) + " |" for row in rows])


def report_markdown(a: Analysis, paths: dict, best_run: str | None, digits: int, optuna_md: list[str]) -> str:
    """report.md, section by section."""
    md = (_head_md(a) + _claims_md(a) + _table_md(a, paths, digits) + _configs_md(a, digits)
          + _plan_md(a, digits) + _figures_md(a, paths) + _rollout_md(a, best_run, digits) + _problems_md(a))
    return "\n".join(md + optuna_md)


def _head_md(a: Analysis) -> list[str]:
    counts = a.sweep.runs["status"].value_counts()
    which = "the final epoch" if a.table.select == "final" else f"each run's best epoch ({a.goal})"
    return ["# Sweep report", "",
            f"Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC} from "
            + ", ".join(f"`{display_path(f)}`" for f in a.sweep.folders) + ".",
            f"{len(a.sweep.runs)} run folder(s): " + (", ".join(f"{n} {s}" for s, n in counts.items()) or "none")
            + f". Each run counts with its {a.metric} at {which}; seeds of one configuration are grouped.", "",
            method_text(), "", "Figures are in PNG and PDF (same name, `.pdf`).", ""]


def _claims_md(a: Analysis) -> list[str]:
    md = ["## Claims of the published study", "",
          ("Each claim is tested on these runs where its keys vary, every comparison a one-sided t-test at 2.5% "
           "(paired over shared seeds, else Welch): claim 1 supported when cov 100 / std 10 beats every other cell "
           "and contradicted when another cell beats it, Holm's procedure over the comparisons; claim 3 "
           "supported when steps 4 and 8 each beat steps 1 and 2 (all four comparisons reject); claim 4, only "
           "where claim 3 holds, supported when the 95% interval of steps 8 - steps 4 lies inside "
           f"±{fmt(a.margin)} mAP (two one-sided tests; `--margin`); claim 2 on the configurations whose mAP is "
           "shown above copy-last's, supported when each one's per-seed slope of AP against horizon is below "
           "zero. **Inconclusive**: neither shown at this n; **not applicable**: the runs do not vary what the "
           "claim is about, or (claim 4) there is no gain to saturate. docs/statistics.md gives the rules and "
           "their calibration."), ""]
    md += claims_markdown(list(a.claims))
    if a.claims and a.claims[0].verdict != "not applicable":
        md += ["Published mAP (cov_coeff x std_coeff; published model, canonical data, 50 epochs):", "",
               published_table_markdown()]
    return md


def _table_md(a: Analysis, paths: dict, digits: int) -> list[str]:
    table = a.table
    md = [f"## {a.metric} by {table.rows} × {table.cols}", ""]
    if not table.grids:
        return md + [f"- {note}" for note in table.notes] + [""]
    md += [to_markdown(table, digits),
           "Also as " + ", ".join(f"[{n}]({n})" for n in ("table.csv", "table.tex", "table_values.csv")) + ".", ""]
    heatmaps = _heatmaps(table)
    md += [f"![heat map {facet_title(g.facet)}]({n}) ([PDF]({n[:-4]}.pdf))\n".replace(" ]", "]") for n, g in heatmaps]
    if len(heatmaps) < len(table.grids):
        md += ["A grid with a single row or column is drawn as dots per seed (configs.png), not as a heat map.", ""]
    if a.factorial is not None:
        md += ["### Factorial view", ""] + factorial_markdown(a.factorial, digits)
        md += ["Also as [factorial.csv](factorial.csv).", ""] if "factorial.csv" in paths else []
    return md


def _configs_md(a: Analysis, digits: int) -> list[str]:
    how = "t-interval on the logit scale (inside [0, 1])" if bounded(a.metric) else "t-interval"
    md = ["## Configurations", "", (f"Best first by mean {a.metric}; 95% {how} of the mean over seeds "
                                    "(also in [configs.csv](configs.csv)). The figure shows every seed."), ""]
    rows = [[c.config, f"{fmt(c.mean, digits)} ± {fmt(c.std, digits)}",
             f"[{fmt(c.ci_low, digits)}, {fmt(c.ci_high, digits)}]" if c.n > 1 else "[–]", c.n, c.runs]
            for c in a.configs.itertuples()]
    md += _md_table(["configuration", f"{a.metric} mean ± std", "95% interval", "n", "runs"], rows) + [""]
    md += ["![configurations](configs.png) ([PDF](configs.pdf))", ""] if len(a.configs) else []
    cells = {c: seed_values(a.selected[a.selected["config"] == c], a.metric) for c in a.configs["config"]}
    test = best_test(cells, {c: f"`{c}`" for c in cells}, a.goal) if a.metric in a.selected else None
    if test is not None:
        text = test.text(digits)
        md += [text[0].upper() + text[1:] + ".", ""]
    return md


def _plan_md(a: Analysis, digits: int) -> list[str]:
    return (["## Power and the seeds that would decide", "",
             "For each comparison a claim left undecided (`python -m analysis ... --plan` prints the same).", ""]
            + plan_markdown(a.plan, a.power, digits) + [""])


def _figures_md(a: Analysis, paths: dict) -> list[str]:
    md = ["## AP against prediction horizon", "",
          ("One panel per combination of the varying keys other than the hue key (the study's design, not its "
           "outcome), one line per hue value; band: 95% t-interval of the seed mean on the logit scale (inside "
           "[0, 1]); dots: the seeds; copy-last per configuration, dashed, in the line's colour; chance dotted."), ""]
    md += [f"![AP against horizon]({n}) ([PDF]({n[:-4]}.pdf))\n" for n in ("ap_horizon.png", "ap_horizon_full.png")
           if n in paths]
    if not ap_keys(a.selected.columns):
        md.append("No run logged val/AP_k.")
    md += ["", "## Training curves", ""]
    if "curves.png" not in paths:
        most = _most_evaluations(a)
        return md + [f"None drawn: no finished run has {MIN_EVALUATIONS} or more evaluations (the most is {most}); "
                     f"a curve needs at least {MIN_EVALUATIONS} points.", ""]
    shown = f"The {MAX_CURVES} best of {len(a.configs)} configurations by {a.metric}" if len(a.configs) > MAX_CURVES \
        else "Every configuration with a finished run"
    return md + [f"{shown}, runs with at least {MIN_EVALUATIONS} evaluations. Band: 95% t-interval over seeds.", "",
                 "![training curves](curves.png) ([PDF](curves.pdf))", ""]


def _rollout_md(a: Analysis, best_run: str | None, digits: int) -> list[str]:
    md = ["## Rollout of the best run", ""]
    if not best_run:
        return md + ["No finished run with a value has a rollout.gif.", ""]
    value = a.selected.loc[best_run, a.metric]
    return md + [f"Run `{best_run}` ({a.metric} = {value:.{digits}f}).", "", "![rollout](rollout_best.gif)", ""]


def _problems_md(a: Analysis) -> list[str]:
    problems = problem_runs(a.sweep, a.selected, a.metric)
    rows = [[f"`{r['run']}`", r["status"], progress_text(r["epochs_completed"], r["epochs"]), r["reason"] or ""]
            for r in problems.to_dict("records")]
    return (["## Runs left out or with problems", ""]
            + (_md_table(["run", "status", "epochs", "reason"], rows) if rows else ["None."]) + [""])
