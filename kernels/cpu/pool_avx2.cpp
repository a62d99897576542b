// The avx2 table of the pooling bodies (pool_body.h).
// Compiled for the target below; called only after run-time dispatch (pool.cpp).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#include "pool_internal.h"

#pragma GCC push_options
#pragma GCC target("avx2,fma")
#define TG_VEC_AVX2
#include "pool_body.h"
#pragma GCC pop_options

namespace tg {
namespace cpu {

PoolKernels pool_kernels_avx2() { return PoolKernels{max_rows, avg_rows, avg_backward_planes}; }

}  // namespace cpu
}  // namespace tg
