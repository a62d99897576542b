// A caching allocator for large host buffers. A fresh multi-megabyte buffer from
// malloc is new mmap'd memory, and its first write page-faults every 4 KiB page:
// on these machines a 64 MB output costs 13-17 ms of faults, more than most
// kernels take. Freed blocks of 1 MiB and more are kept here, keyed by their
// size rounded up to 64 KiB, and handed out again to the next request of that
// size class (training loops allocate the same shapes every step). Smaller
// requests go straight to malloc, whose own free lists already reuse them.
#include "host_cache.h"

#include <malloc.h>
#include <sys/mman.h>

#include <cstdlib>
#include <cstdint>
#include <cstring>

namespace tg {
namespace cpu {

namespace {
constexpr size_t kMinCached = size_t{1} << 20;  // smaller blocks: plain malloc
constexpr size_t kGranule = size_t{64} << 10;   // size classes: multiples of 64 KiB
constexpr size_t kHugeAdvise = size_t{4} << 20;  // NumPy advises huge pages from 4 MiB on too
constexpr size_t kAlign = 64;

size_t size_class(size_t bytes) { return (bytes + kGranule - 1) / kGranule * kGranule; }
}  // namespace

HostCache::~HostCache() { release(); }

void* HostCache::allocate(size_t bytes) {
  if (bytes < kMinCached) return std::malloc(bytes == 0 ? 1 : bytes);
  const size_t cls = size_class(bytes);
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = free_.find(cls);
    if (it != free_.end() && !it->second.empty()) {
      void* p = it->second.back();
      it->second.pop_back();
      cached_bytes_ -= cls;
      live_[p] = cls;
      ++hits_;
      return p;
    }
    ++misses_;
  }
  void* p = nullptr;
  if (posix_memalign(&p, kAlign, cls) != 0) {
    release();  // out of memory: give the cached blocks back and try once more
    if (posix_memalign(&p, kAlign, cls) != 0) return nullptr;
  }
#ifdef MADV_HUGEPAGE
  if (cls >= kHugeAdvise) {
    // On the whole pages inside the block (madvise needs a page-aligned start).
    const uintptr_t page = 4096;
    const uintptr_t start = (reinterpret_cast<uintptr_t>(p) + page - 1) / page * page;
    const uintptr_t end = (reinterpret_cast<uintptr_t>(p) + cls) / page * page;
    if (end > start) madvise(reinterpret_cast<void*>(start), end - start, MADV_HUGEPAGE);
  }
#endif
  std::lock_guard<std::mutex> lock(mu_);
  live_[p] = cls;
  return p;
}

void HostCache::deallocate(void* p) {
  if (p == nullptr) return;
  std::unique_lock<std::mutex> lock(mu_);
  auto it = live_.find(p);
  if (it == live_.end()) {  // a small block from malloc
    lock.unlock();
    std::free(p);
    return;
  }
  const size_t cls = it->second;
  live_.erase(it);
  if (cached_bytes_ + cls > limit_) {
    lock.unlock();
    std::free(p);
    return;
  }
  free_[cls].push_back(p);
  cached_bytes_ += cls;
}

void* HostCache::reallocate(void* p, size_t bytes) {
  if (p == nullptr) return allocate(bytes);
  size_t old_cls = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = live_.find(p);
    if (it != live_.end()) old_cls = it->second;
  }
  if (old_cls == 0 && bytes < kMinCached) return std::realloc(p, bytes == 0 ? 1 : bytes);
  if (old_cls != 0 && size_class(bytes) == old_cls) return p;  // still fits its block
  void* q = allocate(bytes);
  if (q == nullptr) return nullptr;  // p stays valid, as realloc promises
  // (a small block's size is not recorded: malloc knows how much it holds)
  const size_t old_size = old_cls != 0 ? old_cls : malloc_usable_size(p);
  std::memcpy(q, p, old_size < bytes ? old_size : bytes);
  deallocate(p);
  return q;
}

void HostCache::release() {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& kv : free_) {
    for (void* p : kv.second) std::free(p);
  }
  free_.clear();
  cached_bytes_ = 0;
}

void HostCache::set_limit(size_t bytes) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    limit_ = bytes;
  }
  if (cached_bytes() > bytes) release();
}

HostCache::Stats HostCache::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  Stats s;
  s.cached_bytes = cached_bytes_;
  s.limit_bytes = limit_;
  s.hits = hits_;
  s.misses = misses_;
  for (const auto& kv : live_) s.live_bytes += kv.second;
  return s;
}

size_t HostCache::cached_bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return cached_bytes_;
}

HostCache& host_cache() {
  static HostCache* cache = new HostCache();  // never destroyed: NumPy may free at exit
  return *cache;
}

}  // namespace cpu
}  // namespace tg
