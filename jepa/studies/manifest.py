"""A study folder's manifest.json: every run of the sweep, with the job that runs it.

    {"runs": {"<run folder name>": {"overrides": [...], "launcher": "slurm", "job_id": "1234_5",
                                     "host": "login1", "submitted": "<ISO time>", "log": "<job's stderr>"}},
     "updated": "<ISO time>"}

The study launchers (jepa.studies.launchers) write it; `python -m jepa.studies status` reads it.

Launchers of one sweep folder take turns through `manifest_lock`: a launcher decides which runs it launches,
launches them and records their jobs while holding it, so a second copy of the sweep sees the first one's jobs
and never records its own over them.
"""

import fcntl
import json
import logging
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from ..atomic_write import atomic_write

MANIFEST = "manifest.json"
MANIFEST_LOCK = ".manifest.lock"

log = logging.getLogger(__name__)
_held: dict[Path, int] = {}  # lock file -> the thread holding it in this process (a holder may take it again)


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
    """Merge `runs` (name -> fields) into the manifest, atomically and under its lock (no update of another
    launcher is lost); returns the new manifest."""
    with manifest_lock(sweep_dir):
        manifest = read_manifest(sweep_dir)
        for name, fields in runs.items():
            manifest["runs"].setdefault(name, {}).update(fields)
        manifest["updated"] = now()
        data = json.dumps(manifest, indent=2).encode() + b"\n"
        atomic_write(Path(sweep_dir) / MANIFEST, lambda f: f.write(data))
    return manifest


@contextmanager
def manifest_lock(sweep_dir: Path | str) -> Iterator[None]:
    """Hold the sweep folder's manifest lock (waiting for another launcher that holds it; logged).

    An exclusive flock on SWEEP_DIR/.manifest.lock: the kernel (or the NFS lock manager) releases it when its
    holder dies, so it is never stale. The holder deletes the file before unlocking, and a waiter that then
    finds the path gone or replaced tries again: the folder keeps no lock file between launches. The thread
    that holds it may take it again (update_manifest inside a launcher's turn)."""
    path = Path(sweep_dir).resolve() / MANIFEST_LOCK
    if _held.get(path) == threading.get_ident():
        yield
        return
    fd = _take(path)
    _held[path] = threading.get_ident()
    try:
        yield
    finally:
        del _held[path]
        path.unlink(missing_ok=True)
        os.close(fd)  # unlocks


def _take(path: Path) -> int:
    """Open and flock the lock file; returns its descriptor once the locked file is still the one at `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    told = False
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if not told:
                    log.warning("%s: waiting for another launcher of this sweep (%s) to record its runs",
                                path.parent, _holder(path))
                    told = True
                fcntl.flock(fd, fcntl.LOCK_EX)
            if os.fstat(fd).st_ino == _inode(path):
                os.ftruncate(fd, 0)
                os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}, since {now()}\n".encode())
                return fd
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)  # its holder deleted it meanwhile: take the new one


def _inode(path: Path) -> int | None:
    try:
        return path.stat().st_ino
    except FileNotFoundError:
        return None


def _holder(path: Path) -> str:
    try:
        return path.read_text().strip() or "starting"
    except OSError:
        return "gone"


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
