"""A real one-node SLURM cluster on localhost, started and stopped by the test suite.

Everything lives in one private temp dir: its own munged (own key, own socket), slurmctld and slurmd
in the foreground (`-D`) as children of this process, on free ports, configured through `SLURM_CONF`.
Nothing global is read or written (no /etc/slurm, no /etc/munge, no system munged), and `stop()`
ends exactly the processes `start()` spawned, by pid. The user running the tests is SlurmUser and
runs every daemon and job: root works, and so does an ordinary user.

Without slurmdbd the real `sacct` fails, and submitit would then never notice a job that died
without writing its result; `bin/sacct` stands in for it (see there), so `env` puts `bin/` first
on PATH.
"""

import atexit
import contextlib
import ctypes
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

BIN = Path(__file__).with_name("bin")
PARTITION = "debug"
TOOLS = ("munged", "mungekey", "slurmctld", "slurmd", "sbatch", "squeue", "srun", "scontrol")
SBIN_PATH = os.pathsep.join((os.environ.get("PATH", ""), "/usr/local/sbin", "/usr/sbin", "/sbin"))

SLURM_CONF = """\
ClusterName=localtest
SlurmctldHost={node}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser={user}
SlurmdUser={user}
# our own munged; a requeued job waits cred_expire (default 120 s) before it may start again
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={root}/munge/munge.sock,cred_expire={cred_expire_s}
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd.log
MailProg=/bin/true
MpiDefault=none
# the cgroup plugins fail in containers and VMs without a delegated cgroup tree
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
# by default the scheduler wakes every 60 s (main) / 30 s (backfill): a requeued job would idle that long
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1,bf_interval=1
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# a job without --mem would otherwise hold all the node's memory and run alone
DefMemPerCPU={mem_per_cpu}
# finished jobs stay visible to `squeue -t all`, which is all bin/sacct has to go on
MinJobAge=86400
KillWait=2
JobRequeue=1
MessageTimeout=5
ReturnToService=2
# RealMemory above what `slurmd -C` measures puts the node in state INVAL
NodeName={node} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory_mb} State=UNKNOWN
PartitionName={partition} Nodes={node} Default=YES MaxTime=INFINITE State=UP
"""


# Linux only, like SLURM (None elsewhere, so that importing this module works everywhere); looked up
# here so that the forked child only makes the call
_prctl = getattr(ctypes.CDLL(None, use_errno=True), "prctl", None)
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Run in each daemon before exec: SIGTERM it when the test process dies, even by SIGKILL."""
    _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _tool(name: str) -> str | None:
    """Where `name` is; the daemons live in /usr/sbin, which an ordinary user's PATH may lack."""
    return shutil.which(name, path=SBIN_PATH)


def slurm_installed() -> bool:
    return all(_tool(name) for name in TOOLS)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def _measured_memory_mb() -> int:
    line = subprocess.run([_tool("slurmd"), "-C"], capture_output=True, text=True, check=True).stdout
    fields = dict(pair.split("=", 1) for pair in line.split() if "=" in pair)
    return int(fields["RealMemory"])


class LocalSlurm:
    """munged + slurmctld + slurmd on this machine: one node, one default partition `debug`.

    with LocalSlurm() as cluster:
        subprocess.run(["sbatch", "--wrap", "true"], env={**os.environ, **cluster.env})
    """

    partition = PARTITION

    def __init__(self, cred_expire_s: int = 10, timeout_s: float = 30.0):
        self.cred_expire_s = cred_expire_s
        self.timeout_s = timeout_s  # for each wait in start() and stop()
        self.node = socket.gethostname().split(".")[0]  # `hostname -s`
        self.cpus = len(os.sched_getaffinity(0))  # `nproc`
        self.root: Path | None = None
        self._procs: dict[str, subprocess.Popen] = {}  # in start order

    @property
    def conf(self) -> Path:
        return self.root / "slurm.conf"

    @property
    def env(self) -> dict[str, str]:
        """What the tests' environment needs: our slurm.conf, and bin/sacct before the real one."""
        return {"SLURM_CONF": str(self.conf), "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}

    def start(self) -> "LocalSlurm":
        # munged wants every directory above its socket world-executable: pytest's tmp dirs are not
        self.root = Path(tempfile.mkdtemp(prefix="localslurm-"))
        self.root.chmod(0o755)
        for sub in ("munge", "state", "spool", "log"):
            (self.root / sub).mkdir(mode=0o755)
        atexit.register(self.stop)
        try:
            self._start_munged()
            self._write_conf()
            self._spawn("slurmctld", "-D")
            self._spawn("slurmd", "-D", "-N", self.node)
            self._wait_until(self._node_idle, f"node {self.node} idle")
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Cancel every job, end the daemons we started (SIGTERM, then SIGKILL), remove the temp dir."""
        if self.root is None:
            return
        if self._alive("slurmctld"):
            with contextlib.suppress(Exception):  # ending the daemons matters more
                self._cancel_all_jobs()
        for name in reversed(list(self._procs)):
            proc = self._procs.pop(name)
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=self.timeout_s)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        shutil.rmtree(self.root, ignore_errors=True)
        self.root = None
        atexit.unregister(self.stop)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def run(self, *args: str, check: bool = True) -> str:
        """Run a SLURM command (squeue, scontrol, ...) against this cluster; returns its stdout."""
        done = subprocess.run(
            args, check=False, env={**os.environ, **self.env}, capture_output=True, text=True, timeout=30
        )
        if check and done.returncode:
            raise RuntimeError(f"{' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
        return done.stdout

    def log_tail(self, lines: int = 30) -> str:
        """The end of each daemon's log, for failure messages."""
        logs = sorted((self.root / "log").iterdir()) if self.root else []
        return "\n".join(
            f"== {log.name}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) for log in logs
        )

    def _start_munged(self) -> None:
        munge = self.root / "munge"
        subprocess.run([_tool("mungekey"), "--create", f"--keyfile={munge / 'munge.key'}"], check=True)
        self._spawn(
            "munged",
            "--foreground",
            f"--socket={munge / 'munge.sock'}",
            f"--key-file={munge / 'munge.key'}",
            f"--pid-file={munge / 'munged.pid'}",
            f"--seed-file={munge / 'munged.seed'}",
            f"--log-file={self.root / 'log' / 'munged.log'}",
        )
        self._wait_until((munge / "munge.sock").exists, "munged's socket")

    def _write_conf(self) -> None:
        measured = _measured_memory_mb()
        memory_mb = measured - max(256, measured // 10)
        self.conf.write_text(
            SLURM_CONF.format(
                root=self.root,
                user=pwd.getpwuid(os.geteuid()).pw_name,
                node=self.node,
                cpus=self.cpus,
                memory_mb=memory_mb,
                mem_per_cpu=min(1024, memory_mb // self.cpus),
                partition=self.partition,
                ctld_port=_free_port(),
                slurmd_port=_free_port(),
                cred_expire_s=self.cred_expire_s,
            )
        )

    def _spawn(self, name: str, *args: str) -> None:
        with open(self.root / "log" / f"{name}.out", "wb") as out:
            self._procs[name] = subprocess.Popen(
                [_tool(name), *args],
                env={**os.environ, **self.env},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,  # noqa: PLW1509 (it only calls prctl)
            )

    def _alive(self, name: str) -> bool:
        return name in self._procs and self._procs[name].poll() is None

    def _node_idle(self) -> bool:
        return self.run("sinfo", "-h", "-n", self.node, "-o", "%t", check=False).split() == ["idle"]

    def _cancel_all_jobs(self) -> None:
        def job_ids() -> set[str]:
            return set(self.run("squeue", "-h", "-o", "%F", check=False).split())

        running = job_ids()
        if running:
            self.run("scancel", *running, check=False)
            self._wait_until(lambda: not job_ids(), "all jobs cancelled")

    def _wait_until(self, ready, what: str) -> None:
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            dead = [name for name in self._procs if not self._alive(name)]
            if dead:
                raise RuntimeError(f"{', '.join(dead)} exited while waiting for {what}\n{self.log_tail()}")
            if ready():
                return
            time.sleep(0.2)
        raise TimeoutError(f"no {what} after {self.timeout_s:.0f} s\n{self.log_tail()}")
