// Internal interface between the pooling driver (pool.cpp) and its ISA-specific bodies
// (pool_body.h compiled in pool_generic.cpp, pool_avx2.cpp, pool_avx512.cpp).
#pragma once

#include <cstdint>

#include "tg_cpu.h"

namespace tg {
namespace cpu {

// Serial bodies; the driver splits the work across OpenMP threads. An output row is
// numbered plane * oh + oh over the whole batch.
struct PoolKernels {
  // Output rows [r0, r1) of max pooling.
  void (*max_rows)(const float* x, float* y, int64_t* arg, int64_t r0, int64_t r1, const Pool2dGeom& g);
  // Output rows [r0, r1) of average pooling.
  void (*avg_rows)(const float* x, float* y, int64_t r0, int64_t r1, const Pool2dGeom& g, AvgPoolDivisor d);
  // Input planes [p0, p1) of the average-pooling input gradient (zeroed, then accumulated).
  void (*avg_backward_planes)(const float* gy, float* gx, int64_t p0, int64_t p1, const Pool2dGeom& g,
                              AvgPoolDivisor d);
};

PoolKernels pool_kernels_generic();
PoolKernels pool_kernels_avx2();
PoolKernels pool_kernels_avx512();

}  // namespace cpu
}  // namespace tg
