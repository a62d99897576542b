// float32 matmul v3 on the tensor cores in TF32: out[b] = a[b] @ b[b], row-major.
//
// Opt-in only (never the default): inputs are rounded to TF32 (10-bit mantissa,
// round to nearest) before the products, so results differ from float32 by
// about 1e-3 relative to |a| @ |b|; accumulation stays float32.
//
// A 128 x 128 block of C per 256 threads (8 warps as 2 x 4, each a 64 x 32
// tile of 4 x 4 mma.sync.m16n8k8 fragments, 64 accumulators per thread).
// 16-deep K slices of A (row-major, rows padded to 20 words) and B (padded to
// 136 words) are staged in shared memory, already converted to TF32; both
// paddings make the fragment reads conflict-free. Zero-filled loads handle
// ragged edges; K == 0 writes zeros. Plain loads, no cp.async pipeline yet.
#include <cuda_runtime.h>
#include <stdint.h>

#include "mma_tf32.cuh"
#include "tg_cuda.h"

namespace {

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
constexpr int kApad = 4;
constexpr int kBpad = 8;
constexpr int64_t kMaxGridYZ = 65535;

static_assert(kWarpRows * kWarpCols * 32 == kThreads, "8 warps");
static_assert((kBm * kBk) % kThreads == 0 && (kBk * kBn) % kThreads == 0, "tile loads must divide evenly");

__global__ void __launch_bounds__(kThreads)
matmul_tf32_v3(const float* __restrict__ a, const float* __restrict__ b, float* __restrict__ c,
               int64_t m, int64_t n, int64_t k) {
  __shared__ uint32_t as[kBm][kBk + kApad];  // [m][k], TF32 bits
  __shared__ uint32_t bs[kBk][kBn + kBpad];  // [k][n], TF32 bits

  const int64_t batch = blockIdx.z;
  a += batch * m * k;
  b += batch * k * n;
  c += batch * m * n;

  const int tid = threadIdx.x;
  const int lane = tid % 32;
  const int warp = tid / 32;
  const int g = lane / 4;  // fragment row group
  const int t = lane % 4;  // thread in group
  const int wm = (warp / kWarpCols) * kWm;
  const int wn = (warp % kWarpCols) * kWn;
  const int64_t row0 = static_cast<int64_t>(blockIdx.y) * kBm;
  const int64_t col0 = static_cast<int64_t>(blockIdx.x) * kBn;

  constexpr int kALoads = (kBm * kBk) / kThreads;  // 8
  constexpr int kBLoads = (kBk * kBn) / kThreads;  // 8
  constexpr int kARowStep = kThreads / kBk;        // 16
  constexpr int kBRowStep = kThreads / kBn;        // 2
  const int a_r = tid / kBk;
  const int a_k = tid % kBk;
  const int b_k = tid / kBn;
  const int b_c = tid % kBn;
  const int a_rows = static_cast<int>(m - row0 < kBm ? m - row0 : kBm);
  const bool b_col_ok = col0 + b_c < n;
  const float* a_ptr = a + (row0 + a_r) * k + a_k;
  const float* b_ptr = b + static_cast<int64_t>(b_k) * n + col0 + b_c;

  float acc[kFm][kFn][4];
#pragma unroll
  for (int i = 0; i < kFm; ++i)
#pragma unroll
    for (int j = 0; j < kFn; ++j)
#pragma unroll
      for (int q = 0; q < 4; ++q) acc[i][j][q] = 0.0f;

  for (int64_t k0 = 0; k0 < k; k0 += kBk) {
    const bool a_k_ok = k0 + a_k < k;
#pragma unroll
    for (int l = 0; l < kALoads; ++l) {
      const int r = a_r + l * kARowStep;
      const float v = (a_k_ok && r < a_rows) ? a_ptr[static_cast<int64_t>(l) * kARowStep * k] : 0.0f;
      as[r][a_k] = to_tf32(v);
    }
#pragma unroll
    for (int l = 0; l < kBLoads; ++l) {
      const int kk = b_k + l * kBRowStep;
      const float v = (b_col_ok && k0 + kk < k) ? b_ptr[static_cast<int64_t>(l) * kBRowStep * n] : 0.0f;
      bs[kk][b_c] = to_tf32(v);
    }
    a_ptr += kBk;
    b_ptr += kBk * n;
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < kBk; kk += 8) {
      uint32_t af[kFm][4];
      uint32_t bf[kFn][2];
#pragma unroll
      for (int i = 0; i < kFm; ++i) {
        const int r = wm + i * 16 + g;
        af[i][0] = as[r][kk + t];
        af[i][1] = as[r + 8][kk + t];
        af[i][2] = as[r][kk + t + 4];
        af[i][3] = as[r + 8][kk + t + 4];
      }
#pragma unroll
      for (int j = 0; j < kFn; ++j) {
        const int col = wn + j * 8 + g;
        bf[j][0] = bs[kk + t][col];
        bf[j][1] = bs[kk + t + 4][col];
      }
#pragma unroll
      for (int i = 0; i < kFm; ++i)
#pragma unroll
        for (int j = 0; j < kFn; ++j) mma(acc[i][j], af[i], bf[j]);
    }
    __syncthreads();
  }

  // Accumulator q of fragment (i, j): row g (+8 for q >= 2), column 2t (+1 for odd q).
#pragma unroll
  for (int i = 0; i < kFm; ++i) {
#pragma unroll
    for (int j = 0; j < kFn; ++j) {
#pragma unroll
      for (int q = 0; q < 4; ++q) {
        const int64_t r = row0 + wm + i * 16 + g + (q >= 2 ? 8 : 0);
        const int64_t col = col0 + wn + j * 8 + 2 * t + (q & 1);
        if (r < m && col < n) c[r * n + col] = acc[i][j][q];
      }
    }
  }
}

}  // namespace

extern "C" int tg_cuda_matmul_tf32(const float* a, const float* b, float* out, int64_t batch, int64_t m,
                                   int64_t n, int64_t k, void* stream) {
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
        matmul_tf32_v3<<<grid, kThreads, 0, s>>>(a + bi * m * k + r0 * k, b + bi * k * n,
                                                 out + bi * m * n + r0 * n, rows, n, k);
        cudaError_t err = cudaGetLastError();
        if (err != cudaSuccess) return static_cast<int>(err);
      }
    }
  }
  return 0;
}
