"""Turn sweep folders into a report folder: tables, figures (PNG and PDF), the study's claims checked, the best
run's rollout and report.md."""

from __future__ import annotations

import difflib
import json
import shutil
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from analysis.claims import Check, check_claims, claims_markdown, seed_values
from analysis.group import add_configs, ap_keys, infer_goal, select_records, summarise_configs, varying_keys
from analysis.load import Sweep, find_optuna_studies, load_runs, progress_text
from analysis.plots import plot_ap_horizon, plot_curves, plot_heatmap
from analysis.published import published_table_markdown
from analysis.stats import fmt, interval_text, method_text, t_interval, top_two
from analysis.tables import PivotTable, facet_title, pivot, to_csv, to_latex, to_markdown, to_values_frame

DPI = 130
# What build_report writes; cleared first so a rebuilt report keeps no file from an earlier one.
OUTPUTS = ("report.md", "runs.csv", "table.md", "table.csv", "table.tex", "table_values.csv", "claims.csv",
           "configs.csv", "heatmap*.png", "heatmap*.pdf", "ap_horizon*.png", "ap_horizon*.pdf", "curves.png",
           "curves.pdf", "rollout_best.gif")
MAX_CURVES = 12  # configurations drawn in the training curves: the best ones, beyond that lines blur


def build_report(folders, out=None, rows: str = "loss.cov_coeff", cols: str = "loss.std_coeff",
                 metric: str = "val/mAP", select: str = "final", goal: str | None = None,
                 hue: str = "model.steps", full: bool = False, stale_hours: float = 1.0, ignore=(),
                 digits: int = 3) -> dict[str, Path]:
    """Read the run folders under `folders` and write the report into `out` (default `<folders[0]>/report`).

    rows, cols, metric: the pivot table; select: 'final' or 'best' epoch of each run; goal: 'max' or 'min'
    (default: from the metric name); hue: the config key with one line per value in the AP plot; full: also
    plot AP over the whole validation set; stale_hours: a 'running' run silent for longer is called stale;
    ignore: extra config keys that do not split configurations.
    Returns {name: path} of everything written; 'report' is report.md.
    """
    folders = [Path(f) for f in folders]
    out = Path(out) if out is not None else folders[0] / "report"
    sweep = load_runs(folders, skip=[out], stale_hours=stale_hours)
    check_report_keys(sweep, rows, cols, metric, hue, ignore)
    goal = goal or infer_goal(metric)
    keys = add_configs(sweep, ignore)
    selected = select_records(sweep, metric, select, goal)
    table = pivot(selected, rows, cols, metric, varying_keys(selected, keys), select, goal)
    out.mkdir(parents=True, exist_ok=True)
    for pattern in OUTPUTS:
        for old in out.glob(pattern):
            old.unlink()
    paths = _write_tables(table, out, digits) if table.grids else {}
    for i, grid in enumerate(table.grids):
        width = len(str(len(table.grids)))
        name = "heatmap.png" if len(table.grids) == 1 else f"heatmap_{i + 1:0{width}d}.png"
        _save(plot_heatmap(grid, table, digits), out / name, paths)
    for full_protocol in (False, True) if full else (False,):
        name = "ap_horizon_full.png" if full_protocol else "ap_horizon.png"
        _save(plot_ap_horizon(selected, metric, hue, goal, full_protocol), out / name, paths)
    configs = summarise_configs(selected, metric, goal)
    shown = set(configs["config"][:MAX_CURVES]) if len(configs) > MAX_CURVES else None
    curve_configs = None if shown is None else [c for c in dict.fromkeys(sweep.runs["config"]) if c in shown]
    _save(plot_curves(sweep.epochs, sweep.runs, configs=curve_configs), out / "curves.png", paths)
    claims = check_claims(selected, keys, metric, digits)
    paths["claims.csv"] = out / "claims.csv"
    pd.DataFrame([{"claim": c.number, "statement": c.statement, "verdict": c.verdict, "context": check.context,
                   "context_verdict": check.verdict, "evidence": check.evidence}
                  for c in claims for check in (c.checks or [Check("", c.verdict, c.summary)])]
                 ).to_csv(paths["claims.csv"], index=False)
    paths["configs.csv"] = out / "configs.csv"
    config_intervals(selected, configs, metric).to_csv(paths["configs.csv"], index=False)
    best_run = _copy_best_rollout(sweep, selected, metric, goal, out)
    if best_run:
        paths["rollout_best.gif"] = out / "rollout_best.gif"
    optuna_md = _copy_optuna_studies(find_optuna_studies(sweep.folders), out, paths)
    paths["runs.csv"] = out / "runs.csv"
    _runs_frame(sweep, selected, metric, keys).to_csv(paths["runs.csv"], index=False)
    paths["report"] = out / "report.md"
    paths["report"].write_text(_report_md(sweep, selected, configs, table, paths, best_run, metric, goal, hue,
                                          digits, optuna_md, claims, keys))
    return paths


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
    """Write the figure as PNG (`path`) and as PDF beside it; record both in `paths`."""
    fig.savefig(path, dpi=DPI)
    pdf = path.with_suffix(".pdf")
    fig.savefig(pdf)
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


def config_intervals(selected: pd.DataFrame, configs: pd.DataFrame, metric: str) -> pd.DataFrame:
    """`configs` (best first) with the 95% t-interval of each configuration's mean."""
    out = configs.copy()
    intervals = [t_interval(selected.loc[selected["config"] == c, metric]) if metric in selected else None
                 for c in configs["config"]]
    out.insert(3, "ci_low", [iv.low if iv else float("nan") for iv in intervals])
    out.insert(4, "ci_high", [iv.high if iv else float("nan") for iv in intervals])
    return out


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
    """Runs that are not in the results and why: failed, running, incomplete, invalid, or finished without
    a value of `metric`."""
    runs = sweep.runs.copy()
    no_value = (runs["status"] == "done") & ~runs["run"].isin(selected.index)
    runs.loc[no_value, "reason"] = f"finished but no {metric} value"
    order = {status: i for i, status in enumerate(("failed", "invalid", "running", "incomplete", "pruned", "done"))}
    problems = runs[(runs["status"] != "done") | no_value]
    return problems.sort_values("status", key=lambda s: s.map(order), kind="stable")


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    clean = lambda text: str(text).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    return (["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            + ["| " + " | ".join(map(clean, row)) + " |" for row in rows])


def _report_md(sweep: Sweep, selected: pd.DataFrame, configs: pd.DataFrame, table: PivotTable, paths: dict,
               best_run: str | None, metric: str, goal: str, hue: str, digits: int, optuna_md: list[str],
               claims=(), keys=()) -> str:
    counts = sweep.runs["status"].value_counts()
    which = "the final epoch" if table.select == "final" else f"each run's best epoch ({goal})"
    md = ["# Sweep report", "",
          f"Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC} from "
          + ", ".join(f"`{display_path(f)}`" for f in sweep.folders) + ".",
          f"{len(sweep.runs)} run folder(s): " + (", ".join(f"{n} {s}" for s, n in counts.items()) or "none")
          + f". Each run counts with its {metric} at {which}; seeds of one configuration are grouped.", "",
          method_text(), "", "Figures are in PNG and PDF (same name, `.pdf`).", ""]

    md += ["## Claims of the published study", "",
           ("Each claim is checked on these runs where its keys vary: **supported** or **contradicted** when a 95% "
            "interval excludes zero in one direction, **inconclusive** when it does not (or a single seed gives no "
            "interval), **not applicable** when the runs do not vary what the claim is about."), ""]
    md += claims_markdown(list(claims))
    if claims and claims[0].verdict != "not applicable":
        md += ["Published mAP (cov_coeff x std_coeff; published model, canonical data, 50 epochs):", "",
               published_table_markdown()]

    md += [f"## {metric} by {table.rows} × {table.cols}", ""]
    if table.grids:
        md += [to_markdown(table, digits),
               "Also as " + ", ".join(f"[{n}]({n})" for n in ("table.csv", "table.tex", "table_values.csv"))
               + ".", ""]
        heatmaps = [n for n in paths if n.startswith("heatmap") and n.endswith(".png")]
        md += [f"![heat map {facet_title(g.facet)}]({n}) ([PDF]({n[:-4]}.pdf))\n".replace(" ]", "]")
               for n, g in zip(heatmaps, table.grids, strict=False)]
    else:
        md += [f"- {note}" for note in table.notes] + [""]

    md += ["## Configurations", "", (f"Best first by mean {metric}; 95% t-interval of the mean over seeds "
                                     "(also in [configs.csv](configs.csv))."), ""]
    rows = []
    for c in configs.itertuples():
        iv = t_interval(selected.loc[selected["config"] == c.config, metric]) if metric in selected else None
        rows.append([c.config, f"{fmt(c.mean, digits)} ± {fmt(c.std, digits)}",
                     interval_text(iv, digits) if iv else "[–]", c.n, c.runs])
    md += _md_table(["configuration", f"{metric} mean ± std", "95% interval", "n", "runs"], rows) + [""]
    top = _top_configs(selected, configs, metric, goal, digits)
    if top:
        md += [top, ""]

    md += ["## AP against prediction horizon", "",
           (f"One line per {hue} value (the best configuration by {metric} where several share it), band: 95% "
            "t-interval of the seed mean; copy-last (with its band) and chance baselines are means over the "
            "plotted runs."), ""]
    md += [f"![AP against horizon]({n}) ([PDF]({n[:-4]}.pdf))\n" for n in ("ap_horizon.png", "ap_horizon_full.png")
           if n in paths]
    if not ap_keys(selected.columns):
        md.append("No run logged val/AP_k.")
    curves_note = (f"The {MAX_CURVES} best of {len(configs)} configurations by {metric}." if len(configs) > MAX_CURVES
                   else "Every configuration with a finished run.")
    md += ["", "## Training curves", "", curves_note + " Band: 95% t-interval over seeds.", "",
           "![training curves](curves.png) ([PDF](curves.pdf))", ""]

    md += ["## Rollout of the best run", ""]
    if best_run:
        value = selected.loc[best_run, metric]
        md += [f"Run `{best_run}` ({metric} = {value:.{digits}f}).", "", "![rollout](rollout_best.gif)", ""]
    else:
        md += ["No finished run with a value has a rollout.gif.", ""]

    problems = problem_runs(sweep, selected, metric)
    md += ["## Failed, incomplete or running runs", ""]
    md += (_md_table(["run", "status", "epochs", "reason"],
                     [[f"`{r['run']}`", r["status"], progress_text(r["epochs_completed"], r["epochs"]),
                       r["reason"] or ""]
                      for r in problems.to_dict("records")]) if len(problems) else ["None."]) + [""]

    return "\n".join(md + optuna_md)


def _top_configs(selected: pd.DataFrame, configs: pd.DataFrame, metric: str, goal: str, digits: int) -> str:
    """Whether the two best configurations are separable, and the seeds that would separate them."""
    if metric not in selected or len(configs) < 2:
        return ""
    cells = {c: seed_values(selected[selected["config"] == c], metric) for c in configs["config"]}
    top = top_two(cells, goal)
    if top is None:
        return ""
    text = top.text(lambda c: f"`{c}`", digits)
    return text[0].upper() + text[1:]
