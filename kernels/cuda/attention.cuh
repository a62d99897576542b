// Shared by the scaled dot-product attention kernels (attention*.cu): the mask and causality
// test applied to each score, and the launchers of each kernel version. CUDA code: include only
// from .cu files.
//
// Conventions of every version:
//   - a score is scale * q . k, then the mask: -inf where the key may not be attended (beyond
//     S, above the diagonal under is_causal, false in a bool mask), plus the additive mask;
//   - lse = log(sum exp(score)) over the row (natural log), -inf for a row with no key
//     allowed ("dead" row). Its forward output is NaN (0 / 0, as the materialised softmax
//     gives); the backward takes its probabilities as 0, so its gq row is 0 and it adds
//     nothing to gk / gv, even when its gout row (or q row) holds NaN or inf;
//   - delta = rowsum(gout * out), precomputed once per row (0 for dead rows).
#pragma once

#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>

#include "tg_cuda.h"

namespace tg {
namespace cuda {
namespace attn {

constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

// The mask and causality of one call, by value in every kernel's arguments.
struct Masking {
  const unsigned char* bool_mask;  // TG_MASK_BOOL, else null
  const float* add_mask;           // TG_MASK_ADD, else null
  int64_t sb, sl, ss;              // mask strides in elements (0 broadcasts)
  int64_t q_len, kv_len;
  int causal;

  // `s` is a scaled score in units where the additive mask is multiplied by `add_scale`
  // (1 for natural-log units, log2(e) for the base-2 units of the tiled kernels). Returns -inf
  // for keys that may not be attended, and for rows / keys past the ends (tile padding), which
  // are never read from the mask.
  __device__ __forceinline__ float apply(float s, int64_t b, int64_t row, int64_t col, float add_scale) const {
    if (row >= q_len || col >= kv_len || (causal && col > row)) return -INFINITY;
    if (bool_mask != nullptr) return bool_mask[b * sb + row * sl + col * ss] ? s : -INFINITY;
    if (add_mask != nullptr) return s + add_mask[b * sb + row * sl + col * ss] * add_scale;
    return s;
  }
};

inline Masking make_masking(const TgSdpa& a) {
  Masking m;
  m.bool_mask = a.mask_kind == TG_MASK_BOOL ? static_cast<const unsigned char*>(a.mask) : nullptr;
  m.add_mask = a.mask_kind == TG_MASK_ADD ? static_cast<const float*>(a.mask) : nullptr;
  m.sb = a.mask_stride_b;
  m.sl = a.mask_stride_l;
  m.ss = a.mask_stride_s;
  m.q_len = a.q_len;
  m.kv_len = a.kv_len;
  m.causal = a.is_causal;
  return m;
}

// Launchers (float32). Each returns the cudaError_t of its launches; none synchronises.
// v1, attention_simple.cu: one warp per query row (forward, gq) or key row (gk, gv).
int sdpa_forward_v1(const TgSdpa& a, cudaStream_t s);
int sdpa_backward_v1(const TgSdpa& a, cudaStream_t s);  // after sdpa_delta
// v2, attention_tiled.cu: 64-query x 64-key tiles in shared memory, online softmax.
int sdpa_forward_v2(const TgSdpa& a, cudaStream_t s);
int sdpa_backward_v2(const TgSdpa& a, cudaStream_t s);  // after sdpa_delta
// v3, float16 / bfloat16, E == Ev == 64 or 128, tensor cores: the forward (attention_mma.cu)
// and the backward (attention_mma_bwd.cu, which computes its own delta from the 16-bit out).
int sdpa_forward_v3(const TgSdpa& a, cudaStream_t s);
int sdpa_backward_v3(const TgSdpa& a, cudaStream_t s);
// v4, the same types and dims: the pipelined forward (attention_mma_fwd.cu: cp.async double
// buffering, ldmatrix, swizzled shared memory); its backward is v3's.
int sdpa_forward_v4(const TgSdpa& a, cudaStream_t s);
// attention.cu: delta = rowsum(gout * out), 0 where lse == -inf.
int sdpa_delta(const TgSdpa& a, cudaStream_t s);

}  // namespace attn
}  // namespace cuda
}  // namespace tg
