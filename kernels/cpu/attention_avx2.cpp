// The avx2 table of the attention bodies (attention_body.h).
// Compiled for avx2,fma by the pragma below; called only after run-time dispatch (attention.cpp).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#include "attention_internal.h"

#pragma GCC push_options
#pragma GCC target("avx2,fma")
#define TG_VEC_AVX2
#include "attention_body.h"
#pragma GCC pop_options

namespace tg {
namespace cpu {

// Built outside the target pragma (as nn_avx2.cpp does): only the bodies use the ISA.
AttnKernels attn_kernels_avx2() {
  return AttnKernels{forward_work, forward_task, backward_work, backward_task, kBq, kBk};
}

}  // namespace cpu
}  // namespace tg
