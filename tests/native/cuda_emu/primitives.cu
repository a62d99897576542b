// Small kernels over the tensor-core building blocks (mma16.cuh, mma_tf32.cuh, async_copy.cuh),
// one warp each, for tests/native/test_cuda_emu_primitives.py: they load operands the way the
// GEMM kernels do (cp.async into shared memory, ldmatrix or plain fragment reads) and store the
// product through the documented accumulator layout, so a product that matches NumPy's checks
// the layouts and the emulation together.
#include <cuda_runtime.h>
#include <stdint.h>

#include "async_copy.cuh"
#include "mma16.cuh"
#include "mma_tf32.cuh"

using namespace tg::cuda;

namespace {

// D (16 x 8) from d[4] of every lane: d[0], d[1] = D[g][2t, 2t+1]; d[2], d[3] = D[g+8][2t, 2t+1].
__device__ void store_d(float* d_out, const float (&d)[4]) {
  const int lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  d_out[g * 8 + 2 * t] = d[0];
  d_out[g * 8 + 2 * t + 1] = d[1];
  d_out[(g + 8) * 8 + 2 * t] = d[2];
  d_out[(g + 8) * 8 + 2 * t + 1] = d[3];
}

// a: A (16 x 16) row-major; b: B (16 x 8) row-major ([k][n]) if !b_nk, else stored [n][k].
template <int kBf16>
__global__ void mma16_kernel(const uint16_t* a, const uint16_t* b, int b_nk, float* d_out) {
  __shared__ __align__(16) uint16_t as[16 * 16];
  __shared__ __align__(16) uint16_t bs[16 * 8];
  const int lane = threadIdx.x;
  cp_async16(as + lane * 8, a + lane * 8, true);           // 32 x 16 bytes: all of A
  if (lane < 16) cp_async16(bs + lane * 8, b + lane * 8, true);  // 16 x 16 bytes: all of B
  cp_async_commit();
  cp_async_wait<0>();
  __syncthreads();
  uint32_t af[4], bf[2];
  // Matrices 0-3 of x4: rows 0-7 / 8-15 of columns 0-7, then of columns 8-15.
  mma16::ldmatrix_x4(af, as + (lane % 16) * 16 + (lane / 16) * 8);
  if (b_nk) {
    // B^T stored [n][k] (8 x 16): its rows are B's columns, the "col" layout the mma wants.
    mma16::ldmatrix_x2(bf, bs + (lane % 8) * 16 + ((lane / 8) % 2) * 8);
  } else {
    mma16::ldmatrix_x2_trans(bf, bs + (lane % 16) * 8);
  }
  float d[4] = {0.0f, 0.0f, 0.0f, 0.0f};
  mma16::mma<kBf16>(d, af, bf);
  store_d(d_out, d);
}

// A (16 x 8) and B (8 x 8), float32 row-major, rounded to TF32; fragments read as documented.
__global__ void tf32_kernel(const float* a, const float* b, float* d_out) {
  __shared__ __align__(16) float as[16 * 8];
  __shared__ __align__(16) float bs[8 * 8];
  const int lane = threadIdx.x, g = lane / 4, t = lane % 4;
  for (int i = lane; i < 16 * 8; i += 32) cp_async4(as + i, a + i, true);
  for (int i = lane; i < 8 * 8; i += 32) cp_async4(bs + i, b + i, true);
  cp_async_commit();
  cp_async_wait<0>();
  __syncthreads();
  const uint32_t af[4] = {tf32::to_tf32(as[g * 8 + t]), tf32::to_tf32(as[(g + 8) * 8 + t]),
                          tf32::to_tf32(as[g * 8 + t + 4]), tf32::to_tf32(as[(g + 8) * 8 + t + 4])};
  const uint32_t bf[2] = {tf32::to_tf32(bs[t * 8 + g]), tf32::to_tf32(bs[(t + 4) * 8 + g])};
  float d[4] = {0.0f, 0.0f, 0.0f, 0.0f};
  tf32::mma(d, af, bf);
  store_d(d_out, d);
}

__global__ void to_tf32_kernel(const float* x, uint32_t* out, int64_t n) {
  for (int64_t i = threadIdx.x; i < n; i += 32) out[i] = tf32::to_tf32(x[i]);
}

// 16-byte copies where valid[i] != 0, zeros elsewhere.
__global__ void cp_async_kernel(const float* src, const int* valid, float* dst) {
  __shared__ __align__(16) float s[32 * 4];
  const int lane = threadIdx.x;
  cp_async16(s + 4 * lane, src + 4 * lane, valid[lane] != 0);
  cp_async_commit();
  cp_async_wait<0>();
  __syncthreads();
  for (int i = 0; i < 4; ++i) dst[4 * lane + i] = s[4 * lane + i];
}

}  // namespace

extern "C" int emu_mma16(const uint16_t* a, const uint16_t* b, int b_nk, int bf16, float* d) {
  if (bf16) {
    mma16_kernel<1><<<1, 32>>>(a, b, b_nk, d);
  } else {
    mma16_kernel<0><<<1, 32>>>(a, b, b_nk, d);
  }
  return 0;
}

extern "C" int emu_tf32(const float* a, const float* b, float* d) {
  tf32_kernel<<<1, 32>>>(a, b, d);
  return 0;
}

extern "C" int emu_to_tf32(const float* x, uint32_t* out, int64_t n) {
  to_tf32_kernel<<<1, 32>>>(x, out, n);
  return 0;
}

extern "C" int emu_cp_async(const float* src, const int* valid, float* dst) {
  cp_async_kernel<<<1, 32>>>(src, valid, dst);
  return 0;
}
