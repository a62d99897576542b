// The generic table of the pooling bodies (pool_body.h).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#include "pool_internal.h"

#define TG_VEC_GENERIC
#include "pool_body.h"

namespace tg {
namespace cpu {

PoolKernels pool_kernels_generic() { return PoolKernels{max_rows, avg_rows, avg_backward_planes}; }

}  // namespace cpu
}  // namespace tg
