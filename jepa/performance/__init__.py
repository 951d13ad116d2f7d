"""Runtime options a run trains with: the device, the speed options that leave the math alone, the CPU
allocator. The benchmark and the GPU check that measure them are jepa.tools."""

from .cpu_allocator import cpu_allocator
from .options import apply_speed_options

__all__ = ["apply_speed_options", "cpu_allocator"]
