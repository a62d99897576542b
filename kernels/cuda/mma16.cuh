// 16-bit floating point on the tensor cores: float16 / bfloat16 values kept as raw uint16_t bits,
// conversions, and mma.sync.aligned.m16n8k16 (float32 accumulation). kBf16 picks the type:
// 0 float16, 1 bfloat16. sm_80+. CUDA code: include only from .cu files.
//
// Fragments of D (16 x 8, float) += A (16 x 16, row) * B (16 x 8, col) for lane l of a warp,
// g = l / 4, t = l % 4 (PTX ISA, "Matrix Fragments for mma.m16n8k16 with floating point type"):
//   a[0] = A[g][2t, 2t+1]    a[1] = A[g+8][2t, 2t+1]  a[2] = A[g][2t+8, 2t+9]  a[3] = A[g+8][2t+8, 2t+9]
//   b[0] = B[2t, 2t+1][g]    b[1] = B[2t+8, 2t+9][g]
//   d[0], d[1] = D[g][2t, 2t+1]                        d[2], d[3] = D[g+8][2t, 2t+1]
// each register holding two 16-bit values, the lower column (or row) in the low half.
//
// ldmatrix_x4 / _x2 (and _trans) load the fragments of four / two 8 x 8 matrices of 16-bit values
// from shared memory: lane l gives the address of row l % 8 of matrix l / 8 (16 bytes, 16-byte
// aligned); register j of lane l receives row l / 4, elements 2 (l % 4) and 2 (l % 4) + 1 of
// matrix j, or with _trans those of the transposed matrix (elements [2 (l % 4)][l / 4] and
// [2 (l % 4) + 1][l / 4]). For x2, lanes 0-15 give the addresses (the others' are ignored).
//
// Built for the CPU test emulation (TG_CUDA_EMULATION, tests/native/cuda_emu), the conversions
// are done in software and the mma and ldmatrix by exchanging the warp's registers (addresses)
// through a per-warp buffer, following the layouts above.
#pragma once

#include <stdint.h>

#ifndef TG_CUDA_EMULATION
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#else
#include <cstring>
#endif

namespace tg {
namespace cuda {
namespace mma16 {

#ifndef TG_CUDA_EMULATION

template <int kBf16>
__device__ __forceinline__ float to_float(uint16_t bits) {
  if (kBf16) return __bfloat162float(__ushort_as_bfloat16(bits));
  return __half2float(__ushort_as_half(bits));
}

// Two floats rounded to nearest even, lo in the low 16 bits.
template <int kBf16>
__device__ __forceinline__ uint32_t pack2(float lo, float hi) {
  uint32_t r;
  if (kBf16) {
    const __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
    r = *reinterpret_cast<const uint32_t*>(&h);
  } else {
    const __half2 h = __floats2half2_rn(lo, hi);
    r = *reinterpret_cast<const uint32_t*>(&h);
  }
  return r;
}

__device__ __forceinline__ unsigned smem_address(const void* p) {
  return static_cast<unsigned>(__cvta_generic_to_shared(p));
}

__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const uint16_t* row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_address(row)));
}

__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const uint16_t* row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_address(row)));
}

__device__ __forceinline__ void ldmatrix_x2(uint32_t (&r)[2], const uint16_t* row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0, %1}, [%2];\n"
               : "=r"(r[0]), "=r"(r[1])
               : "r"(smem_address(row)));
}

__device__ __forceinline__ void ldmatrix_x2_trans(uint32_t (&r)[2], const uint16_t* row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0, %1}, [%2];\n"
               : "=r"(r[0]), "=r"(r[1])
               : "r"(smem_address(row)));
}

template <int kBf16>
__device__ __forceinline__ void mma(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
  if (kBf16) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
        "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  } else {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
        "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  }
}

#else  // TG_CUDA_EMULATION

template <int kBf16>
inline float to_float(uint16_t bits) {
  if (kBf16) {
    const uint32_t w = static_cast<uint32_t>(bits) << 16;
    float f;
    std::memcpy(&f, &w, 4);
    return f;
  }
  _Float16 h;
  std::memcpy(&h, &bits, 2);
  return static_cast<float>(h);
}

template <int kBf16>
inline uint16_t round16(float x) {
  if (kBf16) {
    uint32_t w;
    std::memcpy(&w, &x, 4);
    if ((w & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((w >> 16) | 0x40);  // NaN stays NaN
    return static_cast<uint16_t>((w + 0x7fffu + ((w >> 16) & 1u)) >> 16);
  }
  const _Float16 h = static_cast<_Float16>(x);  // IEEE round to nearest even
  uint16_t bits;
  std::memcpy(&bits, &h, 2);
  return bits;
}

template <int kBf16>
inline uint32_t pack2(float lo, float hi) {
  return static_cast<uint32_t>(round16<kBf16>(lo)) | (static_cast<uint32_t>(round16<kBf16>(hi)) << 16);
}

template <int kBf16>
inline float half_of(uint32_t reg, int upper) {
  return to_float<kBf16>(static_cast<uint16_t>(upper ? reg >> 16 : reg & 0xffffu));
}

// Every lane's kN values of type T, exchanged through one per-warp buffer between two barriers
// over the warp instead of one shuffle per value: the emulated mma would otherwise cost 64
// shuffles.
template <typename T, int kN>
inline void warp_exchange(const T (&mine)[kN], T (&all)[32][kN]) {
  emu::warp_all_gather(mine, all);
}

// ldmatrix: every lane reads its elements from the row addresses of the lanes named above.
template <int kMatrices, bool kTrans>
inline void ldmatrix_emulated(uint32_t* r, const uint16_t* row) {
  const int lane = emu::lane_id();
  const uint16_t* mine[1] = {row};
  const uint16_t* rows[32][1];
  warp_exchange(mine, rows);
  for (int j = 0; j < kMatrices; ++j) {
    if (!kTrans) {
      const uint16_t* p = rows[8 * j + lane / 4][0];
      r[j] = static_cast<uint32_t>(p[2 * (lane % 4)]) | (static_cast<uint32_t>(p[2 * (lane % 4) + 1]) << 16);
    } else {
      const uint16_t* p0 = rows[8 * j + 2 * (lane % 4)][0];
      const uint16_t* p1 = rows[8 * j + 2 * (lane % 4) + 1][0];
      r[j] = static_cast<uint32_t>(p0[lane / 4]) | (static_cast<uint32_t>(p1[lane / 4]) << 16);
    }
  }
}

inline void ldmatrix_x4(uint32_t (&r)[4], const uint16_t* row) { ldmatrix_emulated<4, false>(r, row); }
inline void ldmatrix_x4_trans(uint32_t (&r)[4], const uint16_t* row) { ldmatrix_emulated<4, true>(r, row); }
inline void ldmatrix_x2(uint32_t (&r)[2], const uint16_t* row) { ldmatrix_emulated<2, false>(r, row); }
inline void ldmatrix_x2_trans(uint32_t (&r)[2], const uint16_t* row) { ldmatrix_emulated<2, true>(r, row); }

template <int kBf16>
inline void mma(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
  const int lane = emu::lane_id(), g = lane / 4, t = lane % 4;
  const uint32_t mine[6] = {a[0], a[1], a[2], a[3], b[0], b[1]};
  uint32_t all[32][6];
  warp_exchange(mine, all);
  for (int k = 0; k < 16; ++k) {
    const int hi = k >= 8, pair = (k % 8) / 2, upper = k % 2;
    // A[g][k] and A[g+8][k] sit in lane 4 g + pair; B[k][n] in lane 4 n + pair.
    const float a_lo = half_of<kBf16>(all[4 * g + pair][hi ? 2 : 0], upper);
    const float a_hi = half_of<kBf16>(all[4 * g + pair][hi ? 3 : 1], upper);
    const float b0 = half_of<kBf16>(all[4 * (2 * t) + pair][4 + hi], upper);
    const float b1 = half_of<kBf16>(all[4 * (2 * t + 1) + pair][4 + hi], upper);
    d[0] += a_lo * b0;
    d[1] += a_lo * b1;
    d[2] += a_hi * b0;
    d[3] += a_hi * b1;
  }
}

#endif  // TG_CUDA_EMULATION

}  // namespace mma16
}  // namespace cuda
}  // namespace tg
