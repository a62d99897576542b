// The generic table of the softmax, activation and layer-norm bodies (nn_body.h).
#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#include "cpu_internal.h"

#define TG_VEC_GENERIC
#include "nn_body.h"

namespace tg {
namespace cpu {

NnKernels nn_kernels_generic() {
  return NnKernels{softmax_rows,    softmax_cols,        softmax_backward_rows, softmax_backward_cols,
                   activation_body, activation_backward_body, layer_norm_rows,       layer_norm_backward_rows};
}

}  // namespace cpu
}  // namespace tg
