"""Whether a run's job is waiting, running or has ended: SLURM's queue, or the process on this host."""

import getpass
import socket
import subprocess

from ..runs.lock import pid_alive

# SLURM job states (squeue %T) -> what they mean for the run; any other state is a job that has ended
SLURM_WAITING = {"PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD", "SUSPENDED", "CONFIGURING"}
SLURM_RUNNING = {"RUNNING", "COMPLETING", "SIGNALING", "STAGE_OUT", "RESIZING"}


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
