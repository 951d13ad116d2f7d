"""Speed and memory options of the training config, applied in one place: `apply_speed_options`.

None of them changes the math of a training step (`training.mode=fast` does, and lives in jepa.losses).
docs/performance.md has the measurements behind each choice.

CPU memory (`training.cpu_allocator`). A batch-8 step of the published model allocates and frees gigabytes
of 20-90 MB activations. glibc serves every block over 32 MB with a fresh mmap and trims freed heap tops,
so the kernel zero-fills those pages again on every step: millions of minor page faults, half of the
reference's step time. Three answers:
- "reuse": tell glibc to keep freed memory (mallopt); no faults after the first step, but its heap
  fragments (PyTorch asks for 64-byte aligned blocks, which glibc cannot serve from a freed block of the
  same size), so peak RSS sits 30-170% above the live bytes.
- "caching": a small caching allocator for blocks of 1 MB and more (C++ below, built once with the
  system compiler, about a minute, then cached by torch), like PyTorch's CUDA allocator: freed blocks are
  kept and handed out again for requests of (nearly) the same size. No faults, peak RSS close to the live
  peak. Falls back to "reuse" when it cannot be built.
- "system": leave the allocator alone.
"""

import ctypes
import ctypes.util
import logging
from functools import cache

import torch
from omegaconf import DictConfig

from .models import DetectionHead, PixelDecoder, VideoJEPA

log = logging.getLogger("jepa")

CPU_ALLOCATORS = ("caching", "reuse", "system")

# glibc mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3

_CACHING_ALLOCATOR = r"""
#include <torch/extension.h>
#include <c10/core/CPUAllocator.h>
#include <sys/mman.h>
#include <map>
#include <mutex>
#include <unordered_map>

namespace {
constexpr size_t kLarge = 1 << 20;  // smaller requests go to the default allocator
constexpr size_t kPage = 4096;

struct CachingCPUAllocator final : c10::Allocator {
  std::mutex mutex;
  std::multimap<size_t, void*> free_blocks;      // size -> cached block, for best fit
  std::unordered_map<void*, size_t> block_size;  // every block this allocator owns
  int64_t in_use = 0, peak_in_use = 0, reserved = 0;

  static void release(void* ptr);

  c10::DataPtr allocate(size_t nbytes) override {
    if (nbytes < kLarge) return c10::GetDefaultCPUAllocator()->allocate(nbytes);
    size_t size = (nbytes + kPage - 1) / kPage * kPage;
    void* ptr = nullptr;
    std::unique_lock<std::mutex> lock(mutex);
    auto it = free_blocks.lower_bound(size);
    if (it != free_blocks.end() && it->first <= size + size / 8) {  // at most 1/8 larger than asked
      ptr = it->second;
      size = it->first;
      free_blocks.erase(it);
    } else {
      lock.unlock();
      ptr = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      TORCH_CHECK(ptr != MAP_FAILED, "caching CPU allocator: mmap of ", size, " bytes failed");
      lock.lock();
      block_size[ptr] = size;
      reserved += size;
    }
    in_use += size;
    peak_in_use = std::max(peak_in_use, in_use);
    return {ptr, ptr, &CachingCPUAllocator::release, c10::Device(c10::DeviceType::CPU)};
  }
  c10::DeleterFnPtr raw_deleter() const override { return &CachingCPUAllocator::release; }
  void copy_data(void* dest, const void* src, std::size_t count) const override {
    default_copy_data(dest, src, count);
  }
};

CachingCPUAllocator& instance() {
  static auto* allocator = new CachingCPUAllocator();  // never destroyed: tensors may outlive statics
  return *allocator;
}

void CachingCPUAllocator::release(void* ptr) {
  auto& a = instance();
  std::unique_lock<std::mutex> lock(a.mutex);
  auto found = a.block_size.find(ptr);
  if (found == a.block_size.end()) {  // a small block handed out by the default allocator
    lock.unlock();
    c10::GetDefaultCPUAllocator()->raw_deleter()(ptr);
    return;
  }
  a.free_blocks.emplace(found->second, ptr);
  a.in_use -= found->second;
}
}  // namespace

void install() { c10::SetCPUAllocator(&instance(), /*priority=*/1); }

void empty_cache() {
  auto& a = instance();
  std::lock_guard<std::mutex> lock(a.mutex);
  for (auto& [size, ptr] : a.free_blocks) {
    munmap(ptr, size);
    a.block_size.erase(ptr);
    a.reserved -= size;
  }
  a.free_blocks.clear();
}

std::vector<int64_t> stats() {  // bytes: in use, peak in use, reserved (in use + cached)
  auto& a = instance();
  std::lock_guard<std::mutex> lock(a.mutex);
  return {a.in_use, a.peak_in_use, a.reserved};
}
"""


def keep_freed_memory() -> bool:
    """glibc malloc: serve every size from the heap and never trim it. Process-wide and permanent.

    Returns False where the C library is not glibc.
    """
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, 2**30) and mallopt(_M_TRIM_THRESHOLD, -1))  # -1: never trim


@cache
def caching_allocator():
    """The compiled caching allocator's module (install, empty_cache, stats), or None if it cannot be built."""
    from torch.utils.cpp_extension import load_inline

    try:
        return load_inline("jepa_caching_cpu_allocator", _CACHING_ALLOCATOR,
                           functions=["install", "empty_cache", "stats"], extra_cflags=["-O2"])
    except Exception as exc:  # no compiler, no headers, no ninja: the run still trains
        log.warning("training.cpu_allocator=caching could not be built (%s)", exc)
        return None


def set_cpu_allocator(kind: str) -> str:
    """Apply `training.cpu_allocator` (CPU_ALLOCATORS); returns the one in effect."""
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


def apply_speed_options(model: VideoJEPA, head: DetectionHead, decoder: PixelDecoder, training: DictConfig) -> None:
    """Apply `training.{cpu_allocator, activation_checkpointing, channels_last, compile}`.

    Call after the modules are on their device and before the optimiser's first step.
    """
    set_cpu_allocator(training.cpu_allocator)  # host memory is used on CUDA too (batches, checkpoints)
    model.checkpointing = training.activation_checkpointing
    on_cuda = next(model.parameters()).device.type == "cuda"
    if on_cuda:
        torch.backends.cudnn.benchmark = True  # fixed shapes: pick the fastest convolution algorithms once
    if training.channels_last and not on_cuda:
        # No gain measured on CPU, and its oneDNN backward hung now and then in the test suite (torch 2.13).
        log.warning("training.channels_last=true is ignored on CPU (a CUDA option)")
    elif training.channels_last:
        for module in (model, head, decoder):
            module.to(memory_format=torch.channels_last)
    if training.compile:
        if not on_cuda:
            # Inductor's layout optimisation turns convolutions channels_last, whose oneDNN backward hung
            # now and then on CPU (torch 2.13, about 1 tiny compiled step in 5); keep the layout as it is.
            import torch._inductor.config as inductor_config

            inductor_config.layout_optimization = False
        # The encoder and predictor hold nearly all FLOPs; compiling the small heads is not worth its time.
        model.encoder.compile()
        model.predictor.compile()
