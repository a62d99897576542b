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
#include "epilogue.cuh"
#include "tg_cuda.h"

namespace {

using namespace tg::cuda::conv;  // the tile constants and helpers (conv2d_tiles.cuh)

// ---- the loads and the store, shared by both kernels ------------------------------------

// A tile: tile.a[a_k][row] = src[off + row * row_stride] for the thread's rows a_r + 16 l, zero
// where k_ok is false (k past the sum) or row >= rows_left (past the ragged edge).
__device__ __forceinline__ void load_a(Tiles& tile, int a_k, int a_r, const float* __restrict__ src, int64_t off,
                                       int64_t row_stride, int rows_left, bool k_ok) {
#pragma unroll
  for (int l = 0; l < kKPasses; ++l) {
    const int row = a_r + l * kKRows;
    tile.a[a_k][row] = (k_ok && row < rows_left) ? src[off + row * row_stride] : 0.0f;
  }
}

// B tile: the thread's column b_c at k = k0 + b_k + 4 l, whose (hi, mid, lo) digits are kd[l]:
// tap(d, &off) says whether the element is inside the operand and where (src[off]); outside is
// zero. Then each counter moves on to the next slice.
template <class Tap>
__device__ __forceinline__ void gather_b(Tiles& tile, int b_k, int b_c, Digits (&kd)[kColPasses], const Radix& kr,
                                         const float* __restrict__ src, Tap& tap) {
#pragma unroll
  for (int l = 0; l < kColPasses; ++l) {
    int64_t off = 0;
    const bool ok = tap(kd[l], &off);
    tile.b[b_k + l * kColK][b_c] = ok ? src[off] : 0.0f;
    advance(kd[l], kr);
  }
}

// acc[i][j] = act(acc[i][j] + bias[row]) for the thread's rows ty + 16 i (bias: null, or the
// tile's first row; rows past the edge read no bias and are not stored).
__device__ __forceinline__ void apply_epilogue(float (&acc)[kTm][kTn], int ty, const float* __restrict__ bias,
                                               int rows_left, int act) {
#pragma unroll
  for (int i = 0; i < kTm; ++i) {
    const int row = ty + i * kRowThreads;
    const float b = bias != nullptr && row < rows_left ? bias[row] : 0.0f;
#pragma unroll
    for (int j = 0; j < kTn; ++j) acc[i][j] = tg::cuda::epilogue::apply(acc[i][j], b, act);
  }
}

// Stores the block's outputs into an NCHW array: GEMM column col < pixels is pixel (n, q) of
// the `plane`-sized images, row `row` < rows_left is channel ch0 + row of `channels`.
__device__ __forceinline__ void store_nchw(const float (&acc)[kTm][kTn], float* __restrict__ out, int64_t col0,
                                           int tx, int ty, int64_t pixels, int plane, int channels, int64_t ch0,
                                           int rows_left) {
#pragma unroll
  for (int j = 0; j < kTn; ++j) {
    const int64_t col = col0 + tx + j * kColThreads;
    if (col >= pixels) continue;
    const int64_t n = quotient(col, plane);
    float* dst = out + (n * channels + ch0) * plane + (col - n * plane);
#pragma unroll
    for (int i = 0; i < kTm; ++i) {
      const int row = ty + i * kRowThreads;
      if (row < rows_left) dst[static_cast<int64_t>(row) * plane] = acc[i][j];
    }
  }
}

// ---- forward: y = act(w @ X + bias) -------------------------------------------------------

__global__ void __launch_bounds__(kThreads)
conv2d_forward_v1(const float* __restrict__ x, const float* __restrict__ w, const float* __restrict__ bias,
                  float* __restrict__ y, Geom g, int act, int64_t col_tiles, int row_tiles) {
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
  const int rows_left = g.og - bt.row0;
  const int64_t ch0 = static_cast<int64_t>(grp) * g.og + bt.row0;  // the tile's first output channel

  // A = this group's weights, rows contiguous in k: the thread loads k0 + a_k of rows a_r + 16 l.
  const int a_k = tid % kBk;
  const int a_r = tid / kBk;  // < kKRows
  const float* w_rows = w + ch0 * depth;

  // B = X: the thread loads column b_c (one output pixel) at k0 + b_k + 4 l.
  const int b_c = tid % kBn;
  const int b_k = tid / kBn;  // < kColK
  const int64_t p = bt.col0 + b_c;
  const bool p_ok = p < pixels;
  int ih0 = 0, iw0 = 0;
  const float* x_img = x;
  if (p_ok) {
    const Pixel px = pixel_of(p, ohw, g.ow);
    ih0 = px.row * g.sh - g.ph;
    iw0 = px.col * g.sw - g.pw;
    x_img = x + (px.n * g.c + static_cast<int64_t>(grp) * g.cg) * hw;
  }
  const Radix kr = make_radix(g.kh, g.kw, kBk);
  Digits kd[kColPasses];  // (c, r, s) of k = k0 + b_k + 4 l
#pragma unroll
  for (int l = 0; l < kColPasses; ++l) kd[l] = digits_of(b_k + l * kColK, kr);
  auto tap = [&](const Digits& d, int64_t* off) {
    const int ih = ih0 + d.mid * g.dh;
    const int iw = iw0 + d.lo * g.dw;
    *off = static_cast<int64_t>(d.hi) * hw + ih * g.w + iw;
    return p_ok && d.hi < g.cg && inside(ih, g.h) && inside(iw, g.w);
  };

  float acc[kTm][kTn];
  zero(acc);
  for (int64_t k0 = 0; k0 < depth; k0 += kBk) {
    const int64_t k = k0 + a_k;
    load_a(tile, a_k, a_r, w_rows, k, depth, rows_left, k < depth);
    gather_b(tile, b_k, b_c, kd, kr, x_img, tap);
    __syncthreads();
    multiply_slice(tile, acc, tx, ty);
    __syncthreads();  // the next slice's loads overwrite the tiles
  }
  apply_epilogue(acc, ty, bias != nullptr ? bias + ch0 : nullptr, rows_left, act);
  store_nchw(acc, y, bt.col0, tx, ty, pixels, ohw, g.o, ch0, rows_left);
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
  const int rows_left = g.cg - bt.row0;
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
    const Pixel px = pixel_of(p, hw, g.w);
    th0 = px.row + g.ph;
    tw0 = px.col + g.pw;
    gy_img = gy + (px.n * g.o + static_cast<int64_t>(grp) * g.og) * ohw;
  }
  Digits kd[kColPasses];  // (o, r, s) of k = k0 + b_k + 4 l
#pragma unroll
  for (int l = 0; l < kColPasses; ++l) kd[l] = digits_of(b_k + l * kColK, kr);
  auto tap = [&](const Digits& d, int64_t* off) {
    const int th = th0 - d.mid * g.dh;  // = oh * sh when this (r, s) reaches an output pixel
    const int tw = tw0 - d.lo * g.dw;
    bool ok = p_ok && d.hi < g.og && th >= 0 && tw >= 0;
    int oh = 0, ow = 0;
    if (ok) {
      oh = th / g.sh;
      ow = tw / g.sw;
      ok = oh * g.sh == th && ow * g.sw == tw && oh < g.oh && ow < g.ow;
    }
    *off = static_cast<int64_t>(d.hi) * ohw + oh * g.ow + ow;
    return ok;
  };

  float acc[kTm][kTn];
  zero(acc);
  for (int64_t k0 = 0; k0 < depth; k0 += kBk) {
    const int64_t w_off = (static_cast<int64_t>(ad.hi) * g.cg + bt.row0) * khw + ad.mid * g.kw + ad.lo;
    load_a(tile, a_k, a_r, w_grp, w_off, khw, rows_left, ad.hi < g.og);  // ad.hi < og: k0 + a_k < depth
    advance(ad, kr);
    gather_b(tile, b_k, b_c, kd, kr, gy_img, tap);
    __syncthreads();
    multiply_slice(tile, acc, tx, ty);
    __syncthreads();
  }
  store_nchw(acc, gx, bt.col0, tx, ty, pixels, hw, g.c, static_cast<int64_t>(grp) * g.cg + bt.row0, rows_left);
}

}  // namespace

extern "C" int tg_cuda_conv2d_fits(const TgConv2dGeom* g) { return g != nullptr && fits(*g) ? 1 : 0; }

extern "C" int tg_cuda_conv2d(const float* x, const float* w, const float* bias, float* y, const TgConv2dGeom* gp,
                              int act, void* stream) {
  if (gp == nullptr || !fits(*gp) || !epilogue_ok(act)) return static_cast<int>(cudaErrorInvalidValue);
  const TgConv2dGeom& g = *gp;
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  if (g.n * g.o * g.oh * g.ow == 0) return 0;
  if (g.c == 0 || g.kh == 0 || g.kw == 0) return empty_sum(y, bias, g, act, s);
  const Geom d = narrow(g);
  const int64_t col_tiles = ceil_div(g.n * g.oh * g.ow, kBn);
  const int row_tiles = static_cast<int>(ceil_div(d.og, kBm));
  const int64_t blocks = col_tiles * row_tiles * g.groups;
  conv2d_forward_v1<<<static_cast<unsigned int>(blocks), kThreads, 0, s>>>(x, w, bias, y, d, act, col_tiles,
                                                                           row_tiles);
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
