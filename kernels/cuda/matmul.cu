// float32 matmul: out[b] = act(A[b] @ B[b] + bias), row-major out, A and B read in place in
// either layout (matmul_common.cuh).
//
// v1 (this file): shared-memory tiled SIMT kernel. A 64 x 64 block of C per 256 threads, each
// thread a 4 x 4 register tile; 16-deep K slices of A and B staged through shared memory as
// [k][row] (rows padded by 2 words, so the transposing stores of depth-contiguous operands do
// not conflict); zero-filled loads handle ragged edges; the bias and activation are applied as
// the tile is stored.
#include <cuda_runtime.h>

#include "matmul_common.cuh"
#include "tg_cuda.h"

namespace {

namespace gemm = tg::cuda::gemm;

constexpr int kBm = 64;
constexpr int kBn = 64;
constexpr int kBk = 16;
constexpr int kTm = 4;
constexpr int kTn = 4;
constexpr int kThreads = (kBm / kTm) * (kBn / kTn);  // 256
constexpr int kPad = 2;

template <bool kTransA, bool kTransB>
__global__ void __launch_bounds__(kThreads) matmul_tiled_v1(gemm::Args g) {
  __shared__ float as[kBk][kBm + kPad];  // A tile as [k][m]
  __shared__ float bs[kBk][kBn + kPad];  // B tile as [k][n]

  const int64_t batch = blockIdx.z;
  const float* a = g.a + batch * g.stride_a;
  const float* b = g.b + batch * g.stride_b;
  float* c = g.c + batch * g.stride_c;

  const int tid = threadIdx.x;
  const int tx = tid % (kBn / kTn);
  const int ty = tid / (kBn / kTn);
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
      for (int i = 0; i < kTm; ++i) av[i] = as[kk][ty * kTm + i];
#pragma unroll
      for (int j = 0; j < kTn; ++j) bv[j] = bs[kk][tx * kTn + j];
#pragma unroll
      for (int i = 0; i < kTm; ++i)
#pragma unroll
        for (int j = 0; j < kTn; ++j) acc[i][j] = fmaf(av[i], bv[j], acc[i][j]);
    }
    __syncthreads();
  }

#pragma unroll
  for (int i = 0; i < kTm; ++i) {
    const int64_t r = row0 + ty * kTm + i;
    if (r >= g.m) continue;
#pragma unroll
    for (int j = 0; j < kTn; ++j) {
      const int64_t col = col0 + tx * kTn + j;
      if (col < g.n) c[r * g.n + col] = gemm::finish(acc[i][j], g.bias, col, g.act);
    }
  }
}

}  // namespace

extern "C" int tg_cuda_matmul(const float* a, const float* b, const float* bias, float* out, int64_t batch,
                              int64_t m, int64_t n, int64_t k, int trans_a, int trans_b, int act, void* stream) {
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  return gemm::launch_chunks(a, b, bias, out, batch, m, n, k, trans_a, trans_b, act, kBm, kBn,
                             [&](dim3 grid, const gemm::Args& args) {
                               gemm::dispatch_trans(trans_a, trans_b, [&](auto ta, auto tb) {
                                 constexpr bool kTa = decltype(ta)::value, kTb = decltype(tb)::value;
                                 matmul_tiled_v1<kTa, kTb><<<grid, kThreads, 0, s>>>(args);
                               });
                             });
}
