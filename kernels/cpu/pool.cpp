// Drivers of the 2-D pooling kernels: pick the ISA table once, split the work into
// OpenMP tasks above a size threshold. Forward passes split output rows (every output
// is written by exactly one task); backward passes split input planes (windows overlap
// inside a plane, never across planes), so no two tasks write the same cell and the
// result does not depend on the thread count.
#include <algorithm>
#include <cstdint>

#include <omp.h>

#include "cpu_internal.h"
#include "pool_internal.h"
#include "tg_cpu.h"

namespace tg {
namespace cpu {

namespace {

constexpr int64_t kParallelMin = 1 << 16;  // window taps (plus cells zeroed) below which one thread runs
constexpr int64_t kTaskWork = 1 << 15;     // window taps per task

const PoolKernels& kernels() {
  static const PoolKernels table = [] {
    switch (active_isa()) {
      case Isa::avx512: return pool_kernels_avx512();
      case Isa::avx2: return pool_kernels_avx2();
      default: return pool_kernels_generic();
    }
  }();
  return table;
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Runs body(first, last) over [0, count) in chunks of `per`, on several threads when
// `work` is large enough.
template <typename Body>
void split(int64_t count, int64_t per, int64_t work, Body body) {
  if (count <= 0) return;
  per = std::max<int64_t>(1, per);
  const int64_t tasks = ceil_div(count, per);
#pragma omp parallel for schedule(dynamic, 1) if (work >= kParallelMin && tasks > 1)
  for (int64_t t = 0; t < tasks; ++t) body(t * per, std::min(count, (t + 1) * per));
}

int64_t rows_per_task(const Pool2dGeom& g) { return kTaskWork / std::max<int64_t>(1, g.ow * g.kh * g.kw); }

int64_t planes_per_task(const Pool2dGeom& g) {
  return kTaskWork / std::max<int64_t>(1, g.h * g.w + g.oh * g.ow * g.kh * g.kw);
}

}  // namespace

void max_pool2d(const float* x, float* y, int64_t* arg, const Pool2dGeom& g) {
  if (g.ow <= 0) return;
  const PoolKernels& k = kernels();
  const int64_t rows = g.n * g.c * g.oh;
  split(rows, rows_per_task(g), rows * g.ow * g.kh * g.kw,
        [&](int64_t r0, int64_t r1) { k.max_rows(x, y, arg, r0, r1, g); });
}

bool max_pool2d_backward(const float* gy, const int64_t* arg, float* gx, const Pool2dGeom& g) {
  const int64_t planes = g.n * g.c;
  const int64_t plane = g.h * g.w;
  const int64_t outs = g.oh * g.ow;
  bool ok = true;
  // Plain scatter: the maxima are data-dependent, one add per output.
  auto body = [&](int64_t p0, int64_t p1) {
    bool mine = true;
    for (int64_t p = p0; p < p1; ++p) {
      float* gxp = gx + p * plane;
      std::fill(gxp, gxp + plane, 0.0f);
      const float* gyp = gy + p * outs;
      const int64_t* ap = arg + p * outs;
      for (int64_t o = 0; o < outs; ++o) {
        const int64_t a = ap[o];
        if (static_cast<uint64_t>(a) < static_cast<uint64_t>(plane)) {
          gxp[a] += gyp[o];
        } else {
          mine = false;
        }
      }
    }
    if (!mine) {
#pragma omp atomic write
      ok = false;
    }
  };
  split(planes, kTaskWork / std::max<int64_t>(1, plane + outs), planes * (plane + outs), body);
  return ok;
}

void avg_pool2d(const float* x, float* y, const Pool2dGeom& g, AvgPoolDivisor d) {
  if (g.ow <= 0) return;
  const PoolKernels& k = kernels();
  const int64_t rows = g.n * g.c * g.oh;
  split(rows, rows_per_task(g), rows * g.ow * g.kh * g.kw,
        [&](int64_t r0, int64_t r1) { k.avg_rows(x, y, r0, r1, g, d); });
}

void avg_pool2d_backward(const float* gy, float* gx, const Pool2dGeom& g, AvgPoolDivisor d) {
  const PoolKernels& k = kernels();
  const int64_t planes = g.n * g.c;
  split(planes, planes_per_task(g), planes * (g.h * g.w + g.oh * g.ow * g.kh * g.kw),
        [&](int64_t p0, int64_t p1) { k.avg_backward_planes(gy, gx, p0, p1, g, d); });
}

}  // namespace cpu
}  // namespace tg
