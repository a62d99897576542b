// float32 matmul: out[b] = a[b] @ b[b], row-major.
//
// v1 (this file): shared-memory tiled SIMT kernel. A 64 x 64 block of C per
// 256 threads, each thread a 4 x 4 register tile; 16-deep K slices of A and
// B staged through shared memory; zero-filled loads handle ragged edges.
#include <cuda_runtime.h>

#include "tg_cuda.h"

namespace {

constexpr int kBm = 64;
constexpr int kBn = 64;
constexpr int kBk = 16;
constexpr int kTm = 4;
constexpr int kTn = 4;
constexpr int kThreads = (kBm / kTm) * (kBn / kTn);  // 256
constexpr int64_t kMaxGridYZ = 65535;

__global__ void __launch_bounds__(kThreads)
matmul_tiled_v1(const float* __restrict__ a, const float* __restrict__ b, float* __restrict__ c,
                int64_t m, int64_t n, int64_t k) {
  // A tile stored transposed ([k][m]) so the inner loop reads kTm consecutive rows.
  __shared__ float as[kBk][kBm];
  __shared__ float bs[kBk][kBn];

  const int64_t batch = blockIdx.z;
  a += batch * m * k;
  b += batch * k * n;
  c += batch * m * n;

  const int tid = threadIdx.x;
  const int tx = tid % (kBn / kTn);
  const int ty = tid / (kBn / kTn);
  const int64_t row0 = static_cast<int64_t>(blockIdx.y) * kBm;
  const int64_t col0 = static_cast<int64_t>(blockIdx.x) * kBn;

  // Each thread stages the same tile positions every K step: A rows
  // a_r + l * kARowStep at column a_k, and B rows b_k + l * kBRowStep at column b_c.
  constexpr int kALoads = (kBm * kBk) / kThreads;
  constexpr int kBLoads = (kBk * kBn) / kThreads;
  constexpr int kARowStep = kThreads / kBk;
  constexpr int kBRowStep = kThreads / kBn;
  const int a_r = tid / kBk;
  const int a_k = tid % kBk;
  const int b_k = tid / kBn;
  const int b_c = tid % kBn;
  // Rows of A (and columns of B) inside the matrix, as a count from the tile origin.
  const int a_rows = static_cast<int>(m - row0 < kBm ? m - row0 : kBm);
  const bool b_col_ok = col0 + b_c < n;
  const float* a_ptr = a + (row0 + a_r) * k + a_k;
  const float* b_ptr = b + static_cast<int64_t>(b_k) * n + col0 + b_c;

  float acc[kTm][kTn];
#pragma unroll
  for (int i = 0; i < kTm; ++i)
#pragma unroll
    for (int j = 0; j < kTn; ++j) acc[i][j] = 0.0f;

  for (int64_t k0 = 0; k0 < k; k0 += kBk) {
    const bool a_k_ok = k0 + a_k < k;
#pragma unroll
    for (int l = 0; l < kALoads; ++l) {
      const int r = a_r + l * kARowStep;
      as[a_k][r] = (a_k_ok && r < a_rows) ? a_ptr[static_cast<int64_t>(l) * kARowStep * k] : 0.0f;
    }
#pragma unroll
    for (int l = 0; l < kBLoads; ++l) {
      const int kk = b_k + l * kBRowStep;
      bs[kk][b_c] = (b_col_ok && k0 + kk < k) ? b_ptr[static_cast<int64_t>(l) * kBRowStep * n] : 0.0f;
    }
    a_ptr += kBk;
    b_ptr += kBk * n;
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
    if (r >= m) continue;
#pragma unroll
    for (int j = 0; j < kTn; ++j) {
      const int64_t col = col0 + tx * kTn + j;
      if (col < n) c[r * n + col] = acc[i][j];
    }
  }
}

}  // namespace

extern "C" int tg_cuda_matmul(const float* a, const float* b, float* out, int64_t batch,
                              int64_t m, int64_t n, int64_t k, void* stream) {
  if (batch <= 0 || m <= 0 || n <= 0) return 0;
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  const int64_t col_tiles = (n + kBn - 1) / kBn;
  const int64_t row_tiles = (m + kBm - 1) / kBm;
  // gridDim.y and gridDim.z are limited to 65535: launch in chunks of rows and batches.
  const int64_t rows_per_launch = kMaxGridYZ * kBm;
  for (int64_t b0 = 0; b0 < batch; b0 += kMaxGridYZ) {
    const int64_t nb = batch - b0 < kMaxGridYZ ? batch - b0 : kMaxGridYZ;
    for (int64_t r0 = 0; r0 < m; r0 += rows_per_launch) {
      const int64_t rows = m - r0 < rows_per_launch ? m - r0 : rows_per_launch;
      // A chunk of rows of a batched matmul is not a contiguous batch, so
      // row chunking (only for m > 4M) runs one batch entry per launch.
      const bool whole = rows == m;
      const int64_t launches = whole ? 1 : nb;
      for (int64_t i = 0; i < launches; ++i) {
        const int64_t bi = b0 + (whole ? 0 : i);
        dim3 grid(static_cast<unsigned int>(col_tiles),
                  static_cast<unsigned int>(whole ? row_tiles : (rows + kBm - 1) / kBm),
                  static_cast<unsigned int>(whole ? nb : 1));
        matmul_tiled_v1<<<grid, kThreads, 0, s>>>(a + bi * m * k + r0 * k, b + bi * k * n,
                                                  out + bi * m * n + r0 * n, rows, n, k);
        cudaError_t err = cudaGetLastError();
        if (err != cudaSuccess) return static_cast<int>(err);
      }
    }
  }
  return 0;
}
