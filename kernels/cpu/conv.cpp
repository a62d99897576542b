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

// The output columns ow whose input column iw = ow*sw + off (off = j*dw - pw)
// lies inside [0, W): [*lo, *hi).
void valid_cols(int64_t j, const Conv2dGeom& g, int64_t* off, int64_t* lo, int64_t* hi) {
  *off = j * g.dw - g.pw;
  *lo = std::min(g.ow, *off >= 0 ? int64_t{0} : ceil_div_pos(-*off, g.sw));
  *hi = std::max(*lo, std::min(g.ow, g.w - 1 - *off >= 0 ? (g.w - 1 - *off) / g.sw + 1 : 0));
}

// The adjoint of im2col: x[ci, ih, iw] += cols[(ci, i, j), (oh, ow)] over every tap that
// read it. One channel per task (all its taps), so tasks never write the same pixel.
void col2im(const float* cols, float* x, int64_t cg, const Conv2dGeom& g, bool parallel) {
  const int64_t len = g.oh * g.ow;
#pragma omp parallel for schedule(dynamic, 1) if (parallel && cg * g.kh * g.kw * len >= kParallelMin)
  for (int64_t ci = 0; ci < cg; ++ci) {
    float* xc = x + ci * g.h * g.w;
    for (int64_t i = 0; i < g.kh; ++i) {
      for (int64_t j = 0; j < g.kw; ++j) {
        const float* src = cols + ((ci * g.kh + i) * g.kw + j) * len;
        int64_t off, lo, hi;
        valid_cols(j, g, &off, &lo, &hi);
        for (int64_t oh = 0; oh < g.oh; ++oh) {
          const int64_t ih = oh * g.sh - g.ph + i * g.dh;
          if (ih < 0 || ih >= g.h) continue;
          float* dst = xc + ih * g.w + lo * g.sw + off;
          const float* s = src + oh * g.ow;
          for (int64_t ow = lo; ow < hi; ++ow) dst[(ow - lo) * g.sw] += s[ow];
        }
      }
    }
  }
}

// dst (cols x rows) = src (rows x cols) transposed, in 8 x 8 blocks.
void transpose(const float* src, float* dst, int64_t rows, int64_t cols) {
  constexpr int64_t kB = 8;
  for (int64_t r0 = 0; r0 < rows; r0 += kB) {
    for (int64_t c0 = 0; c0 < cols; c0 += kB) {
      const int64_t r1 = std::min(rows, r0 + kB);
      const int64_t c1 = std::min(cols, c0 + kB);
      for (int64_t r = r0; r < r1; ++r) {
        for (int64_t c = c0; c < c1; ++c) dst[c * rows + r] = src[r * cols + c];
      }
    }
  }
}

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
    int64_t off, lo, hi;
    valid_cols(j, g, &off, &lo, &hi);
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

bool is_direct(const Conv2dGeom& g) {  // the image is its own column matrix
  return g.kh == 1 && g.kw == 1 && g.sh == 1 && g.sw == 1 && g.ph == 0 && g.pw == 0;
}

// Whether (image, group) pairs, or image ranges, go one per thread in a single parallel
// region (see the top of the file).
bool outer_parallel(int64_t tasks, int64_t work, int threads) {
  return threads > 1 && tasks >= threads && work >= (1 << 17);
}

// Sizes every thread's workspace before the loops (an allocation failure inside the loop's
// region could not propagate: here it is rethrown on the calling thread).
std::vector<float*> thread_workspaces(int threads, size_t floats) {
  std::vector<float*> ws(static_cast<size_t>(threads), nullptr);
#pragma omp parallel num_threads(threads)
  {
    float* mine = nullptr;
    try {
      mine = workspace(floats);
    } catch (...) {
    }
    ws[static_cast<size_t>(omp_get_thread_num())] = mine;
  }
  for (float* p : ws) {
    if (p == nullptr) throw std::bad_alloc();
  }
  return ws;
}

}  // namespace

void conv2d(const float* x, const float* w, float* y, const Conv2dGeom& g) {
  const int64_t cg = g.c / g.groups;
  const int64_t og = g.o / g.groups;
  const int64_t ck = cg * g.kh * g.kw;
  const int64_t len = g.oh * g.ow;
  if (g.n <= 0 || og <= 0 || len <= 0) return;
  const bool direct = ck == 0 || is_direct(g);
  const size_t ws_floats = direct ? 0 : static_cast<size_t>(ck * len);
  const int64_t pairs = g.n * g.groups;
  const int threads = omp_get_max_threads();
  const bool outer = outer_parallel(pairs, pairs * og * len * std::max<int64_t>(ck, 1), threads);
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
  std::vector<float*> ws = direct ? std::vector<float*>(static_cast<size_t>(threads), nullptr)
                                  : thread_workspaces(threads, ws_floats);
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

// gx[n, group] = col2im(w[group]^T @ gy[n, group]); the transposed weight is made once.
void conv2d_backward_input(const float* gy, const float* w, float* gx, const Conv2dGeom& g) {
  const int64_t cg = g.c / g.groups;
  const int64_t og = g.o / g.groups;
  const int64_t ck = cg * g.kh * g.kw;
  const int64_t len = g.oh * g.ow;
  const int64_t image = g.c * g.h * g.w;
  if (g.n <= 0 || image <= 0) return;
  std::fill(gx, gx + g.n * image, 0.0f);
  if (og <= 0 || len <= 0 || ck <= 0) return;
  std::vector<float> wt(static_cast<size_t>(g.groups * ck * og));  // per group (ck x og)
  for (int64_t grp = 0; grp < g.groups; ++grp) transpose(w + grp * og * ck, wt.data() + grp * ck * og, og, ck);
  const bool direct = is_direct(g);
  const size_t ws_floats = direct ? 0 : static_cast<size_t>(ck * len);
  const int64_t pairs = g.n * g.groups;
  const int threads = omp_get_max_threads();
  auto run = [&](int64_t p, float* cols, bool inner_parallel) {
    const int64_t n = p / g.groups;
    const int64_t grp = p % g.groups;
    const float* gyg = gy + (n * g.o + grp * og) * len;
    float* gxg = gx + (n * g.c + grp * cg) * g.h * g.w;
    const float* wtg = wt.data() + grp * ck * og;
    float* target = direct ? gxg : cols;  // direct: ck == cg, len == H * W
    if (inner_parallel) {
      matmul(wtg, gyg, target, 1, ck, len, og);
    } else {
      matmul_single_thread(wtg, gyg, target, ck, len, og);
    }
    if (!direct) col2im(cols, gxg, cg, g, inner_parallel);
  };
  if (!outer_parallel(pairs, pairs * og * len * ck, threads)) {
    float* cols = direct ? nullptr : workspace(ws_floats);
    for (int64_t p = 0; p < pairs; ++p) run(p, cols, true);
    return;
  }
  std::vector<float*> ws = direct ? std::vector<float*>(static_cast<size_t>(threads), nullptr)
                                  : thread_workspaces(threads, ws_floats);
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
  for (int64_t p = 0; p < pairs; ++p) run(p, ws[static_cast<size_t>(omp_get_thread_num())], false);
}

// gw[group]^T (ck x og) = sum over images of cols[n, group] (ck x len) @ gy[n, group]^T
// (len x og). Images are split statically over the threads, each summing into its own
// buffer, so the result is the same from run to run.
void conv2d_backward_weight(const float* gy, const float* x, float* gw, const Conv2dGeom& g) {
  const int64_t cg = g.c / g.groups;
  const int64_t og = g.o / g.groups;
  const int64_t ck = cg * g.kh * g.kw;
  const int64_t len = g.oh * g.ow;
  const int64_t wsize = g.groups * og * ck;
  if (wsize <= 0) return;
  std::fill(gw, gw + wsize, 0.0f);
  if (g.n <= 0 || len <= 0) return;
  const bool direct = is_direct(g);
  const int64_t cols_floats = direct ? 0 : ck * len;
  const size_t ws_floats = static_cast<size_t>(cols_floats + len * og + ck * og);
  const int max_threads = omp_get_max_threads();
  const bool outer = outer_parallel(g.n, g.n * g.groups * og * len * ck, max_threads);
  const int threads = outer ? max_threads : 1;
  std::vector<float> acc(static_cast<size_t>(threads * wsize), 0.0f);  // per thread: gw^T per group
  auto run_images = [&](int t, int64_t n0, int64_t n1, float* ws, bool inner_parallel) {
    float* cols = ws;
    float* gyt = ws + cols_floats;
    float* tmp = gyt + len * og;
    float* mine = acc.data() + t * wsize;
    for (int64_t n = n0; n < n1; ++n) {
      for (int64_t grp = 0; grp < g.groups; ++grp) {
        const float* xg = x + (n * g.c + grp * cg) * g.h * g.w;
        if (!direct) im2col(xg, cols, cg, g, inner_parallel);
        transpose(gy + (n * g.o + grp * og) * len, gyt, og, len);
        const float* b = direct ? xg : cols;
        if (inner_parallel) {
          matmul(b, gyt, tmp, 1, ck, og, len);
        } else {
          matmul_single_thread(b, gyt, tmp, ck, og, len);
        }
        float* dst = mine + grp * ck * og;
        for (int64_t i = 0; i < ck * og; ++i) dst[i] += tmp[i];
      }
    }
  };
  if (!outer) {
    run_images(0, 0, g.n, workspace(ws_floats), true);
  } else {
    std::vector<float*> ws = thread_workspaces(threads, ws_floats);
#pragma omp parallel num_threads(threads)
    {
      const int t = omp_get_thread_num();
      run_images(t, g.n * t / threads, g.n * (t + 1) / threads, ws[static_cast<size_t>(t)], false);
    }
    for (int t = 1; t < threads; ++t) {
      const float* src = acc.data() + t * wsize;
      for (int64_t i = 0; i < wsize; ++i) acc[static_cast<size_t>(i)] += src[i];
    }
  }
  for (int64_t grp = 0; grp < g.groups; ++grp) transpose(acc.data() + grp * ck * og, gw + grp * og * ck, ck, og);
}

}  // namespace cpu
}  // namespace tg
