// 2-D convolution on the tensor cores in TF32 (v2): the same three implicit GEMMs as v1
// (conv2d.cu describes them; the semantics, groups, stride, padding and dilation included, are
// identical), with mma.sync.m16n8k8 TF32 products, float32 accumulation, kBm x 128 x 16 block
// tiles and a 3-stage cp.async pipeline (conv2d_tf32_tiles.cuh). Inputs are rounded to TF32
// (10-bit mantissa), so results differ from float32 by about 1e-3 relative to the sum of
// |x| * |w|: used only when the user allows TF32 (tilegrad.set_float32_matmul_precision).
// This file: the forward and the input gradient; conv2d_tf32_weight.cu: the weight gradient.
//
// Loads per 16-deep slice (4 kBm threads):
//   forward A = w[o, k] (k contiguous): 16-byte copies when the depth cg*kh*kw is a multiple of
//     4 (each row then starts 16-byte aligned), else 4-byte copies;
//   input-gradient A = w[o, c, r, s] read as [c][(o, r, s)]: 4-byte gathers;
//   B = the image (or output-gradient) gather: a thread owns one column (pixel) and 8 (kBm 64)
//     or 4 (kBm 128) consecutive k of it, walking (c, r, s) by one with carries; a warp's 32
//     copies read 32 consecutive pixels (contiguous for stride 1).
// The input gradient's gather divides by the stride; a unit-stride instance skips it.
// Sums of more than INT32_MAX slices (conv_tf32::covers) run v1 instead.
#include <cuda_runtime.h>
#include <stdint.h>

#include "conv2d_tf32_tiles.cuh"
#include "tg_cuda.h"

namespace {

using namespace tg::cuda::conv_tf32;
using tg::cuda::cp_async16;
using tg::cuda::cp_async4;
using tg::cuda::conv::Digits;
using tg::cuda::conv::inside;
using tg::cuda::conv::Radix;
using tg::cuda::conv::advance;
using tg::cuda::conv::digits_of;
using tg::cuda::conv::make_radix;

namespace conv = tg::cuda::conv;

// B loads: one column per thread and kBk / (threads / kBn) consecutive k (8 or 4).
constexpr int kBCols = kBn;
template <int kBm>
struct BLoads {
  static_assert(Threads<kBm>::count % kBCols == 0, "B loads cover a stage");
  static constexpr int k_per_thread = kBk / (Threads<kBm>::count / kBCols);
};

// ---- forward: y = w @ X ---------------------------------------------------------------

template <int kBm, bool kVecA>
__global__ void __launch_bounds__(Threads<kBm>::count, Threads<kBm>::min_blocks)
conv2d_forward_tf32(const float* __restrict__ x, const float* __restrict__ w, float* __restrict__ y, Geom g,
                    int64_t col_tiles, int row_tiles) {
  extern __shared__ float smem[];
  constexpr int kThreads = Threads<kBm>::count;
  constexpr int kBKPerThread = BLoads<kBm>::k_per_thread;
  const int tid = threadIdx.x;
  const BlockTile bt = block_tile(kBm, col_tiles, row_tiles);
  const int grp = static_cast<int>(bt.outer);
  const int hw = g.h * g.w;
  const int ohw = g.oh * g.ow;
  const int64_t depth = static_cast<int64_t>(g.cg) * g.kh * g.kw;
  const int64_t pixels = static_cast<int64_t>(g.n) * ohw;
  const int rows_left = g.og - bt.row0;

  // A = this group's weights, rows contiguous in k; kAw floats per copy.
  constexpr int kAw = kVecA ? 4 : 1;
  constexpr int kAKThreads = kBk / kAw;            // threads along k
  constexpr int kARowStep = kThreads / kAKThreads;  // rows a_r + kARowStep l
  const int a_k = (tid % kAKThreads) * kAw;
  const int a_r = tid / kAKThreads;
  const float* w_rows = w + (static_cast<int64_t>(grp) * g.og + bt.row0) * depth;
  int64_t ka = a_k;  // the thread's k in the next slice

  // B = X: the thread loads column b_c (one output pixel) at k = b_k0 .. b_k0 + 7 of each slice.
  const int b_c = tid % kBCols;
  const int b_k0 = (tid / kBCols) * kBKPerThread;
  const int64_t p = bt.col0 + b_c;
  const bool p_ok = p < pixels;
  int ih0 = 0, iw0 = 0;
  const float* x_img = x;
  if (p_ok) {
    const int64_t n = quotient(p, ohw);
    const int q = static_cast<int>(p - n * ohw);
    const int oh = q / g.ow;
    ih0 = oh * g.sh - g.ph;
    iw0 = (q - oh * g.ow) * g.sw - g.pw;
    x_img = x + (n * g.c + static_cast<int64_t>(grp) * g.cg) * hw;
  }
  const Radix kr = make_radix(g.kh, g.kw, kBk);
  Digits kd = digits_of(b_k0, kr);  // (c, r, s) of the thread's first k in the next slice

  auto load = [&](float* as, float* bs) {
#pragma unroll
    for (int l = 0; l < kBm / kARowStep; ++l) {
      const int row = a_r + l * kARowStep;
      const bool ok = row < rows_left && ka < depth;
      const float* src = ok ? w_rows + row * depth + ka : w;
      if (kVecA) {
        cp_async16(as + row * kLdK + a_k, src, ok);
      } else {
        cp_async4(as + row * kLdK + a_k, src, ok);
      }
    }
    ka += kBk;
    Digits d = kd;
#pragma unroll
    for (int l = 0; l < kBKPerThread; ++l) {
      const int ih = ih0 + d.mid * g.dh;
      const int iw = iw0 + d.lo * g.dw;
      const bool ok = p_ok && d.hi < g.cg && inside(ih, g.h) && inside(iw, g.w);
      const float* src = ok ? x_img + static_cast<int64_t>(d.hi) * hw + ih * g.w + iw : x;
      cp_async4(bs + (b_k0 + l) * kLdN + b_c, src, ok);
      step_one(d, g.kh, g.kw);
    }
    advance(kd, kr);
  };

  Acc acc;
  zero(acc);
  run_pipeline<kBm, true>(smem, load, (depth + kBk - 1) / kBk, acc);

  bool col_ok = false;
  float* out = y;
  auto column = [&](int col) {
    const int64_t pc = bt.col0 + col;
    col_ok = pc < pixels;
    if (col_ok) {
      const int64_t n = quotient(pc, ohw);
      out = y + (n * g.o + static_cast<int64_t>(grp) * g.og + bt.row0) * ohw + (pc - n * ohw);
    }
  };
  auto put = [&](int row, float v) {
    if (col_ok && row < rows_left) out[static_cast<int64_t>(row) * ohw] = v;
  };
  for_each_output(acc, column, put);
}

// ---- backward input: gx = w^T @ G --------------------------------------------------------

template <int kBm, bool kUnitStride>
__global__ void __launch_bounds__(Threads<kBm>::count, Threads<kBm>::min_blocks)
conv2d_backward_input_tf32(const float* __restrict__ gy, const float* __restrict__ w, float* __restrict__ gx,
                           Geom g, int64_t col_tiles, int row_tiles) {
  extern __shared__ float smem[];
  constexpr int kThreads = Threads<kBm>::count;
  constexpr int kBKPerThread = BLoads<kBm>::k_per_thread;
  const int tid = threadIdx.x;
  const BlockTile bt = block_tile(kBm, col_tiles, row_tiles);
  const int grp = static_cast<int>(bt.outer);
  const int hw = g.h * g.w;
  const int ohw = g.oh * g.ow;
  const int khw = g.kh * g.kw;
  const int64_t depth = static_cast<int64_t>(g.og) * khw;
  const int64_t pixels = static_cast<int64_t>(g.n) * hw;
  const int rows_left = g.cg - bt.row0;
  const Radix kr = make_radix(g.kh, g.kw, kBk);  // k = (o, r, s)

  // A[c, (o, r, s)] = w[grp * og + o, c, r, s]: the thread loads k of rows (input channels)
  // a_r + 16 l, tracking (o, r, s) of its k.
  const int a_k = tid % kBk;
  const int a_r = tid / kBk;
  constexpr int kARowStep = kThreads / kBk;
  const float* w_tile = w + (static_cast<int64_t>(grp) * g.og * g.cg + bt.row0) * khw;
  Digits ad = digits_of(a_k, kr);

  // B = G: the thread loads column b_c (one input pixel) at k = b_k0 .. b_k0 + 7 of each slice.
  const int b_c = tid % kBCols;
  const int b_k0 = (tid / kBCols) * kBKPerThread;
  const int64_t p = bt.col0 + b_c;
  const bool p_ok = p < pixels;
  int th0 = 0, tw0 = 0;
  const float* gy_img = gy;
  if (p_ok) {
    const int64_t n = quotient(p, hw);
    const int q = static_cast<int>(p - n * hw);
    const int ih = q / g.w;
    th0 = ih + g.ph;
    tw0 = q - ih * g.w + g.pw;
    gy_img = gy + (n * g.o + static_cast<int64_t>(grp) * g.og) * ohw;
  }
  Digits kd = digits_of(b_k0, kr);

  auto load = [&](float* as, float* bs) {
    const bool ak_ok = ad.hi < g.og;
    const int64_t w_off = static_cast<int64_t>(ad.hi) * g.cg * khw + ad.mid * g.kw + ad.lo;
#pragma unroll
    for (int l = 0; l < kBm / kARowStep; ++l) {
      const int row = a_r + l * kARowStep;
      const bool ok = ak_ok && row < rows_left;
      cp_async4(as + row * kLdK + a_k, ok ? w_tile + w_off + row * khw : w, ok);
    }
    advance(ad, kr);
    Digits d = kd;
#pragma unroll
    for (int l = 0; l < kBKPerThread; ++l) {
      const int th = th0 - d.mid * g.dh;  // = oh * sh when this (r, s) reaches an output pixel
      const int tw = tw0 - d.lo * g.dw;
      bool ok = p_ok && d.hi < g.og && th >= 0 && tw >= 0;
      int oh = th, ow = tw;
      if (!kUnitStride && ok) {
        oh = th / g.sh;
        ow = tw / g.sw;
        ok = oh * g.sh == th && ow * g.sw == tw;
      }
      ok = ok && oh < g.oh && ow < g.ow;
      const float* src = ok ? gy_img + static_cast<int64_t>(d.hi) * ohw + oh * g.ow + ow : gy;
      cp_async4(bs + (b_k0 + l) * kLdN + b_c, src, ok);
      step_one(d, g.kh, g.kw);
    }
    advance(kd, kr);
  };

  Acc acc;
  zero(acc);
  run_pipeline<kBm, true>(smem, load, (depth + kBk - 1) / kBk, acc);

  bool col_ok = false;
  float* out = gx;
  auto column = [&](int col) {
    const int64_t pc = bt.col0 + col;
    col_ok = pc < pixels;
    if (col_ok) {
      const int64_t n = quotient(pc, hw);
      out = gx + (n * g.c + static_cast<int64_t>(grp) * g.cg + bt.row0) * hw + (pc - n * hw);
    }
  };
  auto put = [&](int row, float v) {
    if (col_ok && row < rows_left) out[static_cast<int64_t>(row) * hw] = v;
  };
  for_each_output(acc, column, put);
}

// Launches the kernel (blocks x threads, smem bytes of dynamic shared memory) after allowing it that much.
template <class Kernel, class... Args>
int launch_kernel(Kernel kernel, int threads, size_t smem, int64_t blocks, cudaStream_t s, Args... args) {
  if (blocks > conv::kMaxGrid) return static_cast<int>(cudaErrorInvalidValue);
  int err = static_cast<int>(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                  static_cast<int>(smem)));
  if (err != 0) return err;
  kernel<<<static_cast<unsigned int>(blocks), threads, smem, s>>>(args...);
  return static_cast<int>(cudaGetLastError());
}

template <int kBm>
int forward(const float* x, const float* w, float* y, const Geom& d, int64_t col_tiles, cudaStream_t s) {
  const int row_tiles = (d.og + kBm - 1) / kBm;
  const int64_t blocks = col_tiles * row_tiles * d.groups;
  constexpr int threads = Threads<kBm>::count;
  constexpr size_t smem = Stage<kBm, true>::smem_bytes;
  const int64_t depth = static_cast<int64_t>(d.cg) * d.kh * d.kw;
  // 16-byte copies of w need every row 16-byte aligned: the depth a multiple of 4 and w itself.
  const bool vec = depth % 4 == 0 && reinterpret_cast<uintptr_t>(w) % 16 == 0;
  auto kernel = vec ? conv2d_forward_tf32<kBm, true> : conv2d_forward_tf32<kBm, false>;
  return launch_kernel(kernel, threads, smem, blocks, s, x, w, y, d, col_tiles, row_tiles);
}

template <int kBm>
int backward_input(const float* gy, const float* w, float* gx, const Geom& d, int64_t col_tiles, cudaStream_t s) {
  const int row_tiles = (d.cg + kBm - 1) / kBm;
  const int64_t blocks = col_tiles * row_tiles * d.groups;
  constexpr int threads = Threads<kBm>::count;
  constexpr size_t smem = Stage<kBm, true>::smem_bytes;
  const bool unit = d.sh == 1 && d.sw == 1;
  auto kernel = unit ? conv2d_backward_input_tf32<kBm, true> : conv2d_backward_input_tf32<kBm, false>;
  return launch_kernel(kernel, threads, smem, blocks, s, gy, w, gx, d, col_tiles, row_tiles);
}

}  // namespace

extern "C" int tg_cuda_conv2d_tf32(const float* x, const float* w, float* y, const TgConv2dGeom* gp, void* stream) {
  if (gp == nullptr || !conv::fits(*gp)) return static_cast<int>(cudaErrorInvalidValue);
  const TgConv2dGeom& g = *gp;
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  const int64_t y_size = g.n * g.o * g.oh * g.ow;
  if (y_size == 0) return 0;
  if (g.c == 0 || g.kh == 0 || g.kw == 0) return conv::zero_fill(y, y_size, s);  // empty sums
  if (!covers(g)) return tg_cuda_conv2d(x, w, y, gp, stream);
  const Geom d = conv::narrow(g);
  const int64_t col_tiles = conv::ceil_div(g.n * g.oh * g.ow, kBn);
  return rows_per_block(d.og) == 64 ? forward<64>(x, w, y, d, col_tiles, s) : forward<128>(x, w, y, d, col_tiles, s);
}

extern "C" int tg_cuda_conv2d_backward_input_tf32(const float* gy, const float* w, float* gx,
                                                  const TgConv2dGeom* gp, void* stream) {
  if (gp == nullptr || !conv::fits(*gp)) return static_cast<int>(cudaErrorInvalidValue);
  const TgConv2dGeom& g = *gp;
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  const int64_t gx_size = g.n * g.c * g.h * g.w;
  if (gx_size == 0) return 0;
  if (g.o == 0 || g.kh == 0 || g.kw == 0) return conv::zero_fill(gx, gx_size, s);
  if (!covers(g)) return tg_cuda_conv2d_backward_input(gy, w, gx, gp, stream);
  const Geom d = conv::narrow(g);
  const int64_t col_tiles = conv::ceil_div(g.n * g.h * g.w, kBn);
  return rows_per_block(d.cg) == 64 ? backward_input<64>(gy, w, gx, d, col_tiles, s)
                                    : backward_input<128>(gy, w, gx, d, col_tiles, s);
}
