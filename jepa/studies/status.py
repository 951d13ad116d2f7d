"""The state of each run of a study folder (`python -m jepa.studies status SWEEP_DIR [--json]`).

A run's state comes from its own folder first (jepa.runs.folder_state), then from its job: SLURM's queue
(`squeue`) for `slurm`, whether the process is alive for `local` and `local_processes` (job_id is then a pid on `host`).
    pending   not started yet, or requeued and waiting for a node
    running   training (its job is running)
    done      results.json says done
    pruned    results.json says pruned (an Optuna trial its pruner stopped: finished, not an error)
    failed    results.json says failed (with its reason), its job ended before the run finished, or its
              results.json cannot be read (the reason names the file; relaunching the sweep rebuilds it);
              a run whose folder another live process holds (jepa.runs.lock) is running, whatever its job
Run folders that hold a results.json but are not in the manifest (launched otherwise) are listed too.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from ..runs import DONE, INVALID, PRUNED, find_run_folders, folder_state, live_holder
from ..runs.lock import describe
from .jobs import job_activity
from .manifest import ManifestError, read_manifest

STATES = ("pending", "running", "done", "pruned", "failed")


# ---------------------------------------------------------------- run states

@dataclass
class RunState:
    name: str
    state: str  # one of STATES
    reason: str | None
    epochs_completed: int | None
    epochs: int | None
    val_map: float | None
    resumed: int  # times the run restarted from its checkpoint (requeues, relaunches)
    job_id: str | None


def run_state(name: str, results: dict | None, entry: dict, activity: str | None) -> RunState:
    """Decide one run's state; activity: its job's 'waiting' | 'running' | 'ended', None when unknown."""
    results = results or {}
    status, why = results.get("status"), results.get("reason")
    log = f"; job log: {entry['log']}" if entry.get("log") else ""
    if status == DONE:
        state, reason = "done", None
    elif status == PRUNED:
        state, reason = "pruned", why
    elif activity == "waiting":
        state, reason = "pending", "requeued" if status == "running" else None
    elif activity == "running" and entry.get("launcher") == "local":  # one process runs them in turn
        state, reason = ("running", None) if status == "running" else ("pending", None)
    elif activity == "running":
        state, reason = "running", None if status else "starting"
    elif status == "failed":
        state, reason = "failed", why
    elif status == "running" and activity == "ended":
        state, reason = "failed", f"its job ended before the run finished{log}; relaunching the sweep resumes it"
    elif status == "running":
        state, reason = "running", why
    elif activity == "ended" and entry.get("launcher") == "local":
        state, reason = "pending", "not started and its launcher is gone; relaunch the sweep"
    elif activity == "ended":
        state, reason = "failed", f"its job ended before the run started{log}"
    else:
        state, reason = "pending", None
    final = results.get("final") or {}
    return RunState(name, state, reason, results.get("epochs_completed"), results.get("epochs"),
                    final.get("val/mAP"), results.get("resumed") or 0, entry.get("job_id"))


def sweep_states(sweep_dir: Path | str, names: list[str] | None = None,
                 activity: dict[str, str] | None = None) -> list[RunState]:
    """The state of each run of the sweep (or of `names`); activity: known job activity, else asked for."""
    sweep_dir = Path(sweep_dir)
    try:
        entries = read_manifest(sweep_dir)["runs"]
    except ManifestError as exc:  # the run folders still say how each run stands, without its job
        print(f"warning: {exc}", file=sys.stderr)
        entries = {}
    if names is None:
        found = {p.relative_to(sweep_dir).as_posix() for p in find_run_folders([sweep_dir])}
        names = sorted(set(entries) | found)
    if activity is None:
        activity = job_activity({name: entries[name] for name in names if name in entries})
    states = []
    for name in names:
        folder = folder_state(sweep_dir / name)
        if folder.status == INVALID:  # shown as a problem; relaunching the sweep rebuilds it
            states.append(RunState(name, "failed", folder.reason, None, None, None, 0,
                                   entries.get(name, {}).get("job_id")))
            continue
        state = run_state(name, folder.results, entries.get(name, {}), activity.get(name))
        if state.state == "failed" and (holder := live_holder(sweep_dir / name)) is not None:
            # its recorded job ended, but another process trains it now (a second copy of the sweep, a manual
            # start): the run's lock, not the manifest's job, says who trains a run folder
            state.state, state.reason = "running", f"being trained by another process ({describe(holder)})"
            state.job_id = holder.get("job") or state.job_id
        states.append(state)
    return states


# ---------------------------------------------------------------- reports

def counts(states: list[RunState]) -> dict[str, int]:
    out = {state: sum(s.state == state for s in states) for state in STATES}
    out["requeued"] = sum(s.resumed > 0 for s in states)
    return out


def counts_line(states: list[RunState]) -> str:
    c = counts(states)
    parts = [f"{c[state]} {state}" for state in STATES if c[state]]
    resumed = f" ({c['requeued']} resumed after a requeue or restart)" if c["requeued"] else ""
    return f"{len(states)} runs: {', '.join(parts) or 'none'}{resumed}"


def format_table(states: list[RunState]) -> str:
    rows = [("STATE", "EPOCHS", "VAL/MAP", "RESUMED", "JOB", "RUN")]
    for s in states:
        epochs = f"{s.epochs_completed}/{s.epochs}" if s.epochs else "-"
        val = f"{s.val_map:.4f}" if isinstance(s.val_map, (int, float)) else "-"
        rows.append((s.state, epochs, val, str(s.resumed), s.job_id or "-", s.name))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = []
    for row, s in zip(rows, [None, *states], strict=True):
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[5])
        if s is not None and s.reason:
            lines.append(" " * (widths[0] + 2) + s.reason)
    return "\n".join(lines)
