// The avx512 table of the attention bodies (attention_body.h).
// Compiled for avx512f,avx2,fma by the pragma below; called only after run-time dispatch (attention.cpp).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#include "attention_internal.h"

// GCC 12 warns about the intentionally undefined pass-through operand inside
// its own AVX-512 intrinsics (_mm512_undefined_ps); the warning is spurious.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#pragma GCC push_options
#pragma GCC target("avx512f,avx2,fma")
#define TG_VEC_AVX512
#include "attention_body.h"
#pragma GCC pop_options

namespace tg {
namespace cpu {

// Built outside the target pragma (as nn_avx512.cpp does): only the bodies use the ISA.
AttnKernels attn_kernels_avx512() {
  return AttnKernels{forward_work, forward_task, backward_work, backward_task, kBq, kBk};
}

}  // namespace cpu
}  // namespace tg
