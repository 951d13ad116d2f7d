"""Speed and memory: the training options that leave the math alone, the CPU allocator, the benchmark
against the literal reference (`python -m jepa.performance.bench`)."""

from .cpu_allocator import CPU_ALLOCATORS, cpu_allocator
from .options import apply_speed_options

__all__ = ["CPU_ALLOCATORS", "apply_speed_options", "cpu_allocator"]
