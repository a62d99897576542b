// Asynchronous global -> shared copies (cp.async, sm_80+) for multi-stage pipelines: a block
// issues the loads of tile k + S - 1 while it computes on tile k. A copy whose source is out of
// bounds passes `valid = false` and fills its destination with zeros (the src-size operand is
// 0, so nothing is read and the source address only has to be any valid pointer).
//
//   cp_async16 / cp_async8 / cp_async4   one 16- / 8- / 4-byte copy (addresses aligned to it)
//   cp_async_commit()                     closes the group of copies issued since the last one
//   cp_async_wait<N>()                    waits until at most N groups are still in flight
// A __syncthreads() after the wait makes other threads' copies visible, as for plain stores.
//
// Built for the CPU test emulation (TG_CUDA_EMULATION, tests/native/cuda_emu) the copies are
// done at once and the commit / wait are no-ops: the kernels' indexing and zero-fill still run.
#pragma once

#include <stdint.h>

#ifdef TG_CUDA_EMULATION
#include <cstring>
#endif

namespace tg {
namespace cuda {

#ifndef TG_CUDA_EMULATION

template <int kBytes>
__device__ __forceinline__ void cp_async(void* smem, const void* gmem, bool valid) {
  static_assert(kBytes == 4 || kBytes == 8 || kBytes == 16, "cp.async copies 4, 8 or 16 bytes");
  const unsigned dst = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  const int src_size = valid ? kBytes : 0;
  if (kBytes == 16) {
    // .cg: through L2 only (tiles are read once per block), 16 bytes only.
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(gmem), "r"(src_size));
  } else {
    asm volatile("cp.async.ca.shared.global [%0], [%1], %2, %3;\n" ::"r"(dst), "l"(gmem), "n"(kBytes),
                 "r"(src_size));
  }
}

__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }

template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

#else  // TG_CUDA_EMULATION

template <int kBytes>
inline void cp_async(void* smem, const void* gmem, bool valid) {
  if (valid) {
    std::memcpy(smem, gmem, kBytes);
  } else {
    std::memset(smem, 0, kBytes);
  }
}

inline void cp_async_commit() {}

template <int N>
inline void cp_async_wait() {}

#endif  // TG_CUDA_EMULATION

__device__ __forceinline__ void cp_async16(void* smem, const void* gmem, bool valid) {
  cp_async<16>(smem, gmem, valid);
}
__device__ __forceinline__ void cp_async8(void* smem, const void* gmem, bool valid) {
  cp_async<8>(smem, gmem, valid);
}
__device__ __forceinline__ void cp_async4(void* smem, const void* gmem, bool valid) {
  cp_async<4>(smem, gmem, valid);
}

}  // namespace cuda
}  // namespace tg
