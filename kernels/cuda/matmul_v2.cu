// float32 matmul v2: out[b] = a[b] @ b[b], row-major (kept beside v1 in matmul.cu
// until timed on a GPU; the default stays v1 until then).
//
// Same scheme as v1 with a larger register tile, so each shared-memory load
// feeds more FMAs (64 per 16 loads instead of 16 per 8): a 128 x 128 block of C
// per 256 threads, each thread 8 x 8 outputs, 8-deep K slices. A thread's rows
// and columns are strided by 16 (row ty + 16 i, column tx + 16 j), so a warp's
// shared-memory reads of B are 16 consecutive words (no bank conflicts) and its
// stores to C are 16-float runs. The A tile is stored transposed with rows
// padded by 4 words, so the transposing stores do not conflict either.
// Zero-filled loads handle ragged edges; K == 0 writes zeros.
#include <cuda_runtime.h>

#include "tg_cuda.h"

namespace {

constexpr int kBm = 128;
constexpr int kBn = 128;
constexpr int kBk = 8;
constexpr int kTm = 8;
constexpr int kTn = 8;
constexpr int kRowsT = kBm / kTm;  // 16 thread rows
constexpr int kColsT = kBn / kTn;  // 16 thread columns
constexpr int kThreads = kRowsT * kColsT;  // 256
constexpr int kApad = 4;
constexpr int64_t kMaxGridYZ = 65535;

static_assert((kBm * kBk) % kThreads == 0 && (kBk * kBn) % kThreads == 0, "tile loads must divide evenly");
static_assert(kThreads % kBk == 0 && kThreads % kBn == 0, "load mapping");

__global__ void __launch_bounds__(kThreads)
matmul_tiled_v2(const float* __restrict__ a, const float* __restrict__ b, float* __restrict__ c,
                int64_t m, int64_t n, int64_t k) {
  __shared__ float as[kBk][kBm + kApad];  // A tile transposed: [k][m]
  __shared__ float bs[kBk][kBn];

  const int64_t batch = blockIdx.z;
  a += batch * m * k;
  b += batch * k * n;
  c += batch * m * n;

  const int tid = threadIdx.x;
  const int tx = tid % kColsT;
  const int ty = tid / kColsT;
  const int64_t row0 = static_cast<int64_t>(blockIdx.y) * kBm;
  const int64_t col0 = static_cast<int64_t>(blockIdx.x) * kBn;

  constexpr int kALoads = (kBm * kBk) / kThreads;  // 4
  constexpr int kBLoads = (kBk * kBn) / kThreads;  // 4
  constexpr int kARowStep = kThreads / kBk;        // 32
  constexpr int kBRowStep = kThreads / kBn;        // 2
  const int a_r = tid / kBk;
  const int a_k = tid % kBk;
  const int b_k = tid / kBn;
  const int b_c = tid % kBn;
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

#pragma unroll
  for (int i = 0; i < kTm; ++i) {
    const int64_t r = row0 + ty + i * kRowsT;
    if (r >= m) continue;
#pragma unroll
    for (int j = 0; j < kTn; ++j) {
      const int64_t col = col0 + tx + j * kColsT;
      if (col < n) c[r * n + col] = acc[i][j];
    }
  }
}

}  // namespace

extern "C" int tg_cuda_matmul_v2(const float* a, const float* b, float* out, int64_t batch, int64_t m, int64_t n,
                                 int64_t k, void* stream) {
  if (batch <= 0 || m <= 0 || n <= 0) return 0;
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  const int64_t col_tiles = (n + kBn - 1) / kBn;
  const int64_t row_tiles = (m + kBm - 1) / kBm;
  // gridDim.y and gridDim.z are limited to 65535: launch in chunks of rows and batches
  // (a chunk of rows of a batched product is not a contiguous batch: one entry per launch).
  const int64_t rows_per_launch = kMaxGridYZ * kBm;
  for (int64_t b0 = 0; b0 < batch; b0 += kMaxGridYZ) {
    const int64_t nb = batch - b0 < kMaxGridYZ ? batch - b0 : kMaxGridYZ;
    for (int64_t r0 = 0; r0 < m; r0 += rows_per_launch) {
      const int64_t rows = m - r0 < rows_per_launch ? m - r0 : rows_per_launch;
      const bool whole = rows == m;
      const int64_t launches = whole ? 1 : nb;
      for (int64_t i = 0; i < launches; ++i) {
        const int64_t bi = b0 + (whole ? 0 : i);
        dim3 grid(static_cast<unsigned int>(col_tiles),
                  static_cast<unsigned int>(whole ? row_tiles : (rows + kBm - 1) / kBm),
                  static_cast<unsigned int>(whole ? nb : 1));
        matmul_tiled_v2<<<grid, kThreads, 0, s>>>(a + bi * m * k + r0 * k, b + bi * k * n,
                                                  out + bi * m * n + r0 * n, rows, n, k);
        cudaError_t err = cudaGetLastError();
        if (err != cudaSuccess) return static_cast<int>(err);
      }
    }
  }
  return 0;
}
