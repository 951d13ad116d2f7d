"""A sweep folder's manifest, and the state of each of its runs: `python -m jepa.sweep status SWEEP_DIR [--json]`.

The study launchers (hydra_plugins/jepa_launchers, docs/sweeps.md) keep `SWEEP_DIR/manifest.json`:

    {"runs": {"<run folder name>": {"overrides": [...], "launcher": "slurm", "job_id": "1234_5",
                                     "host": "login1", "submitted": "<ISO time>", "log": "<job's stderr>"}}}

A run's state comes from its own results.json first, then from its job: SLURM's queue (`squeue`) for
`slurm`, whether the process is alive for `local` and `local_processes` (job_id is then a pid on `host`).
    pending   not started yet, or requeued and waiting for a node
    running   training (its job is running)
    done      results.json says done
    failed    results.json says failed (with its reason), or its job ended before the run finished
Run folders that hold a results.json but are not in the manifest (launched otherwise) are listed too.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import socket
import subprocess
import sys
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

MANIFEST = "manifest.json"
STATES = ("pending", "running", "done", "failed")
# SLURM job states (squeue %T) -> what they mean for the run; any other state is a job that has ended
SLURM_WAITING = {"PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD", "SUSPENDED", "CONFIGURING"}
SLURM_RUNNING = {"RUNNING", "COMPLETING", "SIGNALING", "STAGE_OUT", "RESIZING"}


# ---------------------------------------------------------------- the manifest

def read_manifest(sweep_dir: Path | str) -> dict:
    path = Path(sweep_dir) / MANIFEST
    return json.loads(path.read_text()) if path.exists() else {"runs": {}}


def update_manifest(sweep_dir: Path | str, runs: dict[str, dict]) -> dict:
    """Merge `runs` (name -> fields) into the manifest, atomically; returns the new manifest."""
    from .run_folder import atomic_write

    manifest = read_manifest(sweep_dir)
    for name, fields in runs.items():
        manifest["runs"].setdefault(name, {}).update(fields)
    manifest["updated"] = now()
    data = json.dumps(manifest, indent=2).encode() + b"\n"
    atomic_write(Path(sweep_dir) / MANIFEST, lambda f: f.write(data))
    return manifest


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# ---------------------------------------------------------------- jobs

def slurm_job_states(job_ids: list[str]) -> dict[str, str] | None:
    """SLURM state of each job (array tasks as `123_4`) that squeue still knows; None if squeue cannot answer."""
    if not job_ids:
        return {}
    cmd = ["squeue", "-h", "-r", "-t", "all", "-u", getpass.getuser(), "-o", "%i|%T"]
    try:
        out = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode:
        return None
    known = dict(line.split("|", 1) for line in out.stdout.splitlines() if "|" in line)
    return {job: known[job] for job in job_ids if job in known}


def pid_alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def job_activity(entries: dict[str, dict]) -> dict[str, str]:
    """name -> 'waiting' | 'running' | 'ended' for each manifest entry whose job can be asked about."""
    slurm = {name: e["job_id"] for name, e in entries.items() if e.get("launcher") == "slurm" and e.get("job_id")}
    states = slurm_job_states(sorted(set(slurm.values())))
    activity = {}
    for name, job in slurm.items():
        if states is not None:
            state = states.get(job, "GONE")
            activity[name] = "waiting" if state in SLURM_WAITING else "running" if state in SLURM_RUNNING else "ended"
    host = socket.gethostname()
    for name, e in entries.items():
        if e.get("launcher") in ("local", "local_processes") and e.get("job_id") and e.get("host") == host:
            activity[name] = "running" if pid_alive(e["job_id"]) else "ended"
    return activity


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
    if status == "done":
        state, reason = "done", None
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
    entries = read_manifest(sweep_dir)["runs"]
    if names is None:
        found = {p.parent.relative_to(sweep_dir).as_posix() for p in sweep_dir.glob("**/results.json")}
        names = sorted(set(entries) | found)
    if activity is None:
        activity = job_activity({name: entries[name] for name in names if name in entries})
    states = []
    for name in names:
        path = sweep_dir / name / "results.json"
        results = json.loads(path.read_text()) if path.exists() else None
        states.append(run_state(name, results, entries.get(name, {}), activity.get(name)))
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
    for row, s in zip(rows, [None, *states]):
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[5])
        if s is not None and s.reason:
            lines.append(" " * (widths[0] + 2) + s.reason)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jepa.sweep", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    status = commands.add_parser("status", help="each run's state: pending, running, done or failed (reason)")
    status.add_argument("sweep_dir", type=Path)
    status.add_argument("--json", action="store_true", help="one JSON object: counts and runs")
    args = parser.parse_args(argv)
    if not args.sweep_dir.is_dir():
        parser.error(f"{args.sweep_dir} is not a folder")
    states = sweep_states(args.sweep_dir)
    if args.json:
        print(json.dumps({"sweep_dir": str(args.sweep_dir), "counts": counts(states),
                          "runs": [asdict(s) for s in states]}, indent=2))
    else:
        print(f"{args.sweep_dir}: {counts_line(states)}")
        print(format_table(states))
    return 0


if __name__ == "__main__":
    sys.exit(main())
