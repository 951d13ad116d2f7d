"""Fetching a data file so that a half-written download is never mistaken for the real thing."""
import http.client
import logging
import shutil
import urllib.request
from pathlib import Path

from jepa.atomic_write import atomic_write

log = logging.getLogger(__name__)
TIMEOUT_S = 30  # per connection attempt: an offline cluster node fails fast instead of hanging


def fetch(url: str, dest: Path) -> None:
    """Download `url` to `dest` through a temporary file in the same folder, renamed only once complete.

    Raises OSError (urllib's URLError is one) on any failure; the temporary file is removed.
    """
    log.info("downloading %s -> %s", url, dest)
    with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
        # atomic: concurrent runs see either no file or the whole file, readable by collaborators
        atomic_write(dest, lambda out: shutil.copyfileobj(response, out, length=1 << 20))


def fetch_first(candidates: list[tuple[str, Path]]) -> Path:
    """Try (url, dest) pairs in order; return the first dest fetched. Raises OSError listing every failure."""
    errors = []
    for url, dest in candidates:
        try:
            fetch(url, dest)
            return dest
        except (OSError, ValueError, http.client.HTTPException) as e:  # ValueError: malformed URL
            errors.append(f"{url}: {e}")
    raise OSError("; ".join(errors))
