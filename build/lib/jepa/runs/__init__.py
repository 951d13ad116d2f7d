"""The run folder: the unit every tool reads (docs/run_folder.md). Its files, statuses and discovery."""

from .discover import find_run_folders, is_run_folder
from .folder import RunFolder, atomic_write, read_metrics
from .status import DONE, FAILED, PRUNED, RUNNING, STATUSES, exit_code, is_done

__all__ = ["DONE", "FAILED", "PRUNED", "RUNNING", "STATUSES", "RunFolder", "atomic_write", "exit_code",
           "find_run_folders", "is_done", "is_run_folder", "read_metrics"]
