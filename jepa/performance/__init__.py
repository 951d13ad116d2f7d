"""Speed and memory: the training options that leave the math alone, the CPU allocator, the benchmark
against the literal reference (`python -m jepa.performance.bench`), and the one-shot GPU check
(`python -m jepa.performance.gpu_check --out DIR`)."""

from .cpu_allocator import cpu_allocator
from .options import apply_speed_options

__all__ = ["apply_speed_options", "cpu_allocator"]
