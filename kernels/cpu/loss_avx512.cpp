// The avx512 table of the cross-entropy bodies (loss_body.h).
// Compiled for the target below; called only after run-time dispatch (loss.cpp).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#include "loss_internal.h"

// GCC 12 warns about the intentionally undefined pass-through operand inside
// its own AVX-512 intrinsics (_mm512_undefined_ps); the warning is spurious.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#pragma GCC push_options
#pragma GCC target("avx512f,avx2,fma")
#define TG_VEC_AVX512
#include "loss_body.h"
#pragma GCC pop_options

namespace tg {
namespace cpu {

LossKernels loss_kernels_avx512() { return LossKernels{forward_rows, backward_rows}; }

}  // namespace cpu
}  // namespace tg
