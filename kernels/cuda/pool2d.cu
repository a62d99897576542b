// 2-D max and average pooling, forward and backward, float32 NCHW, with the semantics of the
// reference kernels (backends/reference_nn.py), operation for operation:
//
//   max forward   the window's cells are visited in order (i, j); the running maximum starts
//                 at cell (0, 0) and moves on for a strictly greater value or a NaN, so the
//                 first of equal maxima wins and the last NaN wins over everything (PyTorch's
//                 rule). Cells outside the input are -inf. arg = the maximum's flat index
//                 ih * w + iw in the input plane (PyTorch's return_indices), computed the same
//                 way for a padding cell, which can only win when every real cell is -inf.
//   max backward  gx[h, w] = the sum, over the windows (oh, ow) and offsets (i, j) that land on
//                 (h, w), of gy[oh, ow] where arg[oh, ow] == h * w_in + w, added in (i, j) order.
//   avg forward   y = (window sum, cells in (i, j) order, outside cells 0) / divisor.
//   avg backward  gx[h, w] = the sum, over windows in (i, j) order, of gy[oh, ow] / divisor.
//
// Both backward passes are gathers (one thread per input cell), so every gx element is
// written exactly once, without atomics: results are deterministic. The divisor is
// divisor_override when given, else the window's cells inside the input (count_include_pad
// off) or inside the padded input (on); the ceil-mode overhang past the padding never counts.
//
// One thread per output (forward) or input (backward) element, grid-stride loops. In-image
// arithmetic is 32-bit (tg_cuda_pool2d_fits bounds every size); flat indices are 64-bit.
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>

#include "tg_cuda.h"
#include "tg_cuda_device.h"

namespace {

using tg::cuda::grid_for;

constexpr int kThreads = 256;
constexpr int64_t kMaxField = int64_t(1) << 28;

struct Geom {
  int n, c, h, w, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw;
};

__device__ __forceinline__ bool inside(int v, int n) { return v >= 0 && v < n; }

// ---- max ------------------------------------------------------------------------------------

__global__ void __launch_bounds__(kThreads)
max_pool2d_forward(const float* __restrict__ x, float* __restrict__ y, int64_t* __restrict__ arg, Geom g,
                   int64_t total) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int hw = g.h * g.w;
  for (int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < total; idx += stride) {
    const int ow = static_cast<int>(idx % g.ow);
    const int64_t t = idx / g.ow;
    const int oh = static_cast<int>(t % g.oh);
    const int64_t plane = t / g.oh;
    const float* xp = x + plane * hw;
    const int h0 = oh * g.sh - g.ph;
    const int w0 = ow * g.sw - g.pw;
    float best = (inside(h0, g.h) && inside(w0, g.w)) ? xp[h0 * g.w + w0] : -INFINITY;
    int64_t best_at = static_cast<int64_t>(h0) * g.w + w0;
    for (int i = 0; i < g.kh; ++i) {
      const int ih = h0 + i * g.dh;
      const bool row_ok = inside(ih, g.h);
      for (int j = 0; j < g.kw; ++j) {
        if (i == 0 && j == 0) continue;  // the start value
        const int iw = w0 + j * g.dw;
        const float v = (row_ok && inside(iw, g.w)) ? xp[ih * g.w + iw] : -INFINITY;
        if (v > best || isnan(v)) {
          best = v;
          best_at = static_cast<int64_t>(ih) * g.w + iw;
        }
      }
    }
    y[idx] = best;
    arg[idx] = best_at;
  }
}

__global__ void __launch_bounds__(kThreads)
max_pool2d_backward(const float* __restrict__ gy, const int64_t* __restrict__ arg, float* __restrict__ gx, Geom g,
                    int64_t total) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int ohw = g.oh * g.ow;
  for (int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < total; idx += stride) {
    const int iw = static_cast<int>(idx % g.w);
    const int64_t t = idx / g.w;
    const int ih = static_cast<int>(t % g.h);
    const int64_t plane = t / g.h;
    const float* gp = gy + plane * ohw;
    const int64_t* ap = arg + plane * ohw;
    float acc = 0.0f;
    // Window (oh, ow) covers (ih, iw) at offset (i, j) when oh * sh - ph + i * dh == ih.
    for (int i = 0; i < g.kh; ++i) {
      const int th = ih + g.ph - i * g.dh;
      if (th < 0) break;  // th only falls as i grows
      const int oh = th / g.sh;
      if (oh * g.sh != th || oh >= g.oh) continue;
      for (int j = 0; j < g.kw; ++j) {
        const int tw = iw + g.pw - j * g.dw;
        if (tw < 0) break;
        const int ow = tw / g.sw;
        if (ow * g.sw != tw || ow >= g.ow) continue;
        const int o = oh * g.ow + ow;
        if (ap[o] == static_cast<int64_t>(ih) * g.w + iw) acc += gp[o];
      }
    }
    gx[idx] = acc;
  }
}

// ---- average --------------------------------------------------------------------------------

// The divisor of window (oh, ow): as the reference counts its cells (a float32 sum of ones,
// exact below 2^24 cells).
__device__ __forceinline__ float avg_divisor(int oh, int ow, const Geom& g, bool count_include_pad, bool has_divisor,
                                             float divisor_override) {
  if (has_divisor) return divisor_override;
  const int h0 = oh * g.sh - g.ph;
  const int w0 = ow * g.sw - g.pw;
  int rows, cols;
  if (count_include_pad) {  // cells of the padded input: rows [-ph, h + ph)
    rows = min(h0 + g.kh, g.h + g.ph) - h0;
    cols = min(w0 + g.kw, g.w + g.pw) - w0;
  } else {  // cells of the input: rows [0, h)
    rows = min(h0 + g.kh, g.h) - max(h0, 0);
    cols = min(w0 + g.kw, g.w) - max(w0, 0);
  }
  rows = max(rows, 0);  // a window wholly in the padding counts 0 cells (and gives 0 / 0)
  cols = max(cols, 0);
  return static_cast<float>(static_cast<int64_t>(rows) * cols);
}

__global__ void __launch_bounds__(kThreads)
avg_pool2d_forward(const float* __restrict__ x, float* __restrict__ y, Geom g, int64_t total, bool count_include_pad,
                   bool has_divisor, float divisor_override) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int hw = g.h * g.w;
  for (int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < total; idx += stride) {
    const int ow = static_cast<int>(idx % g.ow);
    const int64_t t = idx / g.ow;
    const int oh = static_cast<int>(t % g.oh);
    const int64_t plane = t / g.oh;
    const float* xp = x + plane * hw;
    const int h0 = oh * g.sh - g.ph;
    const int w0 = ow * g.sw - g.pw;
    float sum = 0.0f;  // outside cells add 0, which changes no sum (but -0 + 0 = +0)
    for (int i = 0; i < g.kh; ++i) {
      const int ih = h0 + i;
      if (!inside(ih, g.h)) continue;
      for (int j = 0; j < g.kw; ++j) {
        const int iw = w0 + j;
        if (inside(iw, g.w)) sum += xp[ih * g.w + iw];
      }
    }
    y[idx] = sum / avg_divisor(oh, ow, g, count_include_pad, has_divisor, divisor_override);
  }
}

__global__ void __launch_bounds__(kThreads)
avg_pool2d_backward(const float* __restrict__ gy, float* __restrict__ gx, Geom g, int64_t total,
                    bool count_include_pad, bool has_divisor, float divisor_override) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int ohw = g.oh * g.ow;
  for (int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < total; idx += stride) {
    const int iw = static_cast<int>(idx % g.w);
    const int64_t t = idx / g.w;
    const int ih = static_cast<int>(t % g.h);
    const int64_t plane = t / g.h;
    const float* gp = gy + plane * ohw;
    float acc = 0.0f;
    for (int i = 0; i < g.kh; ++i) {
      const int th = ih + g.ph - i;
      if (th < 0) break;
      const int oh = th / g.sh;
      if (oh * g.sh != th || oh >= g.oh) continue;
      for (int j = 0; j < g.kw; ++j) {
        const int tw = iw + g.pw - j;
        if (tw < 0) break;
        const int ow = tw / g.sw;
        if (ow * g.sw != tw || ow >= g.ow) continue;
        acc += gp[oh * g.ow + ow] / avg_divisor(oh, ow, g, count_include_pad, has_divisor, divisor_override);
      }
    }
    gx[idx] = acc;
  }
}

// ---- host side ------------------------------------------------------------------------------

bool fits(const TgPool2dGeom& g) {
  const int64_t fields[] = {g.n, g.c, g.h, g.w, g.oh, g.ow, g.kh, g.kw, g.sh, g.sw, g.ph, g.pw, g.dh, g.dw};
  for (int64_t v : fields) {
    if (v < 0 || v > kMaxField) return false;
  }
  if (g.kh < 1 || g.kw < 1 || g.sh < 1 || g.sw < 1 || g.dh < 1 || g.dw < 1 || g.oh < 1 || g.ow < 1) return false;
  if (g.h * g.w > INT32_MAX || g.oh * g.ow > INT32_MAX || g.kh * g.kw > INT32_MAX) return false;
  // Window offsets: (oh - 1) * sh + (kh - 1) * dh stays below 2^31 - 2^28 (so does the same
  // sum minus the padding, and h + ph - i * dh in the backward).
  const int64_t limit = INT32_MAX - kMaxField;
  if ((g.oh - 1) * g.sh + (g.kh - 1) * g.dh > limit || (g.ow - 1) * g.sw + (g.kw - 1) * g.dw > limit) return false;
  // Element counts of x and y (n * c * plane) stay far from int64 overflow.
  constexpr int64_t kMaxPlanes = int64_t(1) << 29;
  return g.n == 0 || g.c <= kMaxPlanes / g.n;
}

Geom narrow(const TgPool2dGeom& g) {
  Geom d;
  d.n = static_cast<int>(g.n);
  d.c = static_cast<int>(g.c);
  d.h = static_cast<int>(g.h);
  d.w = static_cast<int>(g.w);
  d.oh = static_cast<int>(g.oh);
  d.ow = static_cast<int>(g.ow);
  d.kh = static_cast<int>(g.kh);
  d.kw = static_cast<int>(g.kw);
  d.sh = static_cast<int>(g.sh);
  d.sw = static_cast<int>(g.sw);
  d.ph = static_cast<int>(g.ph);
  d.pw = static_cast<int>(g.pw);
  d.dh = static_cast<int>(g.dh);
  d.dw = static_cast<int>(g.dw);
  return d;
}

int64_t out_count(const TgPool2dGeom& g) { return g.n * g.c * g.oh * g.ow; }
int64_t in_count(const TgPool2dGeom& g) { return g.n * g.c * g.h * g.w; }

}  // namespace

extern "C" int tg_cuda_pool2d_fits(const TgPool2dGeom* g) { return g != nullptr && fits(*g) ? 1 : 0; }

extern "C" int tg_cuda_max_pool2d(const float* x, float* y, int64_t* arg, const TgPool2dGeom* gp, void* stream) {
  if (gp == nullptr || !fits(*gp)) return static_cast<int>(cudaErrorInvalidValue);
  const int64_t total = out_count(*gp);
  if (total == 0) return 0;
  max_pool2d_forward<<<grid_for(total, kThreads), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      x, y, arg, narrow(*gp), total);
  return static_cast<int>(cudaGetLastError());
}

extern "C" int tg_cuda_max_pool2d_backward(const float* gy, const int64_t* arg, float* gx, const TgPool2dGeom* gp,
                                           void* stream) {
  if (gp == nullptr || !fits(*gp)) return static_cast<int>(cudaErrorInvalidValue);
  const int64_t total = in_count(*gp);
  if (total == 0) return 0;
  max_pool2d_backward<<<grid_for(total, kThreads), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      gy, arg, gx, narrow(*gp), total);
  return static_cast<int>(cudaGetLastError());
}

extern "C" int tg_cuda_avg_pool2d(const float* x, float* y, const TgPool2dGeom* gp, int count_include_pad,
                                  int has_divisor, float divisor_override, void* stream) {
  if (gp == nullptr || !fits(*gp) || gp->dh != 1 || gp->dw != 1) return static_cast<int>(cudaErrorInvalidValue);
  const int64_t total = out_count(*gp);
  if (total == 0) return 0;
  avg_pool2d_forward<<<grid_for(total, kThreads), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      x, y, narrow(*gp), total, count_include_pad != 0, has_divisor != 0, divisor_override);
  return static_cast<int>(cudaGetLastError());
}

extern "C" int tg_cuda_avg_pool2d_backward(const float* gy, float* gx, const TgPool2dGeom* gp, int count_include_pad,
                                           int has_divisor, float divisor_override, void* stream) {
  if (gp == nullptr || !fits(*gp) || gp->dh != 1 || gp->dw != 1) return static_cast<int>(cudaErrorInvalidValue);
  const int64_t total = in_count(*gp);
  if (total == 0) return 0;
  avg_pool2d_backward<<<grid_for(total, kThreads), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      gy, gx, narrow(*gp), total, count_include_pad != 0, has_divisor != 0, divisor_override);
  return static_cast<int>(cudaGetLastError());
}
