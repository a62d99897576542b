// Drivers of the fused cross-entropy kernels: pick the ISA table once, split the rows
// into OpenMP tasks above a size threshold (rows are independent).
#include <algorithm>
#include <cstdint>

#include <omp.h>

#include "cpu_internal.h"
#include "loss_internal.h"
#include "tg_cpu.h"

namespace tg {
namespace cpu {

namespace {

constexpr int64_t kParallelMin = 1 << 16;  // logits below which one thread runs (an exp each)
constexpr int64_t kChunk = 1 << 14;        // logits per task

const LossKernels& kernels() {
  static const LossKernels table = [] {
    switch (active_isa()) {
      case Isa::avx512: return loss_kernels_avx512();
      case Isa::avx2: return loss_kernels_avx2();
      default: return loss_kernels_generic();
    }
  }();
  return table;
}

double weight_sum(const float* w, int64_t c) {
  if (w == nullptr) return static_cast<double>(c);
  double s = 0.0;
  for (int64_t i = 0; i < c; ++i) s += w[i];
  return s;
}

// Runs body(r0, n) over row blocks of about kChunk logits.
template <typename Body>
void over_rows(int64_t rows, int64_t c, Body body) {
  const int64_t per = std::max<int64_t>(1, kChunk / std::max<int64_t>(c, 1));
  const int64_t tasks = (rows + per - 1) / per;
#pragma omp parallel for schedule(dynamic, 1) if (rows * c >= kParallelMin && tasks > 1)
  for (int64_t t = 0; t < tasks; ++t) body(t * per, std::min(per, rows - t * per));
}

}  // namespace

void cross_entropy_forward(const float* x, const int64_t* t, const float* w, float* loss, float* lse,
                           int64_t rows, int64_t c, int64_t ignore_index, float eps) {
  if (rows <= 0 || c <= 0) return;
  const LossKernels& k = kernels();
  const double wsum = weight_sum(w, c);
  over_rows(rows, c, [&](int64_t r0, int64_t n) {
    k.forward_rows(x + r0 * c, t + r0, w, loss + r0, lse + r0, n, c, ignore_index, eps, wsum);
  });
}

void cross_entropy_backward(const float* x, const float* lse, const int64_t* t, const float* w,
                            const float* grow, float* gx, int64_t rows, int64_t c, int64_t ignore_index,
                            float eps) {
  if (rows <= 0 || c <= 0) return;
  const LossKernels& k = kernels();
  const double wsum = weight_sum(w, c);
  over_rows(rows, c, [&](int64_t r0, int64_t n) {
    k.backward_rows(x + r0 * c, lse + r0, t + r0, w, grow + r0, gx + r0 * c, n, c, ignore_index, eps, wsum);
  });
}

}  // namespace cpu
}  // namespace tg
