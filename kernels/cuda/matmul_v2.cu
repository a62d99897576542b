// float32 matmul v2: out[b] = act(A[b] @ B[b] + bias), A and B read in place in either layout
// (matmul_common.cuh); kept beside v1 (matmul.cu) until timed on a GPU: the default stays v1
// until then.
//
// Same scheme as v1 with a larger register tile, so each shared-memory load feeds more FMAs (64
// per 16 loads instead of 16 per 8): a 128 x 128 block of C per 256 threads, each thread 8 x 8
// outputs, 8-deep K slices. A thread's rows and columns are strided by 16 (row ty + 16 i, column
// tx + 16 j), so a warp's shared-memory reads of B are 16 consecutive words (no bank conflicts)
// and its stores to C are 16-float runs. Both tiles are stored [k][row] with rows padded by 4
// words, so the transposing stores of depth-contiguous operands do not conflict either.
// Zero-filled loads handle ragged edges; K == 0 writes act(bias).
#include <cuda_runtime.h>

#include "matmul_common.cuh"
#include "tg_cuda.h"

namespace {

namespace gemm = tg::cuda::gemm;

constexpr int kBm = 128;
constexpr int kBn = 128;
constexpr int kBk = 8;
constexpr int kTm = 8;
constexpr int kTn = 8;
constexpr int kRowsT = kBm / kTm;  // 16 thread rows
constexpr int kColsT = kBn / kTn;  // 16 thread columns
constexpr int kThreads = kRowsT * kColsT;  // 256
constexpr int kPad = 4;

template <bool kTransA, bool kTransB>
__global__ void __launch_bounds__(kThreads) matmul_tiled_v2(gemm::Args g) {
  __shared__ float as[kBk][kBm + kPad];  // A tile as [k][m]
  __shared__ float bs[kBk][kBn + kPad];  // B tile as [k][n]

  const int64_t batch = blockIdx.z;
  const float* a = g.a + batch * g.stride_a;
  const float* b = g.b + batch * g.stride_b;
  float* c = g.c + batch * g.stride_c;

  const int tid = threadIdx.x;
  const int tx = tid % kColsT;
  const int ty = tid / kColsT;
  const int64_t row0 = static_cast<int64_t>(blockIdx.y) * kBm;
  const int64_t col0 = static_cast<int64_t>(blockIdx.x) * kBn;

  float acc[kTm][kTn];
#pragma unroll
  for (int i = 0; i < kTm; ++i)
#pragma unroll
    for (int j = 0; j < kTn; ++j) acc[i][j] = 0.0f;

  // A plain is depth-contiguous, B plain row-contiguous; transposing flips each.
  gemm::KMajorStager<kBm, kBk, kThreads, !kTransA, kBm + kPad> stage_a(a, g.lda, row0, g.m, g.k, tid);
  gemm::KMajorStager<kBn, kBk, kThreads, kTransB, kBn + kPad> stage_b(b, g.ldb, col0, g.n, g.k, tid);
  for (int64_t k0 = 0; k0 < g.k; k0 += kBk) {
    stage_a.stage(as);
    stage_b.stage(bs);
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < kBk; ++kk) {
      float av[kTm];
      float bv[kTn];
#pragma unroll
      for (int i = 0; i < kTm; ++i) av[i] = as[kk][ty + i * kRowsT];
#pragma unroll
      for (int j = 0; j < kTn; ++j) bv[j] = bs[kk][tx + j * kColsT];
#pragma unroll
      for (int i = 0; i < kTm; ++i)
#pragma unroll
        for (int j = 0; j < kTn; ++j) acc[i][j] = fmaf(av[i], bv[j], acc[i][j]);
    }
    __syncthreads();
  }

  float bias[kTn];  // this thread's columns' bias, read once
#pragma unroll
  for (int j = 0; j < kTn; ++j) {
    const int64_t col = col0 + tx + j * kColsT;
    bias[j] = (g.bias != nullptr && col < g.n) ? g.bias[col] : 0.0f;
  }
#pragma unroll
  for (int i = 0; i < kTm; ++i) {
    const int64_t r = row0 + ty + i * kRowsT;
    if (r >= g.m) continue;
#pragma unroll
    for (int j = 0; j < kTn; ++j) {
      const int64_t col = col0 + tx + j * kColsT;
      if (col < g.n) c[r * g.n + col] = tg::cuda::epilogue::apply(acc[i][j], bias[j], g.act);
    }
  }
}

}  // namespace

extern "C" int tg_cuda_matmul_v2(const float* a, const float* b, const float* bias, float* out, int64_t batch,
                                 int64_t m, int64_t n, int64_t k, int trans_a, int trans_b, int act, void* stream) {
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  return gemm::launch_chunks(a, b, bias, out, batch, m, n, k, trans_a, trans_b, act, kBm, kBn,
                             [&](dim3 grid, const gemm::Args& args) {
                               gemm::dispatch_trans(trans_a, trans_b, [&](auto ta, auto tb) {
                                 constexpr bool kTa = decltype(ta)::value, kTb = decltype(tb)::value;
                                 matmul_tiled_v2<kTa, kTb><<<grid, kThreads, 0, s>>>(args);
                               });
                             });
}
