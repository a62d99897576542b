// The implicit-GEMM tiles of the conv2d kernels (conv2d.cu: forward and input gradient;
// conv2d_weight.cu: weight gradient): tile shape, shared-memory layout, the mixed-radix
// counters that walk k, the slice multiply, and the host-side size checks and weight-gradient
// split. CUDA code: include only from .cu files. See conv2d.cu for the scheme.
#pragma once

#include <cuda_runtime.h>
#include <stdint.h>

#include <initializer_list>

#include "tg_cuda.h"

namespace tg {
namespace cuda {
namespace conv {

constexpr int kBm = 64;                    // GEMM rows per block
constexpr int kBn = 64;                    // GEMM columns per block
constexpr int kBk = 16;                    // depth of one shared-memory slice
constexpr int kTm = 4;                     // rows per thread
constexpr int kTn = 4;                     // columns per thread
constexpr int kRowThreads = kBm / kTm;     // 16: a thread's rows are ty + 16 i
constexpr int kColThreads = kBn / kTn;     // 16: a thread's columns are tx + 16 j
constexpr int kThreads = kRowThreads * kColThreads;  // 256
constexpr int kLd = kBn + 2;               // padded row of a shared tile (banks: see conv2d.cu)
// Two ways of filling a 16 x 64 tile with 256 threads, 4 passes each:
constexpr int kKRows = kThreads / kBk;     // along k: 16 k x 16 rows (or columns) per pass
constexpr int kKPasses = kBm / kKRows;     //   4 passes, rows r + 16 l
constexpr int kColK = kThreads / kBn;      // along columns: 64 columns x 4 k per pass
constexpr int kColPasses = kBk / kColK;    //   4 passes, k + 4 l

static_assert(kBm == kBn, "one padded row length (and one load pattern) serves both tiles");
static_assert(kKPasses * kKRows == kBm && kColPasses * kColK == kBk, "loads cover the tiles exactly");

// Weight-gradient split: aim for this many blocks in all (a few waves on current GPUs; the GPU
// is never probed), with chunks of at least kMinChunk pixels and a bounded workspace.
constexpr int64_t kTargetBlocks = 1024;
constexpr int64_t kMinChunk = 512;
constexpr int64_t kMaxChunks = 256;
constexpr int64_t kMaxWorkspace = int64_t(1) << 26;  // floats (256 MiB)

constexpr int64_t kMaxField = int64_t(1) << 28;
constexpr int64_t kMaxGrid = 2147483647;  // gridDim.x

// The geometry in 32-bit ints (every field fits: tg_cuda_conv2d_fits), with per-group counts.
struct Geom {
  int n, c, h, w, o, kh, kw, oh, ow, sh, sw, ph, pw, dh, dw, groups;
  int cg, og;  // channels per group: input, output
};

struct Tiles {
  float a[kBk][kLd];  // a[k][row]
  float b[kBk][kLd];  // b[k][column]
};

// k = (hi * mid_n + mid) * lo_n + lo with mid < mid_n and lo < lo_n, moved on by a fixed
// step with one carry per digit (the step's own digits are below mid_n and lo_n).
struct Radix {
  int mid_n, lo_n, step_hi, step_mid, step_lo;
};
struct Digits {
  int hi, mid, lo;
};

__device__ __forceinline__ Radix make_radix(int mid_n, int lo_n, int step) {
  Radix r;
  r.mid_n = mid_n;
  r.lo_n = lo_n;
  r.step_lo = step % lo_n;
  const int t = step / lo_n;
  r.step_mid = t % mid_n;
  r.step_hi = t / mid_n;
  return r;
}

__device__ __forceinline__ Digits digits_of(int64_t k, const Radix& r) {
  Digits d;
  d.lo = static_cast<int>(k % r.lo_n);
  const int64_t t = k / r.lo_n;
  d.mid = static_cast<int>(t % r.mid_n);
  d.hi = static_cast<int>(t / r.mid_n);
  return d;
}

__device__ __forceinline__ void advance(Digits& d, const Radix& r) {
  d.lo += r.step_lo;
  if (d.lo >= r.lo_n) {
    d.lo -= r.lo_n;
    ++d.mid;
  }
  d.mid += r.step_mid;
  if (d.mid >= r.mid_n) {
    d.mid -= r.mid_n;
    ++d.hi;
  }
  d.hi += r.step_hi;
}

// Which output tile a block computes: blockIdx.x = (outer * row_tiles + row tile) * col_tiles
// + column tile, outer being the group (and, for the weight gradient, the chunk).
struct BlockTile {
  int64_t col0;
  int row0;
  int64_t outer;
};

__device__ __forceinline__ BlockTile block_tile(int64_t col_tiles, int row_tiles) {
  const int64_t b = blockIdx.x;
  BlockTile t;
  t.col0 = (b % col_tiles) * kBn;
  const int64_t rest = b / col_tiles;
  t.row0 = static_cast<int>(rest % row_tiles) * kBm;
  t.outer = rest / row_tiles;
  return t;
}

__device__ __forceinline__ void zero(float (&acc)[kTm][kTn]) {
#pragma unroll
  for (int i = 0; i < kTm; ++i)
#pragma unroll
    for (int j = 0; j < kTn; ++j) acc[i][j] = 0.0f;
}

// acc[i][j] += sum_kk a[kk][ty + 16 i] * b[kk][tx + 16 j] over one slice.
__device__ __forceinline__ void multiply_slice(const Tiles& t, float (&acc)[kTm][kTn], int tx, int ty) {
#pragma unroll
  for (int kk = 0; kk < kBk; ++kk) {
    float av[kTm];
    float bv[kTn];
#pragma unroll
    for (int i = 0; i < kTm; ++i) av[i] = t.a[kk][ty + i * kRowThreads];
#pragma unroll
    for (int j = 0; j < kTn; ++j) bv[j] = t.b[kk][tx + j * kColThreads];
#pragma unroll
    for (int i = 0; i < kTm; ++i)
#pragma unroll
      for (int j = 0; j < kTn; ++j) acc[i][j] = fmaf(av[i], bv[j], acc[i][j]);
  }
}

__device__ __forceinline__ bool inside(int v, int n) { return v >= 0 && v < n; }

// a / b for 0 <= a and 0 < b < 2^31: a 32-bit division when a fits (a 64-bit one is several
// times longer, and the epilogues do one per stored column).
__device__ __forceinline__ int64_t quotient(int64_t a, int b) {
  return a <= INT32_MAX ? static_cast<int64_t>(static_cast<uint32_t>(a) / static_cast<uint32_t>(b)) : a / b;
}

// GEMM column p of an implicit GEMM over `plane`-sized images of width `width`: image n and
// the pixel's row and column in it.
struct Pixel {
  int64_t n;
  int row, col;
};

__device__ __forceinline__ Pixel pixel_of(int64_t p, int plane, int width) {
  Pixel px;
  px.n = quotient(p, plane);
  const int q = static_cast<int>(p - px.n * plane);
  px.row = q / width;
  px.col = q - px.row * width;
  return px;
}


// ---- host side ------------------------------------------------------------------------------

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// a * b <= limit, for a, b >= 0, without overflowing.
inline bool product_at_most(int64_t a, int64_t b, int64_t limit) { return a == 0 || b <= limit / a; }

struct WeightPlan {
  int64_t chunks, chunk_len;
};

// How the weight gradient's pixel sum is split (chunks > 1 needs the workspace).
inline WeightPlan weight_plan(const TgConv2dGeom& g) {
  const int64_t pixels = g.n * g.oh * g.ow;
  const int64_t og = g.o / g.groups;
  const int64_t cols = (g.c / g.groups) * g.kh * g.kw;
  const int64_t total = g.o * cols;
  if (pixels == 0 || total == 0) return {1, pixels};
  const int64_t tiles = g.groups * ceil_div(og, kBm) * ceil_div(cols, kBn);
  int64_t chunks = tiles >= kTargetBlocks ? 1 : ceil_div(kTargetBlocks, tiles);
  chunks = chunks < ceil_div(pixels, kMinChunk) ? chunks : ceil_div(pixels, kMinChunk);
  chunks = chunks < kMaxChunks ? chunks : kMaxChunks;
  chunks = chunks < kMaxWorkspace / total ? chunks : kMaxWorkspace / total;
  if (chunks <= 1) return {1, pixels};
  const int64_t chunk_len = ceil_div(ceil_div(pixels, chunks), kBk) * kBk;
  return {ceil_div(pixels, chunk_len), chunk_len};
}

// The product of `factors` (each >= 0) is at most `limit`, computed without overflowing.
inline bool count_at_most(std::initializer_list<int64_t> factors, int64_t limit) {
  int64_t total = 1;
  for (int64_t f : factors) {
    if (f == 0) return true;
  }
  for (int64_t f : factors) {
    if (!product_at_most(total, f, limit)) return false;
    total *= f;
  }
  return true;
}

inline bool fits(const TgConv2dGeom& g) {
  const int64_t fields[] = {g.n, g.c, g.h, g.w, g.o, g.kh, g.kw, g.oh, g.ow,
                            g.sh, g.sw, g.ph, g.pw, g.dh, g.dw, g.groups};
  for (int64_t v : fields) {
    if (v < 0 || v > kMaxField) return false;
  }
  if (g.sh < 1 || g.sw < 1 || g.dh < 1 || g.dw < 1 || g.groups < 1) return false;
  if (g.c % g.groups != 0 || g.o % g.groups != 0) return false;
  // The output size is the one the geometry gives, so every window offset oh * sh + r * dh
  // lies within the padded image (below 3 * 2^28).
  const int64_t span_h = g.h + 2 * g.ph - g.dh * (g.kh - 1) - 1;
  const int64_t span_w = g.w + 2 * g.pw - g.dw * (g.kw - 1) - 1;
  if (span_h < 0 || span_w < 0 || g.oh != span_h / g.sh + 1 || g.ow != span_w / g.sw + 1) return false;
  if (g.h * g.w > INT32_MAX || g.oh * g.ow > INT32_MAX || g.kh * g.kw > INT32_MAX) return false;
  const int64_t cg = g.c / g.groups;
  const int64_t og = g.o / g.groups;
  constexpr int64_t kMaxElems = int64_t(1) << 61;  // any array the bindings accept
  if (!count_at_most({g.n, g.c, g.h * g.w}, kMaxElems) || !count_at_most({g.n, g.o, g.oh * g.ow}, kMaxElems) ||
      !count_at_most({g.o, cg, g.kh * g.kw}, kMaxElems)) {
    return false;
  }
  // Blocks per launch: forward (og, n*oh*ow) tiles per group, backward input (cg, n*h*w),
  // backward weight (og, cg*kh*kw) per group and chunk.
  const int64_t fwd = ceil_div(og, kBm) * g.groups;
  const int64_t bwd = ceil_div(cg, kBm) * g.groups;
  const int64_t wgt = ceil_div(og, kBm) * g.groups * weight_plan(g).chunks;
  return product_at_most(fwd, ceil_div(g.n * g.oh * g.ow, kBn), kMaxGrid) &&
         product_at_most(bwd, ceil_div(g.n * g.h * g.w, kBn), kMaxGrid) &&
         product_at_most(wgt, ceil_div(cg * g.kh * g.kw, kBn), kMaxGrid);
}

inline Geom narrow(const TgConv2dGeom& g) {
  Geom d;
  d.n = static_cast<int>(g.n);
  d.c = static_cast<int>(g.c);
  d.h = static_cast<int>(g.h);
  d.w = static_cast<int>(g.w);
  d.o = static_cast<int>(g.o);
  d.kh = static_cast<int>(g.kh);
  d.kw = static_cast<int>(g.kw);
  d.oh = static_cast<int>(g.oh);
  d.ow = static_cast<int>(g.ow);
  d.sh = static_cast<int>(g.sh);
  d.sw = static_cast<int>(g.sw);
  d.ph = static_cast<int>(g.ph);
  d.pw = static_cast<int>(g.pw);
  d.dh = static_cast<int>(g.dh);
  d.dw = static_cast<int>(g.dw);
  d.groups = static_cast<int>(g.groups);
  d.cg = static_cast<int>(g.c / g.groups);
  d.og = static_cast<int>(g.o / g.groups);
  return d;
}

inline int zero_fill(float* p, int64_t n, cudaStream_t s) {
  return static_cast<int>(cudaMemsetAsync(p, 0, static_cast<size_t>(n) * sizeof(float), s));
}

inline bool epilogue_ok(int act) { return act == TG_EPILOGUE_NONE || act == TG_EPILOGUE_RELU; }

// The forward of a geometry with an empty sum (no input channels or an empty window):
// y = act(bias), zeros without a bias (act(0) = 0 for every epilogue).
inline int empty_sum(float* y, const float* bias, const TgConv2dGeom& g, int act, cudaStream_t s) {
  const int err = zero_fill(y, g.n * g.o * g.oh * g.ow, s);
  if (err != 0 || bias == nullptr) return err;
  return tg_cuda_bias_act(y, bias, g.n, g.o, g.oh * g.ow, act, s);
}

}  // namespace conv
}  // namespace cuda
}  // namespace tg
