// conv2d weight gradient as an implicit GEMM, float32 (v1; the scheme is described in
// conv2d.cu): gw[o, (c, r, s)] = sum over pixels p = (n, oh, ow) of gy[n, o, oh, ow] times
// x[n, c, oh*sh - ph + r*dh, ow*sw - pw + s*dw]. Few output tiles share a long sum, so with a
// workspace the pixels are split into chunks (weight_plan), each chunk's partial gw written to
// its own slice, and sum_chunks adds the slices in chunk order: deterministic either way.
#include <cuda_runtime.h>
#include <stdint.h>

#include "conv2d_tiles.cuh"
#include "tg_cuda.h"
#include "tg_cuda_device.h"

namespace {

using namespace tg::cuda::conv;  // the tile constants and helpers (conv2d_tiles.cuh)

// ---- backward weight: gw = gy @ X^T, over pixel chunks --------------------------------------

// Block outer index = chunk * groups + group. Chunk `chunk` sums pixels
// [chunk * chunk_len, min((chunk + 1) * chunk_len, n * oh * ow)) into out + chunk * chunk_stride.
__global__ void __launch_bounds__(kThreads)
conv2d_backward_weight_v1(const float* __restrict__ gy, const float* __restrict__ x, float* __restrict__ out,
                          Geom g, int64_t col_tiles, int row_tiles, int64_t chunk_len, int64_t chunk_stride) {
  __shared__ Tiles tile;
  const int tid = threadIdx.x;
  const int tx = tid % kColThreads;
  const int ty = tid / kColThreads;
  const BlockTile bt = block_tile(col_tiles, row_tiles);
  const int grp = static_cast<int>(bt.outer % g.groups);
  const int64_t chunk = bt.outer / g.groups;
  const int hw = g.h * g.w;
  const int ohw = g.oh * g.ow;
  const int khw = g.kh * g.kw;
  const int64_t cols = static_cast<int64_t>(g.cg) * khw;  // gw columns j = (c, r, s)
  const int64_t pixels = static_cast<int64_t>(g.n) * ohw;
  const int64_t p0 = chunk * chunk_len;
  const int64_t p1 = p0 + chunk_len < pixels ? p0 + chunk_len : pixels;

  // Both tiles are loaded along k (the pixel): the thread reads pixel p0 + k0 + kf (tracked as
  // (n, oh, ow)) for A rows (output channels) lr + 16 l and B columns lr + 16 l.
  const int kf = tid % kBk;
  const int lr = tid / kBk;  // < kKRows
  const Radix pr = make_radix(g.oh, g.ow, kBk);
  Digits pd = digits_of(p0 + kf, pr);

  // The thread's four B columns j = (c, r, s): channel and window offsets, found once.
  int bc[kKPasses], bro[kKPasses], bso[kKPasses];
  bool bok[kKPasses];
#pragma unroll
  for (int l = 0; l < kKPasses; ++l) {
    const int64_t j = bt.col0 + lr + l * kKRows;
    bok[l] = j < cols;
    const int jj = bok[l] ? static_cast<int>(j) : 0;
    const int c = jj / khw;
    const int rs = jj - c * khw;
    const int r = rs / g.kw;
    const int s = rs - r * g.kw;
    bc[l] = c;
    bro[l] = r * g.dh - g.ph;
    bso[l] = s * g.dw - g.pw;
  }
  const int64_t gy_grp = static_cast<int64_t>(grp) * g.og + bt.row0;  // first output channel of the tile
  const int64_t x_grp = static_cast<int64_t>(grp) * g.cg;             // first input channel of the group

  float acc[kTm][kTn];
  zero(acc);
  for (int64_t k0 = p0; k0 < p1; k0 += kBk) {
    const bool pix_ok = k0 + kf < p1;
    const int64_t n = pd.hi;
    const int q = pd.mid * g.ow + pd.lo;
    const float* gy_pix = gy + (n * g.o + gy_grp) * ohw + q;
#pragma unroll
    for (int l = 0; l < kKPasses; ++l) {
      const int row = lr + l * kKRows;
      tile.a[kf][row] = (pix_ok && bt.row0 + row < g.og) ? gy_pix[static_cast<int64_t>(row) * ohw] : 0.0f;
    }
    const float* x_img = x + (n * g.c + x_grp) * hw;
    const int ih0 = pd.mid * g.sh;
    const int iw0 = pd.lo * g.sw;
#pragma unroll
    for (int l = 0; l < kKPasses; ++l) {
      const int ih = ih0 + bro[l];
      const int iw = iw0 + bso[l];
      const bool ok = pix_ok && bok[l] && inside(ih, g.h) && inside(iw, g.w);
      tile.b[kf][lr + l * kKRows] = ok ? x_img[static_cast<int64_t>(bc[l]) * hw + ih * g.w + iw] : 0.0f;
    }
    advance(pd, pr);
    __syncthreads();
    multiply_slice(tile, acc, tx, ty);
    __syncthreads();
  }

  float* out_chunk = out + chunk * chunk_stride;
#pragma unroll
  for (int i = 0; i < kTm; ++i) {
    const int row = ty + i * kRowThreads;
    if (bt.row0 + row >= g.og) continue;
    float* out_row = out_chunk + (gy_grp + row) * cols;
#pragma unroll
    for (int j = 0; j < kTn; ++j) {
      const int64_t col = bt.col0 + tx + j * kColThreads;
      if (col < cols) out_row[col] = acc[i][j];
    }
  }
}

// gw[i] = sum over chunks, in chunk order, of ws[chunk * total + i].
__global__ void sum_chunks(const float* __restrict__ ws, float* __restrict__ gw, int64_t chunks, int64_t total) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += stride) {
    float acc = 0.0f;
    for (int64_t c = 0; c < chunks; ++c) acc += ws[c * total + i];
    gw[i] = acc;
  }
}

}  // namespace

extern "C" int64_t tg_cuda_conv2d_backward_weight_workspace(const TgConv2dGeom* gp) {
  if (gp == nullptr || !fits(*gp)) return 0;
  const TgConv2dGeom& g = *gp;
  const WeightPlan plan = weight_plan(g);
  return plan.chunks > 1 ? plan.chunks * g.o * (g.c / g.groups) * g.kh * g.kw : 0;
}

extern "C" int tg_cuda_conv2d_backward_weight(const float* gy, const float* x, float* gw, float* workspace,
                                              const TgConv2dGeom* gp, void* stream) {
  if (gp == nullptr || !fits(*gp)) return static_cast<int>(cudaErrorInvalidValue);
  const TgConv2dGeom& g = *gp;
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  const int64_t cols = (g.c / g.groups) * g.kh * g.kw;
  const int64_t gw_size = g.o * cols;
  if (gw_size == 0) return 0;
  const int64_t pixels = g.n * g.oh * g.ow;
  if (pixels == 0) return zero_fill(gw, gw_size, s);  // no images: the sum is empty
  const Geom d = narrow(g);
  const WeightPlan plan = workspace != nullptr ? weight_plan(g) : WeightPlan{1, pixels};
  const bool split = plan.chunks > 1;
  const int64_t col_tiles = ceil_div(cols, kBn);
  const int row_tiles = static_cast<int>(ceil_div(d.og, kBm));
  const int64_t blocks = col_tiles * row_tiles * g.groups * plan.chunks;
  conv2d_backward_weight_v1<<<static_cast<unsigned int>(blocks), kThreads, 0, s>>>(
      gy, x, split ? workspace : gw, d, col_tiles, row_tiles, plan.chunk_len, split ? gw_size : 0);
  cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess || !split) return static_cast<int>(err);
  sum_chunks<<<tg::cuda::grid_for(gw_size, 256), 256, 0, s>>>(workspace, gw, plan.chunks, gw_size);
  return static_cast<int>(cudaGetLastError());
}
