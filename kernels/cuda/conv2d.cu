// 2-D convolution forward, input gradient and weight gradient as implicit GEMMs, float32
// (v1: tiled SIMT, the version every later one is checked against). This file: the forward
// and input-gradient kernels; conv2d_weight.cu: the weight gradient; conv2d_tiles.cuh: the
// tiles, counters and size checks they share.
//
// Layout: none of our own. x and y stay NCHW, w stays OIHW; each GEMM operand is gathered
// from them on the fly, one 16-deep slice at a time, into shared-memory tiles (no im2col
// buffer, no transposed copies). Per group g of `groups` (og = o / groups output and
// cg = c / groups input channels per group):
//
//   forward          y[n, o, p]  = sum_k w[o, k] * X[k, (n, p)]     rows o < og, columns (n, oh, ow),
//                                                                    k = (c, r, s) < cg*kh*kw,
//                    X[(c, r, s), (n, oh, ow)] = x[n, c, oh*sh - ph + r*dh, ow*sw - pw + s*dw] (0 outside)
//   backward input   gx[n, c, q] = sum_k w[o, c, r, s] * G[k, (n, q)] rows c < cg, columns (n, ih, iw),
//                                                                    k = (o, r, s) < og*kh*kw,
//                    G[(o, r, s), (n, ih, iw)] = gy[n, o, (ih + ph - r*dh) / sh, (iw + pw - s*dw) / sw]
//                    where both divisions are exact and land inside gy, else 0: a gather per
//                    input pixel, so every gx element is written once (no atomics, no zeroing).
//                    With stride s only about 1 in sh*sw taps reaches an output pixel; v1
//                    multiplies the zeros of the others rather than splitting by stride phase.
//   backward weight  gw[o, j]    = sum_p gy[o, p] * X[j, p]         rows o < og, columns j = (c, r, s),
//                                                                    summed over p = (n, oh, ow)
//
// The weight gradient sums over all N*OH*OW output pixels while it has few output tiles, so
// with a workspace the sum is split into chunks whose partial results a second kernel adds
// in chunk order; results are bit-identical run to run either way.
//
// Tiles: 64 x 64 outputs per 256-thread block, 4 x 4 per thread at rows ty + 16 i and columns
// tx + 16 j (so a warp's shared reads are 16 consecutive words plus a broadcast), 16-deep
// slices. Both operand tiles are stored k-major ([k][row] and [k][column]) with rows padded
// by 2 words: loads that run along k (16 threads on 16 k of one row, then the next row) hit
// banks 2 k + row, all distinct in a warp; loads that run along columns are conflict-free
// anyway. The (c, r, s) or (n, oh, ow) decomposition of k is carried from slice to slice by
// mixed-radix counters (no divisions in the loop).
//
// In-image arithmetic is 32-bit (tg_cuda_conv2d_fits bounds every size); offsets into the
// arrays are 64-bit.
#include <cuda_runtime.h>
#include <stdint.h>

#include "conv2d_tiles.cuh"
#include "tg_cuda.h"

namespace {

using namespace tg::cuda::conv;  // the tile constants and helpers (conv2d_tiles.cuh)

// ---- forward: y = w @ X ---------------------------------------------------------------

__global__ void __launch_bounds__(kThreads)
conv2d_forward_v1(const float* __restrict__ x, const float* __restrict__ w, float* __restrict__ y, Geom g,
                  int64_t col_tiles, int row_tiles) {
  __shared__ Tiles tile;
  const int tid = threadIdx.x;
  const int tx = tid % kColThreads;
  const int ty = tid / kColThreads;
  const BlockTile bt = block_tile(col_tiles, row_tiles);
  const int grp = static_cast<int>(bt.outer);
  const int hw = g.h * g.w;
  const int ohw = g.oh * g.ow;
  const int64_t depth = static_cast<int64_t>(g.cg) * g.kh * g.kw;
  const int64_t pixels = static_cast<int64_t>(g.n) * ohw;

  // A = this group's weights, rows contiguous in k: the thread loads k0 + a_k of rows a_r + 16 l.
  const int a_k = tid % kBk;
  const int a_r = tid / kBk;  // < kKRows
  const float* w_rows = w + (static_cast<int64_t>(grp) * g.og + bt.row0) * depth;

  // B = X: the thread loads column b_c (one output pixel) at k0 + b_k + 4 l.
  const int b_c = tid % kBn;
  const int b_k = tid / kBn;  // < kColK
  const int64_t p = bt.col0 + b_c;
  const bool p_ok = p < pixels;
  int ih0 = 0, iw0 = 0;
  const float* x_img = x;
  if (p_ok) {
    const int64_t n = p / ohw;
    const int q = static_cast<int>(p - n * ohw);
    const int oh = q / g.ow;
    const int ow = q - oh * g.ow;
    ih0 = oh * g.sh - g.ph;
    iw0 = ow * g.sw - g.pw;
    x_img = x + (n * g.c + static_cast<int64_t>(grp) * g.cg) * hw;
  }
  const Radix kr = make_radix(g.kh, g.kw, kBk);
  Digits kd[kColPasses];  // (c, r, s) of k = k0 + b_k + 4 l
#pragma unroll
  for (int l = 0; l < kColPasses; ++l) kd[l] = digits_of(b_k + l * kColK, kr);

  float acc[kTm][kTn];
  zero(acc);
  for (int64_t k0 = 0; k0 < depth; k0 += kBk) {
    const int64_t k = k0 + a_k;
#pragma unroll
    for (int l = 0; l < kKPasses; ++l) {
      const int row = a_r + l * kKRows;
      tile.a[a_k][row] = (bt.row0 + row < g.og && k < depth) ? w_rows[row * depth + k] : 0.0f;
    }
#pragma unroll
    for (int l = 0; l < kColPasses; ++l) {
      const Digits& d = kd[l];
      const int ih = ih0 + d.mid * g.dh;
      const int iw = iw0 + d.lo * g.dw;
      const bool ok = p_ok && d.hi < g.cg && inside(ih, g.h) && inside(iw, g.w);
      tile.b[b_k + l * kColK][b_c] = ok ? x_img[static_cast<int64_t>(d.hi) * hw + ih * g.w + iw] : 0.0f;
      advance(kd[l], kr);
    }
    __syncthreads();
    multiply_slice(tile, acc, tx, ty);
    __syncthreads();  // the next slice's loads overwrite the tiles
  }

#pragma unroll
  for (int j = 0; j < kTn; ++j) {
    const int64_t col = bt.col0 + tx + j * kColThreads;
    if (col >= pixels) continue;
    const int64_t n = col / ohw;
    const int64_t q = col - n * ohw;
    float* out = y + (n * g.o + static_cast<int64_t>(grp) * g.og + bt.row0) * ohw + q;
#pragma unroll
    for (int i = 0; i < kTm; ++i) {
      const int row = ty + i * kRowThreads;
      if (bt.row0 + row < g.og) out[static_cast<int64_t>(row) * ohw] = acc[i][j];
    }
  }
}

// ---- backward input: gx = w^T @ G --------------------------------------------------------

__global__ void __launch_bounds__(kThreads)
conv2d_backward_input_v1(const float* __restrict__ gy, const float* __restrict__ w, float* __restrict__ gx,
                         Geom g, int64_t col_tiles, int row_tiles) {
  __shared__ Tiles tile;
  const int tid = threadIdx.x;
  const int tx = tid % kColThreads;
  const int ty = tid / kColThreads;
  const BlockTile bt = block_tile(col_tiles, row_tiles);
  const int grp = static_cast<int>(bt.outer);
  const int hw = g.h * g.w;
  const int ohw = g.oh * g.ow;
  const int khw = g.kh * g.kw;
  const int64_t depth = static_cast<int64_t>(g.og) * khw;
  const int64_t pixels = static_cast<int64_t>(g.n) * hw;
  const Radix kr = make_radix(g.kh, g.kw, kBk);  // k = (o, r, s)

  // A[c, (o, r, s)] = w[grp * og + o, c, r, s]: the thread loads k0 + a_k of rows (input
  // channels) a_r + 16 l, tracking (o, r, s) of its k.
  const int a_k = tid % kBk;
  const int a_r = tid / kBk;
  const float* w_grp = w + static_cast<int64_t>(grp) * g.og * g.cg * khw;
  Digits ad = digits_of(a_k, kr);

  // B = G: the thread loads column b_c (one input pixel) at k0 + b_k + 4 l.
  const int b_c = tid % kBn;
  const int b_k = tid / kBn;
  const int64_t p = bt.col0 + b_c;
  const bool p_ok = p < pixels;
  int th0 = 0, tw0 = 0;
  const float* gy_img = gy;
  if (p_ok) {
    const int64_t n = p / hw;
    const int q = static_cast<int>(p - n * hw);
    const int ih = q / g.w;
    const int iw = q - ih * g.w;
    th0 = ih + g.ph;
    tw0 = iw + g.pw;
    gy_img = gy + (n * g.o + static_cast<int64_t>(grp) * g.og) * ohw;
  }
  Digits kd[kColPasses];  // (o, r, s) of k = k0 + b_k + 4 l
#pragma unroll
  for (int l = 0; l < kColPasses; ++l) kd[l] = digits_of(b_k + l * kColK, kr);

  float acc[kTm][kTn];
  zero(acc);
  for (int64_t k0 = 0; k0 < depth; k0 += kBk) {
    const bool ak_ok = ad.hi < g.og;  // k0 + a_k < depth
    const int64_t w_off = (static_cast<int64_t>(ad.hi) * g.cg + bt.row0) * khw + ad.mid * g.kw + ad.lo;
#pragma unroll
    for (int l = 0; l < kKPasses; ++l) {
      const int row = a_r + l * kKRows;
      tile.a[a_k][row] = (ak_ok && bt.row0 + row < g.cg) ? w_grp[w_off + static_cast<int64_t>(row) * khw] : 0.0f;
    }
    advance(ad, kr);
#pragma unroll
    for (int l = 0; l < kColPasses; ++l) {
      const Digits& d = kd[l];
      const int th = th0 - d.mid * g.dh;  // = oh * sh when this (r, s) reaches an output pixel
      const int tw = tw0 - d.lo * g.dw;
      bool ok = p_ok && d.hi < g.og && th >= 0 && tw >= 0;
      int oh = 0, ow = 0;
      if (ok) {
        oh = th / g.sh;
        ow = tw / g.sw;
        ok = oh * g.sh == th && ow * g.sw == tw && oh < g.oh && ow < g.ow;
      }
      tile.b[b_k + l * kColK][b_c] = ok ? gy_img[static_cast<int64_t>(d.hi) * ohw + oh * g.ow + ow] : 0.0f;
      advance(kd[l], kr);
    }
    __syncthreads();
    multiply_slice(tile, acc, tx, ty);
    __syncthreads();
  }

#pragma unroll
  for (int j = 0; j < kTn; ++j) {
    const int64_t col = bt.col0 + tx + j * kColThreads;
    if (col >= pixels) continue;
    const int64_t n = col / hw;
    const int64_t q = col - n * hw;
    float* out = gx + (n * g.c + static_cast<int64_t>(grp) * g.cg + bt.row0) * hw + q;
#pragma unroll
    for (int i = 0; i < kTm; ++i) {
      const int row = ty + i * kRowThreads;
      if (bt.row0 + row < g.cg) out[static_cast<int64_t>(row) * hw] = acc[i][j];
    }
  }
}

}  // namespace

extern "C" int tg_cuda_conv2d_fits(const TgConv2dGeom* g) { return g != nullptr && fits(*g) ? 1 : 0; }

extern "C" int tg_cuda_conv2d(const float* x, const float* w, float* y, const TgConv2dGeom* gp, void* stream) {
  if (gp == nullptr || !fits(*gp)) return static_cast<int>(cudaErrorInvalidValue);
  const TgConv2dGeom& g = *gp;
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  const int64_t y_size = g.n * g.o * g.oh * g.ow;
  if (y_size == 0) return 0;
  if (g.c == 0 || g.kh == 0 || g.kw == 0) return zero_fill(y, y_size, s);  // empty sums
  const Geom d = narrow(g);
  const int64_t col_tiles = ceil_div(g.n * g.oh * g.ow, kBn);
  const int row_tiles = static_cast<int>(ceil_div(d.og, kBm));
  const int64_t blocks = col_tiles * row_tiles * g.groups;
  conv2d_forward_v1<<<static_cast<unsigned int>(blocks), kThreads, 0, s>>>(x, w, y, d, col_tiles, row_tiles);
  return static_cast<int>(cudaGetLastError());
}

extern "C" int tg_cuda_conv2d_backward_input(const float* gy, const float* w, float* gx, const TgConv2dGeom* gp,
                                             void* stream) {
  if (gp == nullptr || !fits(*gp)) return static_cast<int>(cudaErrorInvalidValue);
  const TgConv2dGeom& g = *gp;
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  const int64_t gx_size = g.n * g.c * g.h * g.w;
  if (gx_size == 0) return 0;
  if (g.o == 0 || g.kh == 0 || g.kw == 0) return zero_fill(gx, gx_size, s);
  const Geom d = narrow(g);
  const int64_t col_tiles = ceil_div(g.n * g.h * g.w, kBn);
  const int row_tiles = static_cast<int>(ceil_div(d.cg, kBm));
  const int64_t blocks = col_tiles * row_tiles * g.groups;
  conv2d_backward_input_v1<<<static_cast<unsigned int>(blocks), kThreads, 0, s>>>(gy, w, gx, d, col_tiles,
                                                                                  row_tiles);
  return static_cast<int>(cudaGetLastError());
}
