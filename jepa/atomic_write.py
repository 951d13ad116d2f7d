"""Writing a file so that readers see the old file or the whole new one, never half of it.

Run folders, study manifests, Optuna summaries, downloaded data and the label cache all write through
`atomic_write`. Files are created readable by everyone (0644): collaborators share run folders and
data folders (JEPA_DATA_DIR) on cluster filesystems.
"""

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

FILE_MODE = 0o644


def atomic_write(path: Path, write: Callable[[BinaryIO], object], fsync: bool = True) -> None:
    """Call write(f) on a temporary file in path's folder, then rename it to `path` (mode FILE_MODE).

    The temporary file (`.<name>.<random>.tmp`) is removed when write raises.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, FILE_MODE)  # mkstemp makes 0600 files
        with os.fdopen(fd, "wb") as f:
            write(f)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
