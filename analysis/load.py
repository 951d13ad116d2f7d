"""Find run folders under sweep folders and read them into two frames.

A run folder (docs/run_folder.md) is any directory holding `config.yaml` plus `metrics.jsonl` and/or
`results.json`. Reading never raises for a broken run: whatever is wrong goes into its `status` and `reason`.

- `runs`: one row per run: `run` (id), `path`, `status`, `reason`, `epochs`, `epochs_completed`, `n_records`,
  `age_h` (hours since the newest write), then every config key flattened with dots (`loss.cov_coeff`).
- `epochs`: one row per run and evaluated epoch: `run`, `epoch`, then the flat metric keys (`val/mAP`, ...).
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from jepa.runs import find_run_folders, read_metrics
from jepa.runs.folder import CONFIG, METRICS, RESULTS, folder_state
from jepa.runs.status import DONE, FAILED, INVALID, PRUNED, RUNNING

# Files whose modification time says a run is still alive.
ACTIVITY_FILES = (RESULTS, METRICS, "train.log", "checkpoints/last.pt")
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml where PyYAML has it: faster


@dataclass
class Sweep:
    """Everything the analysis knows, read from run folders only."""

    runs: pd.DataFrame
    epochs: pd.DataFrame
    config_keys: list[str]
    folders: list[Path]


def find_run_dirs(folder: Path, skip: set[Path] = frozenset()) -> list[Path]:
    """Run folders at or under `folder` (jepa.runs.find_run_folders); `skip`: folders not to search."""
    return find_run_folders([folder], skip)


def find_optuna_studies(folders: list[Path]) -> list[Path]:
    """`optuna/` folders directly inside the sweep folders (jepa.studies.search writes summary.md and plots there)."""
    return [f / "optuna" for f in folders if (f / "optuna").is_dir()]


def flatten(tree: dict, prefix: str = "") -> dict:
    """{'loss': {'cov_coeff': 100}} -> {'loss.cov_coeff': 100.0}; lists become tuples (hashable)."""
    flat = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = _normalise(value)
    return flat


def _normalise(value):
    """Make 100 and 100.0 the same configuration value, and lists hashable."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, list):
        return tuple(_normalise(v) for v in value)
    return str(value)


def _newest_write(path: Path) -> float:
    times = [p.stat().st_mtime for p in (path / name for name in ACTIVITY_FILES) if p.exists()]
    return max(times, default=(path / CONFIG).stat().st_mtime)


def read_run(path: Path, stale_hours: float = 1.0, now: float | None = None) -> tuple[dict, list[dict]]:
    """One run folder -> (its `runs` row without the id, its metric records). Never raises on bad content."""
    now = time.time() if now is None else now
    meta = {"path": str(path), "status": "done", "reason": None, "epochs": math.nan, "epochs_completed": math.nan,
            "n_records": 0, "age_h": (now - _newest_write(path)) / 3600}
    try:
        config = yaml.load((path / CONFIG).read_text(), Loader=_LOADER)
        if not isinstance(config, dict):
            raise ValueError("not a mapping")
    except (OSError, ValueError, yaml.YAMLError) as err:
        return meta | {"status": INVALID, "reason": f"config.yaml unreadable: {err}"}, []

    problems = []
    metrics = read_metrics(path / METRICS)
    records, bad = metrics.records, metrics.bad_lines
    if bad:
        problems.append(f"{bad} unparsable line(s) in metrics.jsonl")
    state = folder_state(path)  # the one reading of results.json, as `python -m jepa.studies status` reads it
    results = state.results
    if state.status == INVALID:
        problems.append(f"results.json unreadable: {state.reason}")
    if not records and results:
        records = _records_from_results(results)
    problems += _record_problems(records, results)
    meta["n_records"] = len(records)
    if results:
        meta["epochs"] = _number(results.get("epochs"))
        meta["epochs_completed"] = _number(results.get("epochs_completed"))
    if math.isnan(meta["epochs_completed"]) and records:
        meta["epochs_completed"] = max(_number(r.get("epoch")) for r in records)
    meta.update(_status(results, meta, stale_hours))
    meta["reason"] = "; ".join(filter(None, [meta["reason"], *problems])) or None
    return flatten(config) | meta, records  # a config key named like a meta column loses


def progress_text(done: float, total: float) -> str:
    """'12/50', '12' without a total, '?' when unknown."""
    if math.isnan(done):
        return "?"
    return f"{done:g}" + ("" if math.isnan(total) else f"/{total:g}")


def _status(results: dict | None, meta: dict, stale_hours: float) -> dict:
    """status and reason from results.json (None when missing or unreadable)."""
    if results is None:
        return {"status": "incomplete", "reason": f"no results.json ({meta['n_records']} epoch(s) in metrics.jsonl)"}
    status = results.get("status")
    if status == DONE:
        return {"status": DONE, "reason": results.get("reason")}
    if status == FAILED:
        return {"status": FAILED, "reason": results.get("reason") or "failed, no reason given"}
    if status == PRUNED:  # an Optuna trial stopped early by its pruner
        return {"status": PRUNED, "reason": results.get("reason") or "pruned"}
    # RUNNING: folder_state hands over only results.json files whose status is one of STATUSES
    progress = f"{progress_text(meta['epochs_completed'], meta['epochs'])} epochs"
    if meta["age_h"] > stale_hours:
        return {"status": RUNNING, "reason": f"stale: no write for {meta['age_h']:.1f} h, the job probably "
                                             f"died ({progress})"}
    return {"status": RUNNING, "reason": f"in progress ({progress})"}


def _records_from_results(results: dict) -> list[dict]:
    """Without metrics.jsonl, the `final` and `best` records of results.json are the only epochs known."""
    found = {}
    for key in ("best", "final"):
        record = results.get(key)
        if isinstance(record, dict) and record:
            found[record.get("epoch")] = record
    return [found[k] for k in sorted(found, key=lambda e: (e is None, e or 0))]


def _record_problems(records: list[dict], results: dict | None) -> list[str]:
    """Metrics a finished run should have but lacks: epochs missing from metrics.jsonl, non-numeric values."""
    problems = []
    completed = results.get("epochs_completed") if isinstance(results, dict) else None
    if isinstance(completed, int) and results.get("status") == DONE and len(records) < completed:
        problems.append(f"metrics.jsonl holds {len(records)} of {completed} epochs (starting the run again "
                        "rebuilds it from its checkpoint)")
    bad = sorted({k for r in records for k, v in r.items()
                  if v is not None and not (isinstance(v, (int, float)) and not isinstance(v, bool))})
    if bad:
        problems.append(f"non-numeric metric values in metrics.jsonl: {', '.join(bad[:5])}")
    return problems


def _number(value) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan


def load_runs(folders, skip=(), stale_hours: float = 1.0) -> Sweep:
    """Read every run folder under `folders` (several sweeps combine) into a `Sweep`.

    Run ids are paths relative to the folder holding the sweep folders, so two sweeps stay apart.
    `skip`: folders not to search (the report folder).
    """
    folders = [Path(f).resolve() for f in folders]
    skip = {Path(s).resolve() for s in skip}
    base = Path(os.path.commonpath([f.parent for f in folders]))
    rows, run_records, now = [], [], time.time()
    seen = set()
    for folder in folders:
        for path in find_run_dirs(folder, skip):
            if path in seen:  # a sweep folder named twice, or one inside another
                continue
            seen.add(path)
            row, records = read_run(path, stale_hours, now)
            row["run"] = path.relative_to(base).as_posix()
            rows.append(row)
            if records:
                run_records.append((row["run"], records))
    meta = ["run", "path", "status", "reason", "epochs", "epochs_completed", "n_records", "age_h"]
    runs = pd.DataFrame(rows, columns=None if rows else meta)
    config_keys = [c for c in runs.columns if c not in meta]
    runs = runs[meta + config_keys]
    return Sweep(runs=runs, epochs=_epochs_frame(run_records), config_keys=config_keys, folders=folders)


def _epochs_frame(run_records: list[tuple[str, list[dict]]]) -> pd.DataFrame:
    """Stack every run's metric records. Runs whose records all share one key set (the usual case) go
    through numpy a block at a time, far faster than a frame built from 50,000 dicts."""
    blocks: dict[tuple, list[tuple[str, np.ndarray]]] = {}
    frames = []
    for run, records in run_records:
        keys = tuple(records[0])
        try:
            if any(tuple(r) != keys for r in records):
                raise ValueError("key sets differ")
            blocks.setdefault(keys, []).append((run, np.array([list(r.values()) for r in records], dtype=float)))
        except (ValueError, TypeError):  # keys differ between epochs, or a value is not a number
            frames.append(pd.DataFrame.from_records(records).assign(run=run))
    for keys, arrays in blocks.items():
        frame = pd.DataFrame(np.concatenate([a for _, a in arrays]), columns=list(keys))
        frame["run"] = np.repeat([run for run, _ in arrays], [len(a) for _, a in arrays])
        frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=["run", "epoch"])
    epochs = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    if "epoch" not in epochs:
        epochs["epoch"] = math.nan
    epochs = epochs[["run", *(c for c in epochs.columns if c != "run")]]
    numbers = [c for c in epochs.columns if c != "run" and epochs[c].dtype == object]
    epochs[numbers] = epochs[numbers].apply(pd.to_numeric, errors="coerce")  # null or text -> NaN
    # A resumed run may log an epoch twice: the later record wins.
    return epochs.drop_duplicates(["run", "epoch"], keep="last", ignore_index=True)
