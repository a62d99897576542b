// Drivers of the softmax, activation and layer-norm kernels: pick the ISA
// table once, split the work into OpenMP tasks above a size threshold.
#include <algorithm>
#include <limits>
#include <vector>

#include <omp.h>

#include "cpu_internal.h"
#include "tg_cpu.h"

namespace tg {
namespace cpu {

namespace {

// Below these element counts one thread runs the whole op: a fork/join on a
// busy 2-core machine can cost a scheduler timeslice (see relu.cpp). Ops with
// a transcendental per element cross over earlier than plain loads/stores.
constexpr int64_t kParallelMinCheap = 1 << 18;
constexpr int64_t kParallelMinHeavy = 1 << 16;
constexpr int64_t kChunk = 1 << 14;  // floats per task of an elementwise op

const NnKernels& kernels() {
  static const NnKernels table = [] {
    switch (active_isa()) {
      case Isa::avx512: return nn_kernels_avx512();
      case Isa::avx2: return nn_kernels_avx2();
      default: return nn_kernels_generic();
    }
  }();
  return table;
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Rows per task so that a task holds about kChunk floats (at least one row).
int64_t rows_per_task(int64_t n) { return std::max<int64_t>(1, kChunk / std::max<int64_t>(n, 1)); }

// Columns per task of a strided softmax: about kChunk floats, whole 64-column
// sub-panels (the bodies walk each sub-panel row by row).
int64_t panel_cols(int64_t n, int64_t inner) {
  const int64_t cols = std::max<int64_t>(64, kChunk / std::max<int64_t>(n, 1) / 64 * 64);
  return std::min(cols, inner);
}

bool is_cheap(Act act) { return act == Act::leaky_relu; }

}  // namespace

void softmax(const float* x, float* y, int64_t outer, int64_t n, int64_t inner, bool log) {
  if (outer <= 0 || n <= 0 || inner <= 0) return;
  const NnKernels& k = kernels();
  const bool par = outer * n * inner >= kParallelMinHeavy;
  if (inner == 1) {
    const int64_t per = rows_per_task(n);
    const int64_t tasks = ceil_div(outer, per);
#pragma omp parallel for schedule(dynamic, 1) if (par)
    for (int64_t t = 0; t < tasks; ++t) {
      const int64_t r0 = t * per;
      k.softmax_rows(x + r0 * n, y + r0 * n, std::min(per, outer - r0), n, log);
    }
    return;
  }
  const int64_t cols = panel_cols(n, inner);
  const int64_t blocks = ceil_div(inner, cols);
#pragma omp parallel for schedule(dynamic, 1) if (par)
  for (int64_t t = 0; t < outer * blocks; ++t) {
    const int64_t c0 = (t % blocks) * cols;
    const int64_t off = (t / blocks) * n * inner + c0;
    k.softmax_cols(x + off, y + off, n, inner, std::min(cols, inner - c0), log);
  }
}

void softmax_backward(const float* y, const float* gy, float* gx, int64_t outer, int64_t n,
                      int64_t inner, bool log) {
  if (outer <= 0 || n <= 0 || inner <= 0) return;
  const NnKernels& k = kernels();
  const bool par = outer * n * inner >= (log ? kParallelMinHeavy : kParallelMinCheap);
  if (inner == 1) {
    const int64_t per = rows_per_task(n);
    const int64_t tasks = ceil_div(outer, per);
#pragma omp parallel for schedule(dynamic, 1) if (par)
    for (int64_t t = 0; t < tasks; ++t) {
      const int64_t off = t * per * n;
      k.softmax_backward_rows(y + off, gy + off, gx + off, std::min(per, outer - t * per), n, log);
    }
    return;
  }
  const int64_t cols = panel_cols(n, inner);
  const int64_t blocks = ceil_div(inner, cols);
#pragma omp parallel for schedule(dynamic, 1) if (par)
  for (int64_t t = 0; t < outer * blocks; ++t) {
    const int64_t c0 = (t % blocks) * cols;
    const int64_t off = (t / blocks) * n * inner + c0;
    k.softmax_backward_cols(y + off, gy + off, gx + off, n, inner, std::min(cols, inner - c0), log);
  }
}

void activation(Act act, const float* x, float* out, int64_t n, float param) {
  if (n <= 0) return;
  const NnKernels& k = kernels();
  const int64_t tasks = ceil_div(n, kChunk);
  const bool par = n >= (is_cheap(act) ? kParallelMinCheap : kParallelMinHeavy);
#pragma omp parallel for schedule(dynamic, 1) if (par)
  for (int64_t t = 0; t < tasks; ++t) {
    const int64_t i = t * kChunk;
    k.activation(act, x + i, out + i, std::min(kChunk, n - i), param);
  }
}

namespace {

using RowFn = void (*)(const float*, float*, int64_t);

RowFn relu_body() {
  switch (active_isa()) {
    case Isa::avx512: return relu_avx512;
    case Isa::avx2: return relu_avx2;
    default: return relu_generic;
  }
}

}  // namespace

void bias_act(float* y, const float* bias, int64_t outer, int64_t channels, int64_t inner,
              Epilogue epilogue, Act act, float param) {
  const int64_t n = outer * channels * inner;
  if (n <= 0) return;
  const NnKernels& k = kernels();
  const RowFn relu = relu_body();
  // One task is a run of whole rows: `channels` floats when inner == 1, else `inner` floats
  // of one channel. The bias add and the activation both run on it while it is in cache.
  const int64_t row = inner == 1 ? channels : inner;
  const int64_t rows = n / row;
  const int64_t per = rows_per_task(row);
  const int64_t tasks = ceil_div(rows, per);
  const bool par = n >= (epilogue == Epilogue::act ? kParallelMinHeavy : kParallelMinCheap);
#pragma omp parallel for schedule(dynamic, 1) if (par)
  for (int64_t t = 0; t < tasks; ++t) {
    const int64_t r0 = t * per;
    const int64_t r1 = std::min(rows, r0 + per);
    float* seg = y + r0 * row;
    if (bias != nullptr) {
      for (int64_t r = r0; r < r1; ++r) {
        float* yr = y + r * row;
        if (inner == 1) {
          for (int64_t j = 0; j < row; ++j) yr[j] += bias[j];
        } else {
          const float b = bias[r % channels];
          for (int64_t j = 0; j < row; ++j) yr[j] += b;
        }
      }
    }
    const int64_t len = (r1 - r0) * row;
    if (epilogue == Epilogue::relu) {
      relu(seg, seg, len);
    } else if (epilogue == Epilogue::act) {
      k.activation(act, seg, seg, len, param);
    }
  }
}

void activation_backward(Act act, const float* a, const float* gy, float* out, int64_t n,
                         float param) {
  if (n <= 0) return;
  const NnKernels& k = kernels();
  const int64_t tasks = ceil_div(n, kChunk);
  const bool heavy = act == Act::gelu || act == Act::gelu_tanh || act == Act::silu;
  const bool par = n >= (heavy ? kParallelMinHeavy : kParallelMinCheap);
#pragma omp parallel for schedule(dynamic, 1) if (par)
  for (int64_t t = 0; t < tasks; ++t) {
    const int64_t i = t * kChunk;
    k.activation_backward(act, a + i, gy + i, out + i, std::min(kChunk, n - i), param);
  }
}

void layer_norm(const float* x, const float* w, const float* b, float* y, float* mean, float* rstd,
                int64_t rows, int64_t n, float eps) {
  if (rows <= 0) return;
  if (n <= 0) {  // the mean of nothing is NaN, as in NumPy
    std::fill(mean, mean + rows, std::numeric_limits<float>::quiet_NaN());
    std::fill(rstd, rstd + rows, std::numeric_limits<float>::quiet_NaN());
    return;
  }
  const NnKernels& k = kernels();
  const int64_t per = rows_per_task(n);
  const int64_t tasks = ceil_div(rows, per);
#pragma omp parallel for schedule(dynamic, 1) if (rows * n >= kParallelMinHeavy)
  for (int64_t t = 0; t < tasks; ++t) {
    const int64_t r0 = t * per;
    k.layer_norm_rows(x + r0 * n, w, b, y + r0 * n, mean + r0, rstd + r0, std::min(per, rows - r0), n,
                      eps);
  }
}

void layer_norm_backward(const float* x, const float* w, const float* mean, const float* rstd,
                         const float* gy, float* gx, float* gw, float* gb, int64_t rows, int64_t n) {
  if (n <= 0) return;
  std::fill(gw, gw + n, 0.0f);
  std::fill(gb, gb + n, 0.0f);
  if (rows <= 0) return;
  const NnKernels& k = kernels();
  const int threads = rows * n >= kParallelMinHeavy && rows > 1
                          ? static_cast<int>(std::min<int64_t>(omp_get_max_threads(), rows))
                          : 1;
  if (threads == 1) {
    k.layer_norm_backward_rows(x, w, mean, rstd, gy, gx, gw, gb, rows, n);
    return;
  }
  // Each thread sums gw, gb over its rows into its own buffer; then they are added up. The
  // row split is static (not dynamic like the other kernels here) so that the sums, and so
  // gweight and gbias, come out bit-identical from run to run.
  std::vector<float> acc(static_cast<size_t>(threads) * 2 * static_cast<size_t>(n), 0.0f);
#pragma omp parallel num_threads(threads)
  {
    const int t = omp_get_thread_num();
    const int nt = omp_get_num_threads();
    const int64_t r0 = rows * t / nt;
    const int64_t r1 = rows * (t + 1) / nt;
    float* mine = acc.data() + static_cast<size_t>(t) * 2 * n;
    if (r1 > r0) {
      k.layer_norm_backward_rows(x + r0 * n, w, mean + r0, rstd + r0, gy + r0 * n, gx + r0 * n, mine,
                                 mine + n, r1 - r0, n);
    }
  }
  for (int t = 0; t < threads; ++t) {
    const float* mine = acc.data() + static_cast<size_t>(t) * 2 * n;
    for (int64_t j = 0; j < n; ++j) {
      gw[j] += mine[j];
      gb[j] += mine[n + j];
    }
  }
}

}  // namespace cpu
}  // namespace tg
