"""Fetching a data file so that a half-written download is never mistaken for the real thing."""
import hashlib
import http.client
import logging
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path

from jepa.atomic_write import atomic_write

log = logging.getLogger(__name__)
TIMEOUT_S = 30  # per connection attempt: an offline cluster node fails fast instead of hanging


CHUNK = 1 << 22


def stream_digests(chunks: Iterable[bytes]) -> dict[str, str]:
    """{'md5': ..., 'sha256': ...} of the bytes in `chunks`, in one pass."""
    md5, sha256 = hashlib.md5(usedforsecurity=False), hashlib.sha256()
    for chunk in chunks:
        md5.update(chunk)
        sha256.update(chunk)
    return {"md5": md5.hexdigest(), "sha256": sha256.hexdigest()}


def fetch(url: str, dest: Path, check: Callable[[dict[str, str]], None] | None = None) -> dict[str, str]:
    """Download `url` to `dest` through a temporary file in the same folder, renamed only once complete and
    accepted: `check` gets its digests (`stream_digests`, computed as it streams in) and raises to refuse it. Returns
    the digests.

    Raises OSError (urllib's URLError is one) on any failure, or what `check` raises; the temporary file is
    removed.
    """
    log.info("downloading %s -> %s", url, dest)
    found = {}

    def write(out) -> None:
        def chunks():
            while chunk := response.read(CHUNK):
                out.write(chunk)
                yield chunk

        found.update(stream_digests(chunks()))
        if check is not None:
            check(found)

    with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
        # atomic: concurrent runs see either no file or the whole, accepted file, readable by collaborators
        atomic_write(dest, write)
    return found


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
