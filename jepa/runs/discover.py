"""Finding run folders: any folder holding config.yaml and metrics.jsonl or results.json.

The search never descends into a run folder, nor into the folders tools keep beside runs (an Optuna
study's optuna/, wandb's files, checkpoints). Used by the analysis, the wandb replay and `jepa.studies`.
"""

import os
import re
from collections.abc import Iterable
from pathlib import Path

from .folder import CONFIG, METRICS, RESULTS

SKIP_DIRS = frozenset({".hydra", "wandb", "wandb_replay", "checkpoints", "optuna", "__pycache__", ".git"})


def is_run_folder(path: Path) -> bool:
    return (path / CONFIG).is_file() and ((path / METRICS).is_file() or (path / RESULTS).is_file())


def find_run_folders(roots: Iterable[Path | str], skip: Iterable[Path | str] = ()) -> list[Path]:
    """Run folders at or under `roots`, each once, in natural order (run_2 before run_10).

    `skip`: folders not to search (a report folder written inside a sweep folder).
    """
    skip = {Path(s).resolve() for s in skip}
    found: set[Path] = set()
    for root in map(Path, roots):
        for folder, subfolders, files in os.walk(root):
            if CONFIG in files and (METRICS in files or RESULTS in files):
                found.add(Path(folder))
                subfolders.clear()
                continue
            subfolders[:] = [d for d in subfolders if d not in SKIP_DIRS and Path(folder, d).resolve() not in skip]
    return sorted(found, key=natural_order)


def runs_problem(roots: Iterable[Path | str]) -> str | None:
    """Why a tool given `roots` has nothing to read: the first that is not a folder or holds no run folder."""
    for root in map(Path, roots):
        if not root.is_dir():
            return f"{root} is not a folder: give sweep folders (or run folders)"
        if not find_run_folders([root]):
            return f"{root} holds no run folder ({CONFIG} with {METRICS} or {RESULTS})"
    return None


def natural_order(path: Path) -> list:
    """Sort key in which digit runs compare as numbers (re.split keeps text and numbers alternating)."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", str(path))]
