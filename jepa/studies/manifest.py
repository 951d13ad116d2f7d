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


class ManifestError(ValueError):
    """manifest.json cannot be read or has not the shape above; the message names the file and the way out."""


def read_manifest(sweep_dir: Path | str) -> dict:
    path = Path(sweep_dir) / MANIFEST
    if not path.exists():
        return {"runs": {}}
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError(_unreadable(path, f"{type(exc).__name__}: {exc}")) from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("runs"), dict):
        raise ManifestError(_unreadable(path, 'not an object with a "runs" object'))
    for name, entry in manifest["runs"].items():
        if not isinstance(entry, dict):
            raise ManifestError(_unreadable(path, f"run {name!r} is a JSON {type(entry).__name__}, not an object"))
        if entry.get("job_id") is not None:
            entry["job_id"] = str(entry["job_id"])
    return manifest


def _unreadable(path: Path, why: str) -> str:
    return (f"{path} is unreadable ({why}): move it aside; the run folders keep every result, and relaunching "
            "the sweep writes a new manifest")


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
