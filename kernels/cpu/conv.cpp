// 2-D convolution forward: im2col of one image and group into a reused
// per-thread workspace, then the native GEMM (matmul.cpp):
//   y[n, group] (O/g x OH*OW) = w[group] (O/g x C/g*KH*KW) @ cols (C/g*KH*KW x OH*OW).
// A 1x1 convolution with stride 1 and no padding needs no im2col: the image is
// already the column matrix. With at least as many (image, group) pairs as
// threads, one parallel region runs whole pairs per thread (its own workspace,
// a single-threaded GEMM): one fork/join per call, which matters on a busy
// machine where every join can wait out a scheduler timeslice. Otherwise the
// pairs run in order and im2col and the GEMM parallelize inside.
#include <algorithm>
#include <cstring>
#include <new>
#include <vector>

#include <omp.h>

#include "cpu_internal.h"
#include "tg_cpu.h"

namespace tg {
namespace cpu {

namespace {

constexpr int64_t kParallelMin = 1 << 18;  // im2col floats below which one thread copies

int64_t ceil_div_pos(int64_t a, int64_t b) { return (a + b - 1) / b; }  // a >= 0, b > 0

// cols[(ci, i, j), (oh, ow)] = x[ci, oh*sh - ph + i*dh, ow*sw - pw + j*dw], 0 outside the image.
void im2col(const float* x, float* cols, int64_t cg, const Conv2dGeom& g, bool parallel) {
  const int64_t taps = g.kh * g.kw;
  const int64_t len = g.oh * g.ow;
  const int64_t rows = cg * taps;
#pragma omp parallel for schedule(dynamic, 4) if (parallel && rows * len >= kParallelMin)
  for (int64_t row = 0; row < rows; ++row) {
    const int64_t ci = row / taps;
    const int64_t i = (row / g.kw) % g.kh;
    const int64_t j = row % g.kw;
    const float* xc = x + ci * g.h * g.w;
    float* out = cols + row * len;
    // Output columns whose input column iw = ow*sw + off lies inside [0, W).
    const int64_t off = j * g.dw - g.pw;
    const int64_t lo = std::min(g.ow, off >= 0 ? int64_t{0} : ceil_div_pos(-off, g.sw));
    const int64_t hi = std::max(lo, std::min(g.ow, g.w - 1 - off >= 0 ? (g.w - 1 - off) / g.sw + 1 : 0));
    for (int64_t oh = 0; oh < g.oh; ++oh) {
      float* o = out + oh * g.ow;
      const int64_t ih = oh * g.sh - g.ph + i * g.dh;
      if (ih < 0 || ih >= g.h) {
        std::fill(o, o + g.ow, 0.0f);
        continue;
      }
      std::fill(o, o + lo, 0.0f);
      const float* src = xc + ih * g.w + lo * g.sw + off;
      if (g.sw == 1) {
        std::memcpy(o + lo, src, static_cast<size_t>(hi - lo) * sizeof(float));
      } else {
        for (int64_t ow = lo; ow < hi; ++ow) o[ow] = src[(ow - lo) * g.sw];
      }
      std::fill(o + hi, o + g.ow, 0.0f);
    }
  }
}

float* workspace(size_t floats) {
  static thread_local std::vector<float> ws;  // grows, never shrinks: reused across calls
  if (ws.size() < floats) ws.resize(floats);
  return ws.data();
}

}  // namespace

void conv2d(const float* x, const float* w, float* y, const Conv2dGeom& g) {
  const int64_t cg = g.c / g.groups;
  const int64_t og = g.o / g.groups;
  const int64_t ck = cg * g.kh * g.kw;
  const int64_t len = g.oh * g.ow;
  if (g.n <= 0 || og <= 0 || len <= 0) return;
  const bool direct = ck == 0 || (g.kh == 1 && g.kw == 1 && g.sh == 1 && g.sw == 1 && g.ph == 0 && g.pw == 0);
  const size_t ws_floats = direct ? 0 : static_cast<size_t>(ck * len);
  const int64_t pairs = g.n * g.groups;
  const int threads = omp_get_max_threads();
  const bool outer = threads > 1 && pairs >= threads && pairs * og * len * std::max<int64_t>(ck, 1) >= (1 << 17);
  if (!outer) {
    float* cols = direct ? nullptr : workspace(ws_floats);
    for (int64_t p = 0; p < pairs; ++p) {
      const int64_t n = p / g.groups;
      const int64_t grp = p % g.groups;
      const float* xg = x + (n * g.c + grp * cg) * g.h * g.w;
      if (!direct) im2col(xg, cols, cg, g, true);
      matmul(w + grp * og * ck, direct ? xg : cols, y + (n * g.o + grp * og) * len, 1, og, len, ck);
    }
    return;
  }
  // Every thread sizes its own workspace first: an allocation failure inside the loop's
  // region could not propagate, here it is caught and rethrown on the calling thread.
  std::vector<float*> ws(static_cast<size_t>(threads), nullptr);
  if (!direct) {
#pragma omp parallel num_threads(threads)
    {
      float* mine = nullptr;
      try {
        mine = workspace(ws_floats);
      } catch (...) {
      }
      ws[static_cast<size_t>(omp_get_thread_num())] = mine;
    }
    for (float* p : ws) {
      if (p == nullptr) throw std::bad_alloc();
    }
  }
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
  for (int64_t p = 0; p < pairs; ++p) {
    const int64_t n = p / g.groups;
    const int64_t grp = p % g.groups;
    const float* xg = x + (n * g.c + grp * cg) * g.h * g.w;
    float* cols = ws[static_cast<size_t>(omp_get_thread_num())];
    if (!direct) im2col(xg, cols, cg, g, false);
    matmul_single_thread(w + grp * og * ck, direct ? xg : cols, y + (n * g.o + grp * og) * len, og, len, ck);
  }
}

}  // namespace cpu
}  // namespace tg
