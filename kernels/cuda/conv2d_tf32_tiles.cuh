// The tensor-core (TF32) tiles of the conv2d v2 kernels (conv2d_tf32.cu: forward and input
// gradient; conv2d_tf32_weight.cu: weight gradient): block and warp tiling, the shared-memory
// stages, the cp.async pipeline and the mma over one stage. The geometry, the mixed-radix
// counters and the size checks are v1's (conv2d_tiles.cuh). CUDA code: include only from .cu files.
//
// A block computes kBm x 128 outputs (kBm = 64 or 128, chosen from the row count so that a
// 64-channel layer does not waste half its tile) with 4 kBm threads = kBm / 8 warps as
// kBm / 32 (rows) x 4 (columns); a warp owns 32 x 32 outputs as 2 x 4 mma.m16n8k8 fragments
// (32 accumulators per thread, which leaves the 128 registers of 16 warps per SM room for
// the gathers' index arithmetic: 2 blocks of 256 threads or 1 of 512 per SM).
// The sum runs over 16-deep slices staged in shared memory by cp.async (4-byte copies gather
// the implicit-GEMM operands, zero-filled outside the image and past the ragged edges; 16-byte
// copies where the operand is contiguous and aligned) through a 3-stage pipeline: while the
// warps multiply slice k, the copies of slices k + 1 and k + 2 are in flight.
//
// Shared layouts (words; both make the fragment reads conflict-free):
//   A [row][k], rows of 20: lane (g, t) reads row g, column t: banks 20 g + t mod 32, distinct.
//   B [k][col], rows of 136: lane (g, t) reads k = t, column g: banks 8 t + g, distinct; or
//   B [col][k], rows of 20, like A (the weight gradient, whose B is gathered along k).
// Values stay float32 in shared memory and are rounded to TF32 (cvt.rna) as fragments are read.
#pragma once

#include <cuda_runtime.h>
#include <stdint.h>

#include "async_copy.cuh"
#include "conv2d_tiles.cuh"
#include "mma_tf32.cuh"

namespace tg {
namespace cuda {
namespace conv_tf32 {

using conv::Geom;

constexpr int kBn = 128;       // GEMM columns per block
constexpr int kBk = 16;        // depth of one stage
constexpr int kStages = 3;
constexpr int kWarpRows = 32;  // rows per warp: 2 m16 fragments
constexpr int kFm = kWarpRows / 16;
constexpr int kWarpCols = 4;
constexpr int kWn = kBn / kWarpCols;  // 32 columns per warp: 4 n8 fragments
constexpr int kFn = kWn / 8;
constexpr int kLdK = kBk + 4;  // a [row][k] row: 20 words
constexpr int kLdN = kBn + 8;  // a [k][col] row: 136 words

// Threads of a block with kBm rows (16 warps per SM either way: registers capped at 128).
template <int kBm>
struct Threads {
  static constexpr int count = kBm * 4;
  static constexpr int min_blocks = 512 / count;
};

// The stage layout of a block with kBm rows; B is [k][col] when kBKCol, else [col][k].
template <int kBm, bool kBKCol>
struct Stage {
  static constexpr int a_words = kBm * kLdK;
  static constexpr int b_words = kBKCol ? kBk * kLdN : kBn * kLdK;
  static constexpr int words = a_words + b_words;
  static constexpr size_t smem_bytes = size_t(kStages) * words * sizeof(float);
  static_assert(kBm == 64 || kBm == 128, "64 or 128 rows per block");
  static_assert(a_words % 4 == 0 && words % 4 == 0, "16-byte copies stay aligned in every stage");
};

// Which output tile a block computes: blockIdx.x = (outer * col_tiles + column tile) *
// row_tiles + row tile. Row tiles are fastest so the blocks that share a gathered column slice
// run together (it is read from L2 once); the weights are small and stay in L2 anyway.
struct BlockTile {
  int64_t col0;
  int row0;
  int64_t outer;
};

__device__ __forceinline__ BlockTile block_tile(int kBm, int64_t col_tiles, int row_tiles) {
  const int64_t b = blockIdx.x;
  BlockTile t;
  t.row0 = static_cast<int>(b % row_tiles) * kBm;
  const int64_t rest = b / row_tiles;
  t.col0 = (rest % col_tiles) * kBn;
  t.outer = rest / col_tiles;
  return t;
}

// Digits (hi, mid, lo) moved on by one: lo < lo_n, mid < mid_n.
__device__ __forceinline__ void step_one(conv::Digits& d, int mid_n, int lo_n) {
  if (++d.lo == lo_n) {
    d.lo = 0;
    if (++d.mid == mid_n) {
      d.mid = 0;
      ++d.hi;
    }
  }
}

using conv::quotient;

// The warp's accumulators: fragment (i, j) element q is at row wm + 16 i + g + 8 (q >= 2),
// column wn + 8 j + 2 t + (q & 1).
struct Acc {
  float v[kFm][kFn][4];
};

__device__ __forceinline__ void zero(Acc& acc) {
#pragma unroll
  for (int i = 0; i < kFm; ++i)
#pragma unroll
    for (int j = 0; j < kFn; ++j)
#pragma unroll
      for (int q = 0; q < 4; ++q) acc.v[i][j][q] = 0.0f;
}

__device__ __forceinline__ uint32_t tf32_at(const float* p) { return tf32::to_tf32(*p); }

// acc += A_stage (rows wm.., [row][k]) x B_stage (columns wn..) over one 16-deep stage.
template <bool kBKCol>
__device__ __forceinline__ void multiply_stage(const float* as, const float* bs, Acc& acc, int wm, int wn, int g,
                                               int t) {
#pragma unroll
  for (int kk = 0; kk < kBk; kk += 8) {
    // The warp's B fragments, then one A fragment at a time (fewer live registers).
    uint32_t bf[kFn][2];
#pragma unroll
    for (int j = 0; j < kFn; ++j) {
      const int col = wn + j * 8 + g;
      if (kBKCol) {
        bf[j][0] = tf32_at(bs + (kk + t) * kLdN + col);
        bf[j][1] = tf32_at(bs + (kk + t + 4) * kLdN + col);
      } else {
        bf[j][0] = tf32_at(bs + col * kLdK + kk + t);
        bf[j][1] = tf32_at(bs + col * kLdK + kk + t + 4);
      }
    }
#pragma unroll
    for (int i = 0; i < kFm; ++i) {
      const float* a = as + (wm + i * 16 + g) * kLdK + kk + t;
      const uint32_t af[4] = {tf32_at(a), tf32_at(a + 8 * kLdK), tf32_at(a + 4), tf32_at(a + 8 * kLdK + 4)};
#pragma unroll
      for (int j = 0; j < kFn; ++j) tf32::mma(acc.v[i][j], af, bf[j]);
    }
  }
}

// Runs the sum over `slices` stages (covers() keeps the count an int): load(a_stage, b_stage)
// issues the cp.async copies of the next slice (slices are loaded in order, the loader keeps
// its own counters). One barrier
// per slice: it both publishes slice k's copies and tells every warp that slice k - 1's stage,
// the one the copies issued next overwrite, has been read.
template <int kBm, bool kBKCol, class Loader>
__device__ __forceinline__ void run_pipeline(float* smem, Loader& load, int slices, Acc& acc) {
  using S = Stage<kBm, kBKCol>;
  const int lane = threadIdx.x % 32;
  const int warp = threadIdx.x / 32;
  const int wm = (warp / kWarpCols) * kWarpRows;
  const int wn = (warp % kWarpCols) * kWn;
  const int g = lane / 4;
  const int t = lane % 4;
#pragma unroll
  for (int s = 0; s < kStages - 1; ++s) {
    if (s < slices) load(smem + s * S::words, smem + s * S::words + S::a_words);
    cp_async_commit();
  }
  int stage = 0;
  for (int k = 0; k < slices; ++k) {
    cp_async_wait<kStages - 2>();  // slice k's copies (this thread's) have landed
    __syncthreads();
    const int next = stage == 0 ? kStages - 1 : stage - 1;  // (k + kStages - 1) % kStages
    if (k + kStages - 1 < slices) load(smem + next * S::words, smem + next * S::words + S::a_words);
    cp_async_commit();  // possibly empty: keeps the wait count in step
    const float* st = smem + stage * S::words;
    multiply_stage<kBKCol>(st, st + S::a_words, acc, wm, wn, g, t);
    stage = stage == kStages - 1 ? 0 : stage + 1;
  }
  cp_async_wait<0>();
}

// For each accumulator column (within the block tile) calls column(col), then put(row, value)
// for its rows: the column's output address is found once.
template <class Column, class Put>
__device__ __forceinline__ void for_each_output(const Acc& acc, Column& column, Put& put) {
  const int lane = threadIdx.x % 32;
  const int warp = threadIdx.x / 32;
  const int wm = (warp / kWarpCols) * kWarpRows;
  const int wn = (warp % kWarpCols) * kWn;
#pragma unroll
  for (int j = 0; j < kFn; ++j) {
#pragma unroll
    for (int e = 0; e < 2; ++e) {
      const int col = wn + j * 8 + 2 * (lane % 4) + e;
      column(col);
#pragma unroll
      for (int i = 0; i < kFm; ++i) {
#pragma unroll
        for (int h = 0; h < 2; ++h) put(wm + i * 16 + lane / 4 + 8 * h, acc.v[i][j][2 * h + e]);
      }
    }
  }
}

// ---- host side ------------------------------------------------------------------------------

// v2 counts its 16-deep slices in ints: every sum (forward cg*kh*kw, input gradient og*kh*kw,
// weight gradient n*oh*ow) must have at most INT32_MAX slices. The launchers run v1 otherwise.
inline bool covers(const TgConv2dGeom& g) {
  const int64_t limit = int64_t(INT32_MAX) * kBk;
  const int64_t khw = g.kh * g.kw;
  return conv::count_at_most({g.c / g.groups, khw}, limit) && conv::count_at_most({g.o / g.groups, khw}, limit) &&
         conv::count_at_most({g.n, g.oh * g.ow}, limit);
}

// Block rows per tile for a GEMM with `rows` rows.
inline int rows_per_block(int64_t rows) { return rows <= 64 ? 64 : 128; }

// Weight-gradient split (as v1's conv::weight_plan, for these tiles): aim for a few waves of
// blocks on current GPUs (never probed), chunks of at least kMinChunk pixels, a bounded workspace.
constexpr int64_t kTargetBlocks = 640;
constexpr int64_t kMinChunk = 1024;

inline conv::WeightPlan weight_plan(const TgConv2dGeom& g) {
  using conv::ceil_div;
  const int64_t pixels = g.n * g.oh * g.ow;
  const int64_t og = g.o / g.groups;
  const int64_t cols = (g.c / g.groups) * g.kh * g.kw;
  const int64_t total = g.o * cols;
  if (pixels == 0 || total == 0) return {1, pixels};
  const int64_t tiles = g.groups * ceil_div(og, rows_per_block(og)) * ceil_div(cols, kBn);
  int64_t chunks = tiles >= kTargetBlocks ? 1 : ceil_div(kTargetBlocks, tiles);
  chunks = chunks < ceil_div(pixels, kMinChunk) ? chunks : ceil_div(pixels, kMinChunk);
  chunks = chunks < conv::kMaxChunks ? chunks : conv::kMaxChunks;
  chunks = chunks < conv::kMaxWorkspace / total ? chunks : conv::kMaxWorkspace / total;
  if (chunks <= 1) return {1, pixels};
  const int64_t chunk_len = ceil_div(ceil_div(pixels, chunks), kBk) * kBk;
  return {ceil_div(pixels, chunk_len), chunk_len};
}

}  // namespace conv_tf32
}  // namespace cuda
}  // namespace tg
