"""A study folder's manifest.json: every run of the sweep, with the job that runs it.

    {"runs": {"<run folder name>": {"overrides": [...], "launcher": "slurm", "job_id": "1234_5",
                                     "host": "login1", "submitted": "<ISO time>", "log": "<job's stderr>"}},
     "updated": "<ISO time>"}

The study launchers (jepa.studies.launchers) write it; `python -m jepa.studies status` reads it.
"""

import json
from datetime import datetime, timezone
from pathlib import Path

from ..atomic_write import atomic_write

MANIFEST = "manifest.json"


def read_manifest(sweep_dir: Path | str) -> dict:
    path = Path(sweep_dir) / MANIFEST
    return json.loads(path.read_text()) if path.exists() else {"runs": {}}


def update_manifest(sweep_dir: Path | str, runs: dict[str, dict]) -> dict:
    """Merge `runs` (name -> fields) into the manifest, atomically; returns the new manifest."""
    manifest = read_manifest(sweep_dir)
    for name, fields in runs.items():
        manifest["runs"].setdefault(name, {}).update(fields)
    manifest["updated"] = now()
    data = json.dumps(manifest, indent=2).encode() + b"\n"
    atomic_write(Path(sweep_dir) / MANIFEST, lambda f: f.write(data))
    return manifest


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
