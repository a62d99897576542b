// The generic table of the attention bodies (attention_body.h).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#include "attention_internal.h"

#define TG_VEC_GENERIC
#include "attention_body.h"

namespace tg {
namespace cpu {

// Built outside the target pragma (as nn_generic.cpp does): only the bodies use the ISA.
AttnKernels attn_kernels_generic() {
  return AttnKernels{forward_work, forward_task, backward_work, backward_task, kBq, kBk};
}

}  // namespace cpu
}  // namespace tg
