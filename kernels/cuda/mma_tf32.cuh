// TF32 on the tensor cores: float32 values rounded to TF32 (10-bit mantissa, round to nearest,
// ties away from zero: cvt.rna) and mma.sync.aligned.m16n8k8 with float32 accumulation. sm_80+.
// CUDA code: include only from .cu files.
//
// Fragments of D (16 x 8) += A (16 x 8, row) * B (8 x 8, col) for lane l, g = l / 4, t = l % 4
// (PTX ISA, "Matrix Fragments for mma.m16n8k8" with .tf32):
//   a[0] = A[g][t]   a[1] = A[g+8][t]   a[2] = A[g][t+4]   a[3] = A[g+8][t+4]
//   b[0] = B[t][g]   b[1] = B[t+4][g]
//   d[0], d[1] = D[g][2t, 2t+1]         d[2], d[3] = D[g+8][2t, 2t+1]
//
// Built for the CPU test emulation (TG_CUDA_EMULATION, tests/native/cuda_emu) the rounding is
// done in software and the mma by gathering the warp's fragments in one exchange.
#pragma once

#include <stdint.h>

#ifdef TG_CUDA_EMULATION
#include <cstring>
#endif

namespace tg {
namespace cuda {
namespace tf32 {

#ifndef TG_CUDA_EMULATION

// The TF32 bits of x (a float32 whose low 13 mantissa bits are zero).
__device__ __forceinline__ uint32_t to_tf32(float x) {
  uint32_t r;
  asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(x));
  return r;
}

__device__ __forceinline__ void mma(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
  asm volatile(
      "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 "
      "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

#else  // TG_CUDA_EMULATION

inline uint32_t to_tf32(float x) {
  uint32_t w;
  std::memcpy(&w, &x, 4);
  if ((w & 0x7f800000u) == 0x7f800000u) return w & 0xffffe000u | ((w & 0x7fffffu) ? 0x400000u : 0u);  // inf / NaN
  return (w + 0x1000u) & 0xffffe000u;  // nearest, ties away from zero (the magnitude rounds up)
}

inline float as_float(uint32_t w) {
  float f;
  std::memcpy(&f, &w, 4);
  return f;
}

inline void mma(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
  struct Fragments {
    uint32_t a[4], b[2];
  };
  Fragments all[32];  // every lane's fragments, gathered in one exchange
  emu::warp_all_gather(Fragments{{a[0], a[1], a[2], a[3]}, {b[0], b[1]}}, all);
  const int lane = emu::lane_id(), g = lane / 4, t = lane % 4;
  for (int k = 0; k < 8; ++k) {
    const int hi = k >= 4, col = k % 4;
    // A[g][k] and A[g+8][k] sit in lane 4 g + k % 4; B[k][n] in lane 4 n + k % 4.
    const float a_lo = as_float(all[4 * g + col].a[hi ? 2 : 0]);
    const float a_hi = as_float(all[4 * g + col].a[hi ? 3 : 1]);
    const float b0 = as_float(all[4 * (2 * t) + col].b[hi]);
    const float b1 = as_float(all[4 * (2 * t + 1) + col].b[hi]);
    d[0] += a_lo * b0;
    d[1] += a_lo * b1;
    d[2] += a_hi * b0;
    d[3] += a_hi * b1;
  }
}

#endif  // TG_CUDA_EMULATION

}  // namespace tf32
}  // namespace cuda
}  // namespace tg
