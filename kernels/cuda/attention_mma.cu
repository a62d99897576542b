// Scaled dot-product attention v3: the forward for float16 / bfloat16 inputs on the tensor cores
// (mma.sync m16n8k16, float32 accumulation), head dims E == Ev == 64 or 128. Same scheme as the
// float32 v2 (FlashAttention-2, online softmax in base 2, scores never stored), with the tile
// products as warp-wide mma fragments (mma16.cuh has their layouts):
//
// A block of 4 warps takes 64 queries (16 per warp) of one batch entry; last tiles first. The Q
// tile passes through shared memory once into A fragments held in registers (E / 4 words per
// thread). For each 64-key tile, K is staged row-major ([key][d], the B operand of Q K^T as is)
// and V transposed ([d][key], so the B operand of P V is two adjacent 16-bit values too); each
// warp computes its 16 x 64 scores as 8 fragments, masks them, updates the running max and sum
// of its two rows per thread (reductions over the 4 lanes of a row: 2 shuffles), and multiplies
// P, rounded to the input type, with V: the score fragments of two adjacent 8-key tiles are
// exactly the A fragment of one 16-key step, so P never leaves registers. Rows of shared memory
// carry 8 halves of padding: every fragment read of a warp hits 32 distinct banks.
//
// Global memory is read and written 32 bits at a time: q, k, v and out must be 4-byte aligned
// (the binding checks). The backward from this forward's out and lse: attention_mma_bwd.cu.
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>

#include "attention.cuh"
#include "mma16.cuh"
#include "tg_cuda.h"
#include "tg_cuda_device.h"

namespace tg {
namespace cuda {
namespace attn {
namespace {

using mma16::mma;
using mma16::pack2;

constexpr int kThreads = 128;
constexpr int kBr = 64;  // queries per block: 16 per warp
constexpr int kBc = 64;  // keys per tile
constexpr unsigned kFull = 0xffffffffu;

template <int kD>
struct Tile {
  static constexpr int kStride = kD + 8;     // halves per row of qs and ks
  static constexpr int kVtStride = kBc + 8;  // halves per row of vt ([d][key])
  static constexpr int kSteps = kD / 16;     // 16-deep steps of Q K^T
  static constexpr int kKeyTiles = kBc / 8;  // 8-key fragments of scores
  static constexpr int kOutTiles = kD / 8;   // 8-column fragments of the output
  static constexpr size_t kSmem = sizeof(uint16_t) * (kBr * kStride + kBc * kStride + kD * kVtStride);
};

__device__ __forceinline__ uint32_t ld32(const uint16_t* p) { return *reinterpret_cast<const uint32_t*>(p); }

// Rows [0, kRows) of kD halves into shared memory (row stride kStride), zero past `valid` rows.
template <int kRows, int kD, int kStride>
__device__ __forceinline__ void load_rows(uint16_t* dst, const uint16_t* src, int64_t valid) {
  constexpr int kPairs = kD / 2;
  for (int i = threadIdx.x; i < kRows * kPairs; i += kThreads) {
    const int r = i / kPairs, c = 2 * (i % kPairs);
    *reinterpret_cast<uint32_t*>(dst + r * kStride + c) = r < valid ? ld32(src + static_cast<int64_t>(r) * kD + c) : 0u;
  }
}

// The V tile transposed: vt[d][key], zero past `valid` keys.
template <int kD, int kVtStride>
__device__ __forceinline__ void load_transposed(uint16_t* vt, const uint16_t* src, int64_t valid) {
  constexpr int kPairs = kD / 2;
  for (int i = threadIdx.x; i < kBc * kPairs; i += kThreads) {
    const int key = i / kPairs, d = 2 * (i % kPairs);
    const uint32_t v = key < valid ? ld32(src + static_cast<int64_t>(key) * kD + d) : 0u;
    vt[d * kVtStride + key] = static_cast<uint16_t>(v & 0xffffu);
    vt[(d + 1) * kVtStride + key] = static_cast<uint16_t>(v >> 16);
  }
}

__device__ __forceinline__ float quad_max(float v) {
  v = fmaxf(v, __shfl_xor_sync(kFull, v, 1));
  return fmaxf(v, __shfl_xor_sync(kFull, v, 2));
}

__device__ __forceinline__ float quad_sum(float v) {
  v += __shfl_xor_sync(kFull, v, 1);
  return v + __shfl_xor_sync(kFull, v, 2);
}

template <int kBf16, int kD>
__global__ void __launch_bounds__(kThreads, 1)
forward_mma(const uint16_t* __restrict__ q, const uint16_t* __restrict__ k, const uint16_t* __restrict__ v,
            Masking mk, uint16_t* __restrict__ out, float* __restrict__ lse, int64_t batch, int64_t L, int64_t S,
            float scale2) {
  using T = Tile<kD>;
  extern __shared__ float4 smem4[];
  uint16_t* qs = reinterpret_cast<uint16_t*>(smem4);  // [kBr][kStride]
  uint16_t* ks = qs + kBr * T::kStride;                // [kBc][kStride]
  uint16_t* vt = ks + kBc * T::kStride;                // [kD][kVtStride]
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, g = lane / 4, t = lane % 4;
  const int64_t tiles = (L + kBr - 1) / kBr;

  for (int64_t work = blockIdx.x; work < batch * tiles; work += gridDim.x) {
    const int64_t b = work / tiles;
    const int64_t q0 = (tiles - 1 - work % tiles) * kBr;
    __syncthreads();  // the previous item's readers of qs are done
    load_rows<kBr, kD, T::kStride>(qs, q + (b * L + q0) * kD, L - q0);
    __syncthreads();
    uint32_t qa[T::kSteps][4];
    {
      const uint16_t* lo = qs + (warp * 16 + g) * T::kStride + 2 * t;
      const uint16_t* hi = lo + 8 * T::kStride;
#pragma unroll
      for (int s = 0; s < T::kSteps; ++s) {
        qa[s][0] = ld32(lo + 16 * s);
        qa[s][1] = ld32(hi + 16 * s);
        qa[s][2] = ld32(lo + 16 * s + 8);
        qa[s][3] = ld32(hi + 16 * s + 8);
      }
    }
    const int64_t rows[2] = {q0 + warp * 16 + g, q0 + warp * 16 + g + 8};
    float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
    float o[T::kOutTiles][4];
#pragma unroll
    for (int j = 0; j < T::kOutTiles; ++j) o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0.0f;

    const int64_t kv_end = mk.causal ? (S < q0 + kBr ? S : q0 + kBr) : S;
    for (int64_t k0 = 0; k0 < kv_end; k0 += kBc) {
      __syncthreads();  // readers of the previous ks / vt are done
      load_rows<kBc, kD, T::kStride>(ks, k + (b * S + k0) * kD, S - k0);
      load_transposed<kD, T::kVtStride>(vt, v + (b * S + k0) * kD, S - k0);
      __syncthreads();

      float s[T::kKeyTiles][4];
#pragma unroll
      for (int n = 0; n < T::kKeyTiles; ++n) {
        s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.0f;
        const uint16_t* kr = ks + (n * 8 + g) * T::kStride + 2 * t;
#pragma unroll
        for (int st = 0; st < T::kSteps; ++st) {
          const uint32_t kb[2] = {ld32(kr + 16 * st), ld32(kr + 16 * st + 8)};
          mma<kBf16>(s[n], qa[st], kb);
        }
      }
#pragma unroll
      for (int n = 0; n < T::kKeyTiles; ++n) {
        const int64_t col = k0 + n * 8 + 2 * t;
#pragma unroll
        for (int e = 0; e < 4; ++e) s[n][e] = mk.apply(s[n][e] * scale2, b, rows[e / 2], col + e % 2, kLog2e);
      }
      // Online softmax of the thread's two rows (h = 0: row g, h = 1: row g + 8).
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        float mt = -INFINITY;
#pragma unroll
        for (int n = 0; n < T::kKeyTiles; ++n) mt = fmaxf(mt, fmaxf(s[n][2 * h], s[n][2 * h + 1]));
        const float m_new = fmaxf(m[h], quad_max(mt));
        const float base = m_new == -INFINITY ? 0.0f : m_new;  // nothing allowed yet: p = 0, not NaN
        const float alpha = exp2f(m[h] - base);
        float rs = 0.0f;
#pragma unroll
        for (int n = 0; n < T::kKeyTiles; ++n) {
          s[n][2 * h] = exp2f(s[n][2 * h] - base);
          s[n][2 * h + 1] = exp2f(s[n][2 * h + 1] - base);
          rs += s[n][2 * h] + s[n][2 * h + 1];
        }
        l[h] = l[h] * alpha + quad_sum(rs);
        m[h] = m_new;
#pragma unroll
        for (int j = 0; j < T::kOutTiles; ++j) {
          o[j][2 * h] *= alpha;
          o[j][2 * h + 1] *= alpha;
        }
      }
      // O += P V, 16 keys per step: score fragments 2 kk and 2 kk + 1 form the A fragment.
#pragma unroll
      for (int kk = 0; kk < kBc / 16; ++kk) {
        const uint32_t pa[4] = {pack2<kBf16>(s[2 * kk][0], s[2 * kk][1]), pack2<kBf16>(s[2 * kk][2], s[2 * kk][3]),
                                pack2<kBf16>(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                                pack2<kBf16>(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
        for (int j = 0; j < T::kOutTiles; ++j) {
          const uint16_t* vr = vt + (j * 8 + g) * T::kVtStride + 16 * kk + 2 * t;
          const uint32_t vb[2] = {ld32(vr), ld32(vr + 8)};
          mma<kBf16>(o[j], pa, vb);
        }
      }
    }

#pragma unroll
    for (int h = 0; h < 2; ++h) {
      if (rows[h] >= L) continue;
      const bool dead = l[h] == 0.0f;  // no key allowed: NaN outputs, lse -inf
      const float inv = dead ? 0.0f : 1.0f / l[h];  // a row with no key: 0, as PyTorch
      uint16_t* orow = out + (b * L + rows[h]) * kD + 2 * t;
#pragma unroll
      for (int j = 0; j < T::kOutTiles; ++j) {
        *reinterpret_cast<uint32_t*>(orow + 8 * j) = pack2<kBf16>(o[j][2 * h] * inv, o[j][2 * h + 1] * inv);
      }
      if (t == 0) lse[b * L + rows[h]] = dead ? -INFINITY : (m[h] + log2f(l[h])) * kLn2;
    }
  }
}

template <int kBf16, int kD>
int launch(const TgSdpa& a, cudaStream_t s) {
  const int64_t items = a.batch * ((a.q_len + kBr - 1) / kBr);
  if (items == 0) return 0;
  const size_t smem = Tile<kD>::kSmem;
  int err = static_cast<int>(cudaFuncSetAttribute(forward_mma<kBf16, kD>,
                                                  cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
  if (err != 0) return err;
  const int64_t cap = int64_t{1} << 30;
  forward_mma<kBf16, kD><<<static_cast<unsigned>(items < cap ? items : cap), kThreads, smem, s>>>(
      static_cast<const uint16_t*>(a.q), static_cast<const uint16_t*>(a.k), static_cast<const uint16_t*>(a.v),
      make_masking(a), static_cast<uint16_t*>(a.out), a.lse, a.batch, a.q_len, a.kv_len, a.scale * kLog2e);
  return static_cast<int>(cudaGetLastError());
}

}  // namespace

int sdpa_forward_v3(const TgSdpa& a, cudaStream_t s) {
  const bool bf16 = a.dtype == TG_DTYPE_BF16;
  if (a.head_dim == 64) return bf16 ? launch<1, 64>(a, s) : launch<0, 64>(a, s);
  return bf16 ? launch<1, 128>(a, s) : launch<0, 128>(a, s);
}

}  // namespace attn
}  // namespace cuda
}  // namespace tg
