// The host caching allocator (host_cache.cpp): blocks of 1 MiB and more are kept
// after they are freed, up to a limit, and reused for requests of the same size
// class; smaller ones are plain malloc/free. Thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace tg {
namespace cpu {

class HostCache {
 public:
  struct Stats {
    size_t cached_bytes = 0;  // freed blocks held for reuse
    size_t live_bytes = 0;    // blocks of cached size classes in use
    size_t limit_bytes = 0;
    uint64_t hits = 0, misses = 0;  // large requests served from the cache / from malloc
  };

  ~HostCache();
  void* allocate(size_t bytes);  // nullptr when out of memory
  void deallocate(void* p);
  void* reallocate(void* p, size_t bytes);
  void release();  // frees every cached block
  void set_limit(size_t bytes);
  Stats stats() const;

 private:
  size_t cached_bytes() const;

  mutable std::mutex mu_;
  std::unordered_map<size_t, std::vector<void*>> free_;  // size class -> cached blocks
  std::unordered_map<void*, size_t> live_;               // large block in use -> size class
  size_t cached_bytes_ = 0;
  size_t limit_ = size_t{1} << 30;
  uint64_t hits_ = 0, misses_ = 0;
};

HostCache& host_cache();  // the process-wide instance

}  // namespace cpu
}  // namespace tg
