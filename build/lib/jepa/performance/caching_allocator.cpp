// A caching CPU allocator for torch (training.cpu_allocator=caching): freed blocks of 1 MiB and more are
// kept and handed out again, as PyTorch's CUDA allocator does. Built once by jepa/performance/cpu_allocator.py.
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

c10::Allocator* previous = nullptr;

void install() {
  if (previous == nullptr) previous = c10::GetCPUAllocator();
  c10::SetCPUAllocator(&instance(), /*priority=*/1);
}

void uninstall() {  // blocks handed out stay valid: each one's deleter is this allocator's release()
  if (previous != nullptr) c10::SetCPUAllocator(previous, /*priority=*/1);
  previous = nullptr;
}

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
