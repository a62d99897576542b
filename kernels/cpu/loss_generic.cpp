// The generic table of the cross-entropy bodies (loss_body.h).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#include "loss_internal.h"

#define TG_VEC_GENERIC
#include "loss_body.h"

namespace tg {
namespace cpu {

LossKernels loss_kernels_generic() { return LossKernels{forward_rows, backward_rows}; }

}  // namespace cpu
}  // namespace tg
