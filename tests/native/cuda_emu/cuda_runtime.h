// A CPU stand-in for <cuda_runtime.h>, enough to run tilegrad's CUDA kernels on the host for
// testing their indexing, shared-memory use and synchronisation where no GPU exists. Every
// CUDA thread of a block is a std::thread (1-, 2- or 3-D blocks and grids); blocks run one after another; __syncthreads is a
// std::barrier over the block, a warp shuffle an exchange through a per-warp slot array
// between two barriers over the warp. __shared__ variables become statics (one block runs at
// a time), dynamic shared memory an exactly sized heap buffer per block (so AddressSanitizer
// sees overruns). Kernel launches (<<<...>>>) are rewritten into emu::launch by emulate.py.
#pragma once

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include <atomic>
#include <barrier>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#define TG_CUDA_EMULATION 1
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static
#define __align__(n) __attribute__((aligned(n)))

struct dim3 {
  unsigned x = 1, y = 1, z = 1;
  dim3(unsigned a = 1, unsigned b = 1, unsigned c = 1) : x(a), y(b), z(c) {}
};

struct alignas(16) float4 {
  float x, y, z, w;
};

struct alignas(16) uint4 {
  unsigned x, y, z, w;
};

typedef int cudaError_t;
typedef void* cudaStream_t;
enum { cudaSuccess = 0, cudaErrorInvalidValue = 1, cudaErrorNoDevice = 100, cudaErrorInsufficientDriver = 35 };
enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };

namespace emu {

struct Warp {
  std::barrier<> bar{32};
  uint64_t slot[32];
  alignas(16) unsigned char wide[32][64];  // warp_all_gather's exchange
};

struct Block {
  explicit Block(int threads) : bar(threads), warps((threads + 31) / 32) {}
  std::barrier<> bar;
  std::vector<Warp> warps;
};

inline dim3 g_grid, g_block;
inline thread_local dim3 t_thread, t_blockidx;
inline thread_local int t_linear = 0;  // the thread's linear id in its block
inline thread_local Block* t_block = nullptr;
inline void* g_dyn_smem = nullptr;

template <typename T>
inline T shuffle(T v, int src) {
  static_assert(sizeof(T) <= 8, "shuffle of a wide type");
  Warp& w = t_block->warps[t_linear / 32];
  uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof(T));
  w.slot[t_linear % 32] = bits;
  w.bar.arrive_and_wait();
  const uint64_t got = w.slot[src & 31];
  w.bar.arrive_and_wait();
  T out;
  std::memcpy(&out, &got, sizeof(T));
  return out;
}

// The calling thread's lane in its warp (threads numbered x fastest, warps of 32 linear ids).
inline int lane_id() { return t_linear % 32; }

// all[i] = lane i's v for every lane of the warp: one exchange (two warp barriers) where
// shuffles would take one each per 8 bytes (the emulated mma instructions use this).
template <typename T>
inline void warp_all_gather(const T& v, T (&all)[32]) {
  Warp& w = t_block->warps[t_linear / 32];
  static_assert(sizeof(T) <= sizeof(w.wide[0]), "warp_all_gather of a wide type");
  std::memcpy(w.wide[t_linear % 32], &v, sizeof(T));
  w.bar.arrive_and_wait();
  for (int i = 0; i < 32; ++i) std::memcpy(&all[i], w.wide[i], sizeof(T));
  w.bar.arrive_and_wait();
}

template <typename F>
void launch(F body, dim3 grid, dim3 block, size_t smem = 0, cudaStream_t = nullptr) {
  g_grid = grid;
  g_block = block;
  const int threads = static_cast<int>(block.x * block.y * block.z);
  for (unsigned bz = 0; bz < grid.z; ++bz) {
    for (unsigned by = 0; by < grid.y; ++by) {
      for (unsigned bx = 0; bx < grid.x; ++bx) {
        Block blk(threads);
        std::unique_ptr<char[]> dyn(smem ? new char[smem] : nullptr);
        if (smem) std::memset(dyn.get(), 0xff, smem);  // NaN-filled: reads before writes show up
        g_dyn_smem = dyn.get();
        std::vector<std::thread> ts;
        for (int t = 0; t < threads; ++t) {
          ts.emplace_back([&, t, bx, by, bz] {
            // threadIdx from the linear id as CUDA numbers threads (x fastest); warps are
            // runs of 32 linear ids.
            t_linear = t;
            t_thread = dim3(t % block.x, (t / block.x) % block.y, t / (block.x * block.y));
            t_blockidx = dim3(bx, by, bz);
            t_block = &blk;
            body();
            // An exited thread no longer holds up its block's or warp's barriers.
            blk.warps[t / 32].bar.arrive_and_drop();
            blk.bar.arrive_and_drop();
          });
        }
        for (auto& th : ts) th.join();
      }
    }
  }
}

}  // namespace emu

#define threadIdx (emu::t_thread)
#define blockIdx (emu::t_blockidx)
#define blockDim (emu::g_block)
#define gridDim (emu::g_grid)

inline void __syncthreads() { emu::t_block->bar.arrive_and_wait(); }
template <typename T>
inline T __shfl_sync(unsigned, T v, int src) {
  return emu::shuffle(v, src);
}
template <typename T>
inline T __shfl_xor_sync(unsigned, T v, int mask) {
  return emu::shuffle(v, (emu::t_linear % 32) ^ mask);
}
inline int atomicOr(int* p, int v) { return __atomic_fetch_or(p, v, __ATOMIC_SEQ_CST); }
inline int cudaGetLastError() { return 0; }
inline int cudaMemsetAsync(void* p, int value, size_t bytes, cudaStream_t = nullptr) {
  std::memset(p, value, bytes);
  return 0;
}
template <typename K>
inline int cudaFuncSetAttribute(K, cudaFuncAttribute, int) {
  return 0;
}

// ---- Host runtime API for the emulated tilegrad._cuda module (tests/emulated_gpu): one
// emulated device of compute capability 9.0; CUDA's device-side integer min / max overloads;
// __grid_constant__ (kernel parameters are passed by value already).
#define __grid_constant__
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }

enum cudaDeviceAttr { cudaDevAttrComputeCapabilityMajor = 75, cudaDevAttrComputeCapabilityMinor = 76 };
struct cudaDeviceProp {
  char name[256];
  int major, minor;
};
inline cudaError_t cudaGetDeviceCount(int* count) {
  *count = 1;
  return cudaSuccess;
}
inline cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device) {
  if (device != 0) return cudaErrorInvalidValue;
  *prop = cudaDeviceProp{};
  std::strncpy(prop->name, "tilegrad CPU emulation", sizeof(prop->name) - 1);
  prop->major = 9;
  prop->minor = 0;
  return cudaSuccess;
}
inline cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device) {
  if (device != 0) return cudaErrorInvalidValue;
  *value = attr == cudaDevAttrComputeCapabilityMajor ? 9 : 0;
  return cudaSuccess;
}
inline cudaError_t cudaRuntimeGetVersion(int* v) {
  *v = 13000;
  return cudaSuccess;
}
inline cudaError_t cudaDriverGetVersion(int* v) {
  *v = 13000;
  return cudaSuccess;
}
inline const char* cudaGetErrorName(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorInsufficientDriver: return "cudaErrorInsufficientDriver";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    default: return "cudaErrorUnknown";
  }
}
inline const char* cudaGetErrorString(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorInsufficientDriver: return "CUDA driver version is insufficient for CUDA runtime version";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    default: return "unknown error";
  }
}
