// The avx2 table of the softmax, activation and layer-norm bodies (nn_body.h).
// Compiled for avx2,fma by the pragma below; called only after run-time dispatch (nn.cpp).
#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#include "cpu_internal.h"

#pragma GCC push_options
#pragma GCC target("avx2,fma")
#define TG_VEC_AVX2
#include "nn_body.h"
#pragma GCC pop_options

namespace tg {
namespace cpu {

NnKernels nn_kernels_avx2() {
  return NnKernels{softmax_rows,    softmax_cols,        softmax_backward_rows, softmax_backward_cols,
                   activation_body, activation_backward_body, layer_norm_rows,       layer_norm_backward_rows};
}

}  // namespace cpu
}  // namespace tg
