"""The run folder: the unit every tool reads (docs/run_folder.md). Its files, statuses, lock and discovery."""

from .discover import find_run_folders, is_run_folder, runs_problem
from .folder import (
           CheckpointError,
           DiskFull,
           RunFolder,
           RunFolderError,
           atomic_write,
           folder_state,
           is_disk_full,
           read_metrics,
           results_problem,
)
from .lock import RunLock, RunLocked, live_holder
from .status import DONE, FAILED, INVALID, PRUNED, RUNNING, STATUSES, exit_code, is_done

__all__ = ["DONE", "FAILED", "INVALID", "PRUNED", "RUNNING", "STATUSES", "CheckpointError", "DiskFull", "RunFolder",
           "RunFolderError", "RunLock", "RunLocked", "atomic_write", "exit_code", "find_run_folders", "folder_state",
           "is_disk_full", "is_done", "is_run_folder",
           "live_holder", "read_metrics", "results_problem", "runs_problem"]
