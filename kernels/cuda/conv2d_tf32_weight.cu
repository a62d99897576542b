// conv2d weight gradient on the tensor cores in TF32 (v2; the scheme of v1 in
// conv2d_weight.cu, the tiles of conv2d_tf32_tiles.cuh): gw[o, (c, r, s)] = sum over pixels
// p = (n, oh, ow) of gy[n, o, oh, ow] times x[n, c, oh*sh - ph + r*dh, ow*sw - pw + s*dw].
// With a workspace the pixels are split into chunks (conv_tf32::weight_plan), each chunk's
// partial gw written to its own slice and the slices added in chunk order: no atomics, the
// result repeats bit for bit.
//
// Both operands are gathered along k (the pixel) and staged [row][k]: a thread loads pixel
// k0 + kf of A rows (output channels) lr + 16 l (or 32 l) and of B columns lr * 8 + l, l < 8
// (or lr * 4 + l, l < 4), whose
// (c, r, s) offsets a per-block table holds.
#include <cuda_runtime.h>
#include <stdint.h>

#include "conv2d_tf32_tiles.cuh"
#include "tg_cuda.h"
#include "tg_cuda_device.h"

namespace {

using namespace tg::cuda::conv_tf32;
using tg::cuda::cp_async4;
using tg::cuda::conv::Digits;
using tg::cuda::conv::inside;
using tg::cuda::conv::Radix;
using tg::cuda::conv::advance;
using tg::cuda::conv::digits_of;
using tg::cuda::conv::make_radix;
namespace conv = tg::cuda::conv;

constexpr int kKThreads = kBk;  // threads along k (pixels)
constexpr int kOutside = -(1 << 30);  // a window offset that lands outside any image

struct Column {
  int rd, sd;   // window offsets r*dh - ph, s*dw - pw
  int64_t off;  // c*hw + rd*w + sd
};

// Block outer index = chunk * groups + group. Chunk `chunk` sums pixels
// [chunk * chunk_len, min((chunk + 1) * chunk_len, n * oh * ow)) into out + chunk * chunk_stride.
template <int kBm>
__global__ void __launch_bounds__(Threads<kBm>::count, Threads<kBm>::min_blocks)
conv2d_backward_weight_tf32(const float* __restrict__ gy, const float* __restrict__ x, float* __restrict__ out,
                            Geom g, int64_t col_tiles, int row_tiles, int64_t chunk_len, int64_t chunk_stride) {
  extern __shared__ float smem[];
  constexpr int kLineThreads = Threads<kBm>::count / kKThreads;  // along rows / columns: 16 or 32
  constexpr int kBPerThread = kBn / kLineThreads;                 // consecutive B columns: 8 or 4
  const int tid = threadIdx.x;
  const BlockTile bt = block_tile(kBm, col_tiles, row_tiles);
  const int grp = static_cast<int>(bt.outer % g.groups);
  const int64_t chunk = bt.outer / g.groups;
  const int hw = g.h * g.w;
  const int ohw = g.oh * g.ow;
  const int khw = g.kh * g.kw;
  const int64_t cols = static_cast<int64_t>(g.cg) * khw;  // gw columns j = (c, r, s)
  const int64_t pixels = static_cast<int64_t>(g.n) * ohw;
  const int64_t p0 = chunk * chunk_len;
  const int64_t p1 = p0 + chunk_len < pixels ? p0 + chunk_len : pixels;
  const int rows_left = g.og - bt.row0;

  const int kf = tid % kKThreads;
  const int lr = tid / kKThreads;
  const Radix pr = make_radix(g.oh, g.ow, kBk);
  Digits pd = digits_of(p0 + kf, pr);  // (n, oh, ow) of the thread's pixel in the next slice
  int64_t pix_left = p1 - p0 - kf;  // pixels of the chunk from the thread's next one on
  const int64_t gy_tile = static_cast<int64_t>(grp) * g.og + bt.row0;  // first output channel of the tile
  const int64_t x_grp = static_cast<int64_t>(grp) * g.cg;             // first input channel of the group
  // Each B column j = (c, r, s) of the tile as x's offset c*hw + (r*dh - ph)*w + (s*dw - pw)
  // from the pixel's (oh*sh, ow*sw) and the window offsets: a shared table, filled once, so
  // that a gather costs one shared read (a column past the end gets an offset no pixel reaches).
  Column* table = reinterpret_cast<Column*>(smem + kStages * Stage<kBm, false>::words);
  if (tid < kBn) {
    const int64_t j = bt.col0 + tid;
    Column e{kOutside, 0, 0};
    if (j < cols) {
      const int c = static_cast<int>(j / khw);
      const int rs = static_cast<int>(j - static_cast<int64_t>(c) * khw);
      const int r = rs / g.kw;
      e.rd = r * g.dh - g.ph;
      e.sd = (rs - r * g.kw) * g.dw - g.pw;
      e.off = static_cast<int64_t>(c) * hw + static_cast<int64_t>(e.rd) * g.w + e.sd;
    }
    table[tid] = e;
  }
  __syncthreads();
  const int64_t row_step = static_cast<int64_t>(kLineThreads) * ohw;

  auto load = [&](float* as, float* bs) {
    const bool pix_ok = pix_left > 0;
    const int64_t n = pix_ok ? pd.hi : 0;
    const int q = pd.mid * g.ow + pd.lo;
    const float* gy_row = gy + (n * g.o + gy_tile + lr) * ohw + q;  // row lr, then every kLineThreads-th
#pragma unroll
    for (int l = 0; l < kBm / kLineThreads; ++l) {
      const int row = lr + l * kLineThreads;
      const bool ok = pix_ok && row < rows_left;
      cp_async4(as + row * kLdK + kf, ok ? gy_row : gy, ok);
      gy_row += row_step;
    }
    const int ih0 = pd.mid * g.sh;
    const int iw0 = pd.lo * g.sw;
    const float* x_pix = x + (n * g.c + x_grp) * hw + ih0 * g.w + iw0;
#pragma unroll
    for (int l = 0; l < kBPerThread; ++l) {
      // Read the table anew each slice, a few entries at a time, rather than hold 8 entries in
      // registers (the compiler cannot otherwise tell that nothing writes it).
      if (l % 4 == 0) asm volatile("" ::: "memory");
      const Column e = table[lr * kBPerThread + l];
      const bool ok = pix_ok && inside(ih0 + e.rd, g.h) && inside(iw0 + e.sd, g.w);
      cp_async4(bs + (lr * kBPerThread + l) * kLdK + kf, ok ? x_pix + e.off : x, ok);
    }
    advance(pd, pr);
    pix_left -= kBk;
  };

  // The output tile, found before the loop so that fewer values stay live through it.
  float* const out_tile = out + chunk * chunk_stride + gy_tile * cols + bt.col0;
  const int cols_left = cols - bt.col0 < kBn ? static_cast<int>(cols - bt.col0) : kBn;

  Acc acc;
  zero(acc);
  run_pipeline<kBm, false>(smem, load, (p1 - p0 + kBk - 1) / kBk, acc);

  bool col_ok = false;
  float* out_col = out_tile;
  auto column = [&](int col) {
    col_ok = col < cols_left;
    out_col = out_tile + col;
  };
  auto put = [&](int row, float v) {
    if (col_ok && row < rows_left) out_col[static_cast<int64_t>(row) * cols] = v;
  };
  for_each_output(acc, column, put);
}

// gw[i] = sum over chunks, in chunk order, of ws[chunk * total + i] (as v1's).
__global__ void sum_chunks_tf32(const float* __restrict__ ws, float* __restrict__ gw, int64_t chunks,
                                int64_t total) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += stride) {
    float acc = 0.0f;
    for (int64_t c = 0; c < chunks; ++c) acc += ws[c * total + i];
    gw[i] = acc;
  }
}

template <int kBm>
int backward_weight(const float* gy, const float* x, float* out, const Geom& d, int64_t col_tiles,
                    int64_t chunks, int64_t chunk_len, int64_t chunk_stride, cudaStream_t s) {
  const int row_tiles = (d.og + kBm - 1) / kBm;
  const int64_t blocks = col_tiles * row_tiles * d.groups * chunks;
  if (blocks > conv::kMaxGrid) return static_cast<int>(cudaErrorInvalidValue);
  constexpr size_t smem = Stage<kBm, false>::smem_bytes + kBn * sizeof(Column);
  int err = static_cast<int>(cudaFuncSetAttribute(conv2d_backward_weight_tf32<kBm>,
                                                  cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                  static_cast<int>(smem)));
  if (err != 0) return err;
  conv2d_backward_weight_tf32<kBm><<<static_cast<unsigned int>(blocks), Threads<kBm>::count, smem, s>>>(
      gy, x, out, d, col_tiles, row_tiles, chunk_len, chunk_stride);
  return static_cast<int>(cudaGetLastError());
}

}  // namespace

extern "C" int64_t tg_cuda_conv2d_backward_weight_workspace_tf32(const TgConv2dGeom* gp) {
  if (gp == nullptr || !conv::fits(*gp)) return 0;
  const TgConv2dGeom& g = *gp;
  if (!covers(g)) return tg_cuda_conv2d_backward_weight_workspace(gp);  // v1 runs
  const conv::WeightPlan plan = weight_plan(g);
  return plan.chunks > 1 ? plan.chunks * g.o * (g.c / g.groups) * g.kh * g.kw : 0;
}

extern "C" int tg_cuda_conv2d_backward_weight_tf32(const float* gy, const float* x, float* gw, float* workspace,
                                                   const TgConv2dGeom* gp, void* stream) {
  if (gp == nullptr || !conv::fits(*gp)) return static_cast<int>(cudaErrorInvalidValue);
  const TgConv2dGeom& g = *gp;
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  const int64_t cols = (g.c / g.groups) * g.kh * g.kw;
  const int64_t gw_size = g.o * cols;
  if (gw_size == 0) return 0;
  const int64_t pixels = g.n * g.oh * g.ow;
  if (pixels == 0) return conv::zero_fill(gw, gw_size, s);  // no images: the sum is empty
  if (!covers(g)) return tg_cuda_conv2d_backward_weight(gy, x, gw, workspace, gp, stream);
  const Geom d = conv::narrow(g);
  const conv::WeightPlan plan = workspace != nullptr ? weight_plan(g) : conv::WeightPlan{1, pixels};
  const bool split = plan.chunks > 1;
  const int64_t col_tiles = conv::ceil_div(cols, kBn);
  float* out = split ? workspace : gw;
  const int64_t stride = split ? gw_size : 0;
  const int err = rows_per_block(d.og) == 64
                      ? backward_weight<64>(gy, x, out, d, col_tiles, plan.chunks, plan.chunk_len, stride, s)
                      : backward_weight<128>(gy, x, out, d, col_tiles, plan.chunks, plan.chunk_len, stride, s);
  if (err != 0 || !split) return err;
  sum_chunks_tf32<<<tg::cuda::grid_for(gw_size, 256), 256, 0, s>>>(workspace, gw, plan.chunks, gw_size);
  return static_cast<int>(cudaGetLastError());
}
