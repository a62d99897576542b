// The avx2 table of the cross-entropy bodies (loss_body.h).
// Compiled for the target below; called only after run-time dispatch (loss.cpp).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#include "loss_internal.h"

#pragma GCC push_options
#pragma GCC target("avx2,fma")
#define TG_VEC_AVX2
#include "loss_body.h"
#pragma GCC pop_options

namespace tg {
namespace cpu {

LossKernels loss_kernels_avx2() { return LossKernels{forward_rows, backward_rows}; }

}  // namespace cpu
}  // namespace tg
