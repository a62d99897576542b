// float32 matmul v3 on the tensor cores in TF32: out[b] = act(A[b] @ B[b] + bias), A and B read
// in place in either layout (matmul_common.cuh).
//
// Opt-in only (never the default): inputs are rounded to TF32 (10-bit mantissa, round to
// nearest) before the products, so results differ from float32 by about 1e-3 relative to
// |a| @ |b|; accumulation stays float32.
//
// A 128 x 128 block of C per 256 threads (8 warps as 2 x 4, each a 64 x 32 tile of 4 x 4
// mma.sync.m16n8k8 fragments, 64 accumulators per thread). 16-deep K slices of A and B are
// staged in shared memory, already converted to TF32, in the layout they are stored in: a
// depth-contiguous operand (A plain, B transposed) as [row][k] with rows padded to 20 words, a
// row-contiguous one (A transposed, B plain) as [k][row] padded to 136 words. So every load is a
// coalesced straight copy, and both paddings make the fragment reads conflict-free. Zero-filled
// loads handle ragged edges; K == 0 writes act(bias). Plain loads, no cp.async pipeline yet.
#include <cuda_runtime.h>
#include <stdint.h>

#include "matmul_common.cuh"
#include "mma_tf32.cuh"
#include "tg_cuda.h"

namespace {

namespace gemm = tg::cuda::gemm;
using tg::cuda::tf32::mma;
using tg::cuda::tf32::to_tf32;

constexpr int kBm = 128;
constexpr int kBn = 128;
constexpr int kBk = 16;
constexpr int kThreads = 256;
constexpr int kWarpRows = 2;              // warps along M
constexpr int kWarpCols = 4;              // warps along N
constexpr int kWm = kBm / kWarpRows;      // 64 rows per warp
constexpr int kWn = kBn / kWarpCols;      // 32 columns per warp
constexpr int kFm = kWm / 16;             // 4 m16 fragments
constexpr int kFn = kWn / 8;              // 4 n8 fragments
constexpr int kDepthPad = 4;              // [row][k] tiles: rows of kBk + 4 words
constexpr int kRowPad = 8;                // [k][row] tiles: rows of 128 + 8 words

static_assert(kWarpRows * kWarpCols * 32 == kThreads, "8 warps");
static_assert(kBm == kBn, "one tile shape for both operands");

// One operand's K slice in shared memory: kRows rows (A's M rows or B's N columns) by kBk, as
// TF32 bits, laid out as the operand is stored (see the file comment).
template <bool kDepthContiguous>
struct Tile {
  static constexpr int kRows = kBm;
  static constexpr int kLd = kDepthContiguous ? kBk + kDepthPad : kRows + kRowPad;
  static constexpr int kWords = kDepthContiguous ? kRows * kLd : kBk * kLd;

  // Word (r, kk) of the tile.
  static __device__ __forceinline__ int at(int r, int kk) { return kDepthContiguous ? r * kLd + kk : kk * kLd + r; }

  // Stages rows [r0, r0 + kRows) by depth [k0, k0 + kBk) of p (ld: its stored row length; rows:
  // the operand's row count), zeros outside. Lanes run along the stored contiguous index.
  static __device__ __forceinline__ void stage(uint32_t* s, const float* __restrict__ p, int64_t ld, int64_t r0,
                                               int64_t rows, int64_t k0, int64_t k, int tid) {
    constexpr int kLoads = (kRows * kBk) / kThreads;  // 8
    if (kDepthContiguous) {
      constexpr int kStep = kThreads / kBk;  // 16 rows per pass
      const int kk = tid % kBk;
      const int r = tid / kBk;
      const bool k_ok = k0 + kk < k;
#pragma unroll
      for (int l = 0; l < kLoads; ++l) {
        const int rr = r + l * kStep;
        const int64_t gr = r0 + rr;
        s[at(rr, kk)] = to_tf32((k_ok && gr < rows) ? p[gr * ld + k0 + kk] : 0.0f);
      }
    } else {
      constexpr int kStep = kThreads / kRows;  // 2 depths per pass
      const int r = tid % kRows;
      const int kk = tid / kRows;
      const bool r_ok = r0 + r < rows;
#pragma unroll
      for (int l = 0; l < kLoads; ++l) {
        const int64_t gk = k0 + kk + l * kStep;
        s[at(r, kk + l * kStep)] = to_tf32((r_ok && gk < k) ? p[gk * ld + r0 + r] : 0.0f);
      }
    }
  }
};

template <bool kTransA, bool kTransB>
__global__ void __launch_bounds__(kThreads) matmul_tf32_v3(gemm::Args g) {
  using TileA = Tile<!kTransA>;  // A plain is depth-contiguous
  using TileB = Tile<kTransB>;   // B plain is row-contiguous
  __shared__ uint32_t as[TileA::kWords];
  __shared__ uint32_t bs[TileB::kWords];

  const int64_t batch = blockIdx.z;
  const float* a = g.a + batch * g.stride_a;
  const float* b = g.b + batch * g.stride_b;
  float* c = g.c + batch * g.stride_c;

  const int tid = threadIdx.x;
  const int lane = tid % 32;
  const int warp = tid / 32;
  const int gr = lane / 4;  // fragment row group
  const int t = lane % 4;   // thread in group
  const int wm = (warp / kWarpCols) * kWm;
  const int wn = (warp % kWarpCols) * kWn;
  const int64_t row0 = static_cast<int64_t>(blockIdx.y) * kBm;
  const int64_t col0 = static_cast<int64_t>(blockIdx.x) * kBn;

  float acc[kFm][kFn][4];
#pragma unroll
  for (int i = 0; i < kFm; ++i)
#pragma unroll
    for (int j = 0; j < kFn; ++j)
#pragma unroll
      for (int q = 0; q < 4; ++q) acc[i][j][q] = 0.0f;

  for (int64_t k0 = 0; k0 < g.k; k0 += kBk) {
    TileA::stage(as, a, g.lda, row0, g.m, k0, g.k, tid);
    TileB::stage(bs, b, g.ldb, col0, g.n, k0, g.k, tid);
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < kBk; kk += 8) {
      uint32_t af[kFm][4];
      uint32_t bf[kFn][2];
#pragma unroll
      for (int i = 0; i < kFm; ++i) {
        const int r = wm + i * 16 + gr;
        af[i][0] = as[TileA::at(r, kk + t)];
        af[i][1] = as[TileA::at(r + 8, kk + t)];
        af[i][2] = as[TileA::at(r, kk + t + 4)];
        af[i][3] = as[TileA::at(r + 8, kk + t + 4)];
      }
#pragma unroll
      for (int j = 0; j < kFn; ++j) {
        const int col = wn + j * 8 + gr;
        bf[j][0] = bs[TileB::at(col, kk + t)];
        bf[j][1] = bs[TileB::at(col, kk + t + 4)];
      }
#pragma unroll
      for (int i = 0; i < kFm; ++i)
#pragma unroll
        for (int j = 0; j < kFn; ++j) mma(acc[i][j], af[i], bf[j]);
    }
    __syncthreads();
  }

  // Accumulator q of fragment (i, j): row gr (+8 for q >= 2), column 2t (+1 for odd q).
#pragma unroll
  for (int j = 0; j < kFn; ++j) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int64_t col = col0 + wn + j * 8 + 2 * t + h;
      if (col >= g.n) continue;
      const float bias = g.bias != nullptr ? g.bias[col] : 0.0f;
#pragma unroll
      for (int i = 0; i < kFm; ++i) {
#pragma unroll
        for (int v = 0; v < 2; ++v) {
          const int64_t r = row0 + wm + i * 16 + gr + 8 * v;
          if (r < g.m) c[r * g.n + col] = tg::cuda::epilogue::apply(acc[i][j][2 * v + h], bias, g.act);
        }
      }
    }
  }
}

}  // namespace

extern "C" int tg_cuda_matmul_tf32(const float* a, const float* b, const float* bias, float* out, int64_t batch,
                                   int64_t m, int64_t n, int64_t k, int trans_a, int trans_b, int act, void* stream) {
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  return gemm::launch_chunks(a, b, bias, out, batch, m, n, k, trans_a, trans_b, act, kBm, kBn,
                             [&](dim3 grid, const gemm::Args& args) {
                               gemm::dispatch_trans(trans_a, trans_b, [&](auto ta, auto tb) {
                                 constexpr bool kTa = decltype(ta)::value, kTb = decltype(tb)::value;
                                 matmul_tf32_v3<kTa, kTb><<<grid, kThreads, 0, s>>>(args);
                               });
                             });
}
