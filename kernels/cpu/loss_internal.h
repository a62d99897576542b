// Internal interface between the cross-entropy driver (loss.cpp) and its ISA-specific
// bodies (loss_body.h compiled in loss_generic.cpp, loss_avx2.cpp, loss_avx512.cpp).
#pragma once

#include <cstdint>

namespace tg {
namespace cpu {

// Serial bodies over `rows` rows of c logits; the driver splits rows across threads.
// wsum is the sum of the class weights (c without weights), computed once per call.
struct LossKernels {
  void (*forward_rows)(const float* x, const int64_t* t, const float* w, float* loss, float* lse, int64_t rows,
                       int64_t c, int64_t ignore_index, float eps, double wsum);
  void (*backward_rows)(const float* x, const float* lse, const int64_t* t, const float* w, const float* grow,
                        float* gx, int64_t rows, int64_t c, int64_t ignore_index, float eps, double wsum);
};

LossKernels loss_kernels_generic();
LossKernels loss_kernels_avx2();
LossKernels loss_kernels_avx512();

}  // namespace cpu
}  // namespace tg
