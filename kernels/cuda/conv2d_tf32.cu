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
#include "epilogue.cuh"
#include "tg_cuda.h"

namespace {

using namespace tg::cuda::conv_tf32;
using tg::cuda::cp_async16;
using tg::cuda::cp_async4;
using tg::cuda::conv::Digits;
using tg::cuda::conv::Pixel;
using tg::cuda::conv::pixel_of;
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

// ---- the loads and the store, shared by both kernels ------------------------------------

// A stage [row][k]: the thread's kAw floats at k a_k of rows a_r + kRowStep l, copied from
// src + off + row * row_stride; zero-filled where k_ok is false (k past the sum) or row >=
// rows_left (past the ragged edge). kAw 4: 16-byte copies (the caller checked the alignment).
template <int kBm, int kRowStep, int kAw>
__device__ __forceinline__ void load_a(float* as, int a_k, int a_r, const float* src, int64_t off,
                                       int64_t row_stride, int rows_left, bool k_ok) {
#pragma unroll
  for (int l = 0; l < kBm / kRowStep; ++l) {
    const int row = a_r + l * kRowStep;
    const bool ok = k_ok && row < rows_left;
    const float* from = ok ? src + off + row * row_stride : src;
    if (kAw == 4) {
      cp_async16(as + row * kLdK + a_k, from, ok);
    } else {
      cp_async4(as + row * kLdK + a_k, from, ok);
    }
  }
}

// B stage [k][col]: the thread's column b_c at k = b_k0 .. b_k0 + kPerThread - 1 of the slice,
// the first of which has digits kd (walked by one with step_one): tap(d, &off) says whether the
// element is inside the operand and where (src + off); outside is zero-filled. Then kd moves on
// to the next slice.
template <int kPerThread, class Tap>
__device__ __forceinline__ void gather_b(float* bs, int b_k0, int b_c, Digits& kd, const Radix& kr, const Geom& g,
                                         const float* src, Tap& tap) {
  Digits d = kd;
#pragma unroll
  for (int l = 0; l < kPerThread; ++l) {
    int64_t off = 0;
    const bool ok = tap(d, &off);
    cp_async4(bs + (b_k0 + l) * kLdN + b_c, ok ? src + off : src, ok);
    step_one(d, g.kh, g.kw);
  }
  advance(kd, kr);
}

// acc = act(acc + bias[row]) for the thread's accumulator rows (bias: null, or the tile's first
// row; rows past the edge read no bias and are not stored).
__device__ __forceinline__ void apply_epilogue(Acc& acc, const float* __restrict__ bias, int rows_left, int act) {
  const int lane = threadIdx.x % 32;
  const int wm = (threadIdx.x / 32 / kWarpCols) * kWarpRows;
#pragma unroll
  for (int i = 0; i < kFm; ++i) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int row = wm + i * 16 + lane / 4 + 8 * h;  // as for_each_output's rows
      const float b = bias != nullptr && row < rows_left ? bias[row] : 0.0f;
#pragma unroll
      for (int j = 0; j < kFn; ++j) {
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          float& v = acc.v[i][j][2 * h + e];
          v = tg::cuda::epilogue::apply(v, b, act);
        }
      }
    }
  }
}

// Stores the block's outputs into an NCHW array: GEMM column col0 + col < pixels is pixel
// (n, q) of the `plane`-sized images, row `row` < rows_left is channel ch0 + row of `channels`.
__device__ __forceinline__ void store_nchw(const Acc& acc, float* out, int64_t col0, int64_t pixels, int plane,
                                           int channels, int64_t ch0, int rows_left) {
  bool col_ok = false;
  float* dst = out;
  auto column = [&](int col) {
    const int64_t pc = col0 + col;
    col_ok = pc < pixels;
    if (col_ok) {
      const int64_t n = quotient(pc, plane);
      dst = out + (n * channels + ch0) * plane + (pc - n * plane);
    }
  };
  auto put = [&](int row, float v) {
    if (col_ok && row < rows_left) dst[static_cast<int64_t>(row) * plane] = v;
  };
  for_each_output(acc, column, put);
}

// ---- forward: y = act(w @ X + bias) -------------------------------------------------------

template <int kBm, bool kVecA>
__global__ void __launch_bounds__(Threads<kBm>::count, Threads<kBm>::min_blocks)
conv2d_forward_tf32(const float* __restrict__ x, const float* __restrict__ w, const float* __restrict__ bias,
                    float* __restrict__ y, Geom g, int act, int64_t col_tiles, int row_tiles) {
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
  const int64_t ch0 = static_cast<int64_t>(grp) * g.og + bt.row0;  // the tile's first output channel

  // A = this group's weights, rows contiguous in k; kAw floats per copy.
  constexpr int kAw = kVecA ? 4 : 1;
  constexpr int kAKThreads = kBk / kAw;            // threads along k
  constexpr int kARowStep = kThreads / kAKThreads;  // rows a_r + kARowStep l
  const int a_k = (tid % kAKThreads) * kAw;
  const int a_r = tid / kAKThreads;
  const float* w_rows = w + ch0 * depth;
  int64_t ka = a_k;  // the thread's k in the next slice

  // B = X: the thread loads column b_c (one output pixel) at k = b_k0 .. b_k0 + 7 of each slice.
  const int b_c = tid % kBCols;
  const int b_k0 = (tid / kBCols) * kBKPerThread;
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
  Digits kd = digits_of(b_k0, kr);  // (c, r, s) of the thread's first k in the next slice
  auto tap = [&](const Digits& d, int64_t* off) {
    const int ih = ih0 + d.mid * g.dh;
    const int iw = iw0 + d.lo * g.dw;
    *off = static_cast<int64_t>(d.hi) * hw + ih * g.w + iw;
    return p_ok && d.hi < g.cg && inside(ih, g.h) && inside(iw, g.w);
  };

  auto load = [&](float* as, float* bs) {
    load_a<kBm, kARowStep, kAw>(as, a_k, a_r, w_rows, ka, depth, rows_left, ka < depth);
    ka += kBk;
    gather_b<kBKPerThread>(bs, b_k0, b_c, kd, kr, g, x_img, tap);
  };

  Acc acc;
  zero(acc);
  run_pipeline<kBm, true>(smem, load, (depth + kBk - 1) / kBk, acc);
  apply_epilogue(acc, bias != nullptr ? bias + ch0 : nullptr, rows_left, act);
  store_nchw(acc, y, bt.col0, pixels, ohw, g.o, ch0, rows_left);
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
    const Pixel px = pixel_of(p, hw, g.w);
    th0 = px.row + g.ph;
    tw0 = px.col + g.pw;
    gy_img = gy + (px.n * g.o + static_cast<int64_t>(grp) * g.og) * ohw;
  }
  Digits kd = digits_of(b_k0, kr);
  auto tap = [&](const Digits& d, int64_t* off) {
    const int th = th0 - d.mid * g.dh;  // = oh * sh when this (r, s) reaches an output pixel
    const int tw = tw0 - d.lo * g.dw;
    bool ok = p_ok && d.hi < g.og && th >= 0 && tw >= 0;
    int oh = th, ow = tw;
    if (!kUnitStride && ok) {
      oh = th / g.sh;
      ow = tw / g.sw;
      ok = oh * g.sh == th && ow * g.sw == tw;
    }
    *off = static_cast<int64_t>(d.hi) * ohw + oh * g.ow + ow;
    return ok && oh < g.oh && ow < g.ow;
  };

  auto load = [&](float* as, float* bs) {
    const int64_t w_off = static_cast<int64_t>(ad.hi) * g.cg * khw + ad.mid * g.kw + ad.lo;
    load_a<kBm, kARowStep, 1>(as, a_k, a_r, w_tile, w_off, khw, rows_left, ad.hi < g.og);
    advance(ad, kr);
    gather_b<kBKPerThread>(bs, b_k0, b_c, kd, kr, g, gy_img, tap);
  };

  Acc acc;
  zero(acc);
  run_pipeline<kBm, true>(smem, load, (depth + kBk - 1) / kBk, acc);
  store_nchw(acc, gx, bt.col0, pixels, hw, g.c, static_cast<int64_t>(grp) * g.cg + bt.row0, rows_left);
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
int forward(const float* x, const float* w, const float* bias, float* y, const Geom& d, int act, int64_t col_tiles,
            cudaStream_t s) {
  const int row_tiles = (d.og + kBm - 1) / kBm;
  const int64_t blocks = col_tiles * row_tiles * d.groups;
  constexpr int threads = Threads<kBm>::count;
  constexpr size_t smem = Stage<kBm, true>::smem_bytes;
  const int64_t depth = static_cast<int64_t>(d.cg) * d.kh * d.kw;
  // 16-byte copies of w need every row 16-byte aligned: the depth a multiple of 4 and w itself.
  const bool vec = depth % 4 == 0 && reinterpret_cast<uintptr_t>(w) % 16 == 0;
  auto kernel = vec ? conv2d_forward_tf32<kBm, true> : conv2d_forward_tf32<kBm, false>;
  return launch_kernel(kernel, threads, smem, blocks, s, x, w, bias, y, d, act, col_tiles, row_tiles);
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

extern "C" int tg_cuda_conv2d_tf32(const float* x, const float* w, const float* bias, float* y,
                                   const TgConv2dGeom* gp, int act, void* stream) {
  if (gp == nullptr || !conv::fits(*gp) || !conv::epilogue_ok(act)) return static_cast<int>(cudaErrorInvalidValue);
  const TgConv2dGeom& g = *gp;
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  if (g.n * g.o * g.oh * g.ow == 0) return 0;
  if (g.c == 0 || g.kh == 0 || g.kw == 0) return conv::empty_sum(y, bias, g, act, s);
  if (!covers(g)) return tg_cuda_conv2d(x, w, bias, y, gp, act, stream);
  const Geom d = conv::narrow(g);
  const int64_t col_tiles = conv::ceil_div(g.n * g.oh * g.ow, kBn);
  return rows_per_block(d.og) == 64 ? forward<64>(x, w, bias, y, d, act, col_tiles, s)
                                    : forward<128>(x, w, bias, y, d, act, col_tiles, s);
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
