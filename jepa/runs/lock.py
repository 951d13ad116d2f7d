"""One trainer per run folder: the lock file `.lock` (protocol in docs/run_folder.md).

    take     create `.lock` with O_CREAT | O_EXCL (atomic on local and NFS v3+ file systems), holding the
             holder's host, pid, start time, job (the SLURM or submitit job it runs in, if any) and a random
             token;
    hold     a thread touches the file every HEARTBEAT_S seconds (its mtime is the heartbeat);
    release  delete it, if it still holds our token;
    stale    the holder's pid is dead on this host, or its heartbeat is older than STALE_S (any host: a
             process on another node sharing the file system, or a reused pid); a stale lock is broken by
             renaming it to a unique name (only one breaker can win the rename) and taking it again.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

log = logging.getLogger(__name__)

LOCK = ".lock"
HEARTBEAT_S = 15.0
STALE_S = 120.0  # several missed heartbeats, with room for clock skew between nodes


class RunLocked(RuntimeError):
    """The run folder is held by another live process: it was not touched."""

    def __init__(self, path: Path, holder: dict):
        self.path, self.holder = path, holder
        super().__init__(f"{path} is being trained by another process ({describe(holder)}): not started; "
                         f"if that process is gone, its lock expires {STALE_S:.0f} s after its last heartbeat")


def describe(holder: dict) -> str:
    job = f"job {holder['job']}, " if holder.get("job") else ""
    return f"{job}pid {holder.get('pid')} on {holder.get('host')}, since {holder.get('started')}"


def current_job() -> str | None:
    """The job this process runs in, named as the manifest and squeue name it: a submitit job (a SLURM array
    task `1234_5`, a local_processes job's controller pid), else a plain SLURM job or array task; None outside
    a job."""
    if os.environ.get("SUBMITIT_EXECUTOR"):
        import submitit  # noqa: I001  (only inside a job: a plain start does not pay for the import)

        try:
            return str(submitit.JobEnvironment().job_id)
        except Exception:  # noqa: BLE001  (an executor submitit does not know: name the job as SLURM would)
            pass
    return slurm_job()


def slurm_job() -> str | None:
    """The SLURM job or array task (`1234_5`) this process runs in, from SLURM's environment; None outside."""
    array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    return f"{array}_{task}" if array and task else os.environ.get("SLURM_JOB_ID")


def pid_alive(pid: int | str) -> bool:
    """Whether process `pid` exists on this host (lock holders, local jobs, search workers)."""
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, OverflowError, ValueError, TypeError):
        return False  # gone, or not a pid at all
    except PermissionError:
        return True  # alive, another user's
    return True


def read_holder(folder: Path) -> tuple[dict, float] | None:
    """The lock's content and heartbeat age in seconds; None when unlocked. Unreadable content reads as {}."""
    path = Path(folder) / LOCK
    try:
        age = time.time() - path.stat().st_mtime
        text = path.read_text()
    except FileNotFoundError:
        return None
    try:
        holder = json.loads(text)
    except ValueError:
        holder = {}
    return (holder if isinstance(holder, dict) else {}), age


def is_stale(holder: dict, age: float) -> bool:
    if age > STALE_S:
        return True
    if holder.get("host") == socket.gethostname():
        return not pid_alive(holder.get("pid"))
    return False  # another host's holder (or half-written content) with a fresh heartbeat


def live_holder(folder: Path) -> dict | None:
    """Who holds the folder's lock, when a live process does (launchers skip such a run)."""
    found = read_holder(folder)
    if found is None or is_stale(*found):
        return None
    return found[0]


@dataclass
class RunLock:
    folder: Path
    token: str = ""
    _stop: threading.Event | None = None
    _thread: threading.Thread | None = None

    @property
    def path(self) -> Path:
        return Path(self.folder) / LOCK

    def acquire(self) -> RunLock:
        """Take the lock or raise RunLocked; breaks a stale lock (logged)."""
        me = {"host": socket.gethostname(), "pid": os.getpid(),
              "started": datetime.now(timezone.utc).isoformat(timespec="seconds"), "job": current_job(),
              "token": uuid.uuid4().hex}
        for _ in range(5):
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                found = read_holder(self.folder)
                if found is None:
                    continue  # released meanwhile
                holder, age = found
                if not is_stale(holder, age):
                    raise RunLocked(self.folder, holder) from None
                self._break(holder, age)
                continue
            with os.fdopen(fd, "w") as f:
                json.dump(me, f)
            self.token = me["token"]
            self._start_heartbeat()
            return self
        raise RunLocked(self.folder, (read_holder(self.folder) or ({}, 0))[0])

    def _break(self, holder: dict, age: float) -> None:
        aside = self.path.with_name(f"{LOCK}.stale.{uuid.uuid4().hex}")
        try:
            os.rename(self.path, aside)  # one breaker wins; the others find the lock gone or fresh
        except FileNotFoundError:
            return
        try:
            taken = json.loads(aside.read_text())
        except (OSError, ValueError):
            taken = {}
        if isinstance(taken, dict) and holder.get("token") and taken.get("token") != holder.get("token"):
            # Another starter broke the stale lock and took a fresh one between our read and our rename: put it back.
            try:
                os.link(aside, self.path)
            except FileExistsError:
                pass
        else:
            log.warning("%s: broke a stale lock (%s, heartbeat %.0f s ago)", self.folder, describe(holder), age)
        aside.unlink(missing_ok=True)

    def _start_heartbeat(self) -> None:
        self._stop = threading.Event()

        def beat(stop=self._stop, path=self.path):
            while not stop.wait(HEARTBEAT_S):
                try:
                    os.utime(path)
                except OSError:
                    pass

        self._thread = threading.Thread(target=beat, name=f"lock-heartbeat {self.folder}", daemon=True)
        self._thread.start()

    def release(self) -> None:
        if self._stop is not None:
            self._stop.set()
            self._thread.join(timeout=5)
            self._stop = None
        found = read_holder(self.folder)
        if found is not None and found[0].get("token") == self.token:
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
