"""`training.cpu_allocator`: how host memory is managed while a run trains.

A batch-8 step of the published model allocates and frees gigabytes of 20-90 MB activations. glibc serves
every block over 32 MB with a fresh mmap and trims freed heap tops, so the kernel zero-fills those pages
again on every step: millions of minor page faults, half of the reference's step time on a CPU.
- "reuse": glibc keeps freed memory (mallopt); no faults after the first step, but its heap fragments, so
  peak RSS sits 30-170% above the live bytes.
- "caching": a small caching allocator for blocks of 1 MiB and more (caching_allocator.cpp, built once with
  the system compiler and ninja, about a minute, then cached by torch): freed blocks are handed out again
  for requests of (nearly) the same size. No faults, peak RSS close to the live peak. Falls back to
  "reuse" when it cannot be built.
- "system": leave the allocator alone.

Debian's jemalloc and tcmalloc (libjemalloc2, libtcmalloc-minimal4) replace malloc for a whole process
through LD_PRELOAD, so they can only be chosen where the process starts: the benchmark's `jemalloc` and
`tcmalloc` modes (jepa.tools.bench) start their process so (preload_library); docs/performance.md compares
them with the modes above.

The choice holds while a run trains (`cpu_allocator(kind)` is a context manager): launchers, Optuna
workers and test processes get the C library's allocator back afterwards.
"""

import ctypes
import ctypes.util
import glob
import logging
from contextlib import contextmanager
from functools import cache
from pathlib import Path

log = logging.getLogger("jepa")

SOURCE = Path(__file__).with_name("caching_allocator.cpp")

# malloc replacements loaded with LD_PRELOAD: their shared libraries, preferred first
PRELOAD_LIBRARIES = {"jemalloc": ("libjemalloc.so.2",), "tcmalloc": ("libtcmalloc_minimal.so.4", "libtcmalloc.so.4")}
LIBRARY_DIRS = ("/usr/lib/*-linux-gnu", "/usr/lib64", "/usr/lib", "/usr/local/lib", "/lib/*-linux-gnu")


def preload_library(kind: str) -> str | None:
    """The path of the installed library of a PRELOAD_LIBRARIES kind (for LD_PRELOAD), or None."""
    for name in PRELOAD_LIBRARIES[kind]:
        for folder in LIBRARY_DIRS:
            if found := sorted(glob.glob(f"{folder}/{name}")):
                return found[0]
    return None


# glibc mallopt parameters (malloc.h) and their documented defaults.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_GLIBC_DEFAULT_THRESHOLD = 128 * 1024


def _libc():
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")


def _mallopt():
    try:
        mallopt = _libc().mallopt
    except (OSError, AttributeError):
        return None
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return mallopt


def keep_freed_memory(keep: bool = True) -> bool:
    """glibc malloc: serve every size from the heap and never trim it (keep), or back to glibc's default
    thresholds (not keep). Returns False where the C library is not glibc."""
    mallopt = _mallopt()
    if mallopt is None:
        return False
    if keep:
        return bool(mallopt(_M_MMAP_THRESHOLD, 2**30) and mallopt(_M_TRIM_THRESHOLD, -1))  # -1: never trim
    restored = bool(mallopt(_M_MMAP_THRESHOLD, _GLIBC_DEFAULT_THRESHOLD)
                    and mallopt(_M_TRIM_THRESHOLD, _GLIBC_DEFAULT_THRESHOLD))
    _libc().malloc_trim(0)  # give back what the kept heap holds, wherever it lies in the heap
    return restored


@cache
def caching_allocator():
    """The compiled caching allocator (install, uninstall, empty_cache, stats), or None if it cannot be built."""
    from torch.utils.cpp_extension import load_inline  # needs g++ and ninja: only when this allocator is asked for

    try:
        return load_inline("jepa_caching_cpu_allocator", SOURCE.read_text(),
                           functions=["install", "uninstall", "empty_cache", "stats"], extra_cflags=["-O2"])
    except Exception as exc:  # no compiler, no headers, no ninja: the run still trains
        log.warning("training.cpu_allocator=caching could not be built (%s)", exc)
        return None


def set_cpu_allocator(kind: str) -> str:
    """Apply `kind` (jepa.config.schema.CPU_ALLOCATORS) until reset_cpu_allocator; returns the one in effect."""
    if kind == "caching":
        module = caching_allocator()
        if module is not None:
            module.install()
            return "caching"
        kind = "reuse"
    if kind == "reuse" and not keep_freed_memory():
        log.warning("training.cpu_allocator=reuse: not glibc, the allocator is left as it is")
        return "system"
    return kind


def reset_cpu_allocator(kind: str) -> None:
    """Undo set_cpu_allocator's `kind` (the value it returned): torch's and glibc's defaults again."""
    if kind == "caching":
        caching_allocator().uninstall()
        keep_freed_memory(False)  # caching's fallback may have set it earlier in this process
    elif kind == "reuse":
        keep_freed_memory(False)


@contextmanager
def cpu_allocator(kind: str):
    """`kind` while the block runs; yields the allocator in effect."""
    applied = set_cpu_allocator(kind)
    try:
        yield applied
    finally:
        reset_cpu_allocator(applied)
