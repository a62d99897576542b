// Scaled dot-product attention v3, backward: gradients for float16 / bfloat16 inputs on the
// tensor cores (mma.sync m16n8k16, float32 accumulation), head dims E == Ev == 64 or 128, from
// the forward's lse (attention_mma.cu). FlashAttention-2's backward, with gq in its own pass as
// the float32 v2 does (no atomics, no scratch, every sum in a fixed order: bit-identical results
// run to run). Three kernels:
//
//   delta: a warp per row, delta = rowsum(gout * out) in float32 (0 on dead rows);
//   gk, gv: a block of 4 warps per (batch, 64-key tile), 16 keys per warp, first tiles first.
//     The K and V tiles stay in shared memory; for each query tile that can see them (Q, gout,
//     lse and delta staged by cp.async) a warp computes S^T = K Q^T as fragments, P^T =
//     exp2(S^T - lse), gv += P^T gout, dP^T = V gout^T, dS^T = P^T (dP^T - delta) and
//     gk += dS^T Q. P^T and dS^T go from accumulator fragments to the A fragments of the next
//     product in registers (two adjacent 8-query fragments are one 16-deep A fragment, as in
//     the forward), rounded to the input type;
//   gq: a block per (batch, 64-query tile), 16 queries per warp, last tiles first. Q and gout
//     stay in shared memory; for each key tile: S = Q K^T, P, dP = gout V^T, dS, gq += dS K.
//
// Operands come from shared memory (rows padded by 8 halves: the 8 rows of an ldmatrix hit
// distinct banks) through ldmatrix: A fragments (16 rows x 16) with x4, B fragments of two
// adjacent 8-column tiles with x4 from a [n][k] array (K for S = Q K^T, gout for dP = gout V^T
// as read by dP^T = V gout^T, ...) or with x4.trans from a [k][n] array (gout for P^T gout, Q
// for dS^T Q, K for dS K). Tiles are loaded with 16-byte cp.async when every array is 16-byte
// aligned, 4-byte ones otherwise, in two stages: the copies of the next streamed tile fly while
// the current one is computed on. Rows past the ends and rows of dead queries (lse == -inf)
// are zero-filled, so a NaN in their q or gout cannot reach any gradient.
//
// Outputs gq, gk, gv are in the input type (pack2: round to nearest even), 4-byte aligned.
// The key tile is 64 keys for both head dims; query tiles of gk / gv are 64 rows for E = 64
// and 32 for E = 128, and key tiles of gq likewise, so the accumulators (E / 2 floats per
// thread each for gk and gv) and the two score tiles fit in registers without spills.
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>

#include "async_copy.cuh"
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

constexpr int kThreads = 128;  // 4 warps
constexpr int kRowsPerBlock = 64;  // keys of a gk / gv block, queries of a gq block: 16 per warp

template <int kD>
struct Bwd {
  static constexpr int kStride = kD + 8;             // halves per row of every tile
  static constexpr int kInner = kD == 64 ? 64 : 32;  // rows of the inner loop's tiles
  static constexpr int kTiles = kInner / 8;          // 8-column score fragments
  static constexpr int kOutTiles = kD / 8;           // 8-column output fragments
  static constexpr int kResident = kRowsPerBlock * kStride;  // halves of one resident tile
  static constexpr int kStreamed = kInner * kStride;         // halves of one streamed tile
  // Two resident tiles, two stages of two streamed tiles, two stages of lse and delta.
  static constexpr size_t kSmem =
      sizeof(uint16_t) * (2 * kResident + 4 * kStreamed) + sizeof(float) * 4 * kInner;
};

__device__ __forceinline__ uint32_t ld32(const uint16_t* p) { return *reinterpret_cast<const uint32_t*>(p); }

// Rows [0, kRows) of kD halves into shared memory (row stride kD + 8) with cp.async; zeros
// past `valid` rows and on rows whose `lse` (global, may be null) is -inf. `vec16`: every
// source row is 16-byte aligned.
template <int kRows, int kD>
__device__ __forceinline__ void stage_rows(uint16_t* dst, const uint16_t* src, int64_t valid, const float* lse,
                                           bool vec16) {
  constexpr int kStride = kD + 8;
  if (vec16) {
    constexpr int kChunks = kD / 8;
    for (int i = threadIdx.x; i < kRows * kChunks; i += kThreads) {
      const int r = i / kChunks, c = 8 * (i % kChunks);
      const bool keep = r < valid && (lse == nullptr || lse[r] != -INFINITY);
      cp_async16(dst + r * kStride + c, keep ? src + static_cast<int64_t>(r) * kD + c : src, keep);
    }
  } else {
    constexpr int kChunks = kD / 2;
    for (int i = threadIdx.x; i < kRows * kChunks; i += kThreads) {
      const int r = i / kChunks, c = 2 * (i % kChunks);
      const bool keep = r < valid && (lse == nullptr || lse[r] != -INFINITY);
      cp_async4(dst + r * kStride + c, keep ? src + static_cast<int64_t>(r) * kD + c : src, keep);
    }
  }
}

// The A fragment of rows [r0, r0 + 16) x columns [c0, c0 + 16) of a row-major tile.
__device__ __forceinline__ void load_a(uint32_t (&a)[4], const uint16_t* tile, int stride, int r0, int c0, int lane) {
  const int m = lane / 8;
  mma16::ldmatrix_x4(a, tile + (r0 + 8 * (m % 2) + lane % 8) * stride + c0 + 8 * (m / 2));
}

// B fragments of the 8-column tiles n0 and n0 + 8, depth [k0, k0 + 16), from a tile stored
// [n][k] (B's columns as rows): b[0..1] for n0, b[2..3] for n0 + 8.
__device__ __forceinline__ void load_b_nk(uint32_t (&b)[4], const uint16_t* tile, int stride, int n0, int k0,
                                          int lane) {
  const int m = lane / 8;
  mma16::ldmatrix_x4(b, tile + (n0 + 8 * (m / 2) + lane % 8) * stride + k0 + 8 * (m % 2));
}

// The same from a tile stored [k][n] (B row-major), through the transposing ldmatrix.
__device__ __forceinline__ void load_b_kn(uint32_t (&b)[4], const uint16_t* tile, int stride, int k0, int n0,
                                          int lane) {
  const int m = lane / 8;
  mma16::ldmatrix_x4_trans(b, tile + (k0 + 8 * (m % 2) + lane % 8) * stride + n0 + 8 * (m / 2));
}

template <int kBf16>
__device__ __forceinline__ void mma_pair(float (&d0)[4], float (&d1)[4], const uint32_t (&a)[4],
                                         const uint32_t (&b)[4]) {
  const uint32_t b0[2] = {b[0], b[1]}, b1[2] = {b[2], b[3]};
  mma<kBf16>(d0, a, b0);
  mma<kBf16>(d1, a, b1);
}

// acc (16 x kTiles * 8) = A (rows r0.. of `a_tile`) times the transpose of the kTiles * 8 rows
// of `b_tile`, both [row][kD].
template <int kBf16, int kD, int kTiles>
__device__ __forceinline__ void scores(float (&acc)[kTiles][4], const uint16_t* a_tile, int r0,
                                       const uint16_t* b_tile, int lane) {
  constexpr int kStride = kD + 8;
#pragma unroll
  for (int n = 0; n < kTiles; ++n) acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.0f;
#pragma unroll
  for (int st = 0; st < kD / 16; ++st) {
    uint32_t a[4];
    load_a(a, a_tile, kStride, r0, 16 * st, lane);
#pragma unroll
    for (int n = 0; n < kTiles; n += 2) {
      uint32_t b[4];
      load_b_nk(b, b_tile, kStride, 8 * n, 16 * st, lane);
      mma_pair<kBf16>(acc[n], acc[n + 1], a, b);
    }
  }
}

// out (16 x kD) += X (16 x kTiles * 8, score fragments rounded to the input type) times the
// kTiles * 8 rows of `tile` ([row][kD]): fragments 2 kk and 2 kk + 1 of X are the A fragment of
// the 16-deep step kk.
template <int kBf16, int kD, int kTiles>
__device__ __forceinline__ void add_product(float (&out)[kD / 8][4], const float (&x)[kTiles][4],
                                            const uint16_t* tile, int lane) {
  constexpr int kStride = kD + 8;
#pragma unroll
  for (int kk = 0; kk < kTiles / 2; ++kk) {
    const uint32_t a[4] = {pack2<kBf16>(x[2 * kk][0], x[2 * kk][1]), pack2<kBf16>(x[2 * kk][2], x[2 * kk][3]),
                           pack2<kBf16>(x[2 * kk + 1][0], x[2 * kk + 1][1]),
                           pack2<kBf16>(x[2 * kk + 1][2], x[2 * kk + 1][3])};
#pragma unroll
    for (int j = 0; j < kD / 8; j += 2) {
      uint32_t b[4];
      load_b_kn(b, tile, kStride, 16 * kk, 8 * j, lane);
      mma_pair<kBf16>(out[j], out[j + 1], a, b);
    }
  }
}

template <int kD>
__device__ __forceinline__ void zero(float (&acc)[kD / 8][4]) {
#pragma unroll
  for (int j = 0; j < kD / 8; ++j) acc[j][0] = acc[j][1] = acc[j][2] = acc[j][3] = 0.0f;
}

// Rows g and g + 8 of a warp's 16 x kD fragments, times `mul`, into rows [row0, row0 + 16) of
// `dst` (stride kD), rows past `rows` skipped.
template <int kBf16, int kD>
__device__ __forceinline__ void store_rows(uint16_t* dst, const float (&acc)[kD / 8][4], int64_t row0, int64_t rows,
                                           float mul, int lane) {
  const int g = lane / 4, t = lane % 4;
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int64_t row = row0 + g + 8 * h;
    if (row >= rows) continue;
    uint16_t* p = dst + row * kD + 2 * t;
#pragma unroll
    for (int j = 0; j < kD / 8; ++j) {
      *reinterpret_cast<uint32_t*>(p + 8 * j) = pack2<kBf16>(acc[j][2 * h] * mul, acc[j][2 * h + 1] * mul);
    }
  }
}

// ---- delta = rowsum(gout * out) ------------------------------------------------------------

template <int kBf16>
__global__ void __launch_bounds__(kThreads)
delta_rows16(const uint16_t* __restrict__ out, const uint16_t* __restrict__ gout, const float* __restrict__ lse,
             float* __restrict__ delta, int64_t rows, int n) {
  const int warps = blockDim.x / kWarp;
  const int lane = threadIdx.x % kWarp;
  for (int64_t r = static_cast<int64_t>(blockIdx.x) * warps + threadIdx.x / kWarp; r < rows;
       r += static_cast<int64_t>(gridDim.x) * warps) {
    const bool dead = lse[r] == -INFINITY;
    float acc = 0.0f;
    for (int d = 2 * lane; !dead && d < n; d += 2 * kWarp) {
      const uint32_t o = ld32(out + r * n + d), go = ld32(gout + r * n + d);
      acc = fmaf(mma16::to_float<kBf16>(static_cast<uint16_t>(o & 0xffffu)),
                 mma16::to_float<kBf16>(static_cast<uint16_t>(go & 0xffffu)), acc);
      acc = fmaf(mma16::to_float<kBf16>(static_cast<uint16_t>(o >> 16)),
                 mma16::to_float<kBf16>(static_cast<uint16_t>(go >> 16)), acc);
    }
    acc = warp_sum(acc);
    if (lane == 0) delta[r] = acc;
  }
}

// lse (base 2) and delta of rows [q0, q0 + kRows) into shared memory; -inf and 0 past L.
template <int kRows>
__device__ __forceinline__ void stage_row_stats(float* lse_s, float* delta_s, const float* lse, const float* delta,
                                                int64_t valid) {
  for (int r = threadIdx.x; r < kRows; r += kThreads) {
    lse_s[r] = r < valid ? lse[r] * kLog2e : -INFINITY;
    delta_s[r] = r < valid ? delta[r] : 0.0f;
  }
}

// ---- gk, gv -----------------------------------------------------------------------------------

// Query tile q0 of batch entry b into stage `st`: Q and gout rows (cp.async, zeros on dead
// rows and past L), lse (base 2) and delta.
template <int kD>
__device__ __forceinline__ void stage_queries(uint16_t* qs, uint16_t* gs, float* lse_s, float* delta_s,
                                              const uint16_t* q, const uint16_t* gout, const float* lse,
                                              const float* delta, int64_t b, int64_t q0, int64_t L, bool vec16) {
  constexpr int kBq = Bwd<kD>::kInner;
  const float* lse_rows = lse + b * L + q0;
  stage_rows<kBq, kD>(qs, q + (b * L + q0) * kD, L - q0, lse_rows, vec16);
  stage_rows<kBq, kD>(gs, gout + (b * L + q0) * kD, L - q0, lse_rows, vec16);
  stage_row_stats<kBq>(lse_s, delta_s, lse_rows, delta + b * L + q0, L - q0);
}

template <int kBf16, int kD>
__global__ void __launch_bounds__(kThreads, 1)
gkv_mma(const uint16_t* __restrict__ q, const uint16_t* __restrict__ k, const uint16_t* __restrict__ v,
        const uint16_t* __restrict__ gout, const float* __restrict__ lse, const float* __restrict__ delta, Masking mk,
        uint16_t* __restrict__ gk, uint16_t* __restrict__ gv, int64_t batch, int64_t L, int64_t S, float scale,
        float scale2, bool vec16) {
  using T = Bwd<kD>;
  constexpr int kBq = T::kInner;
  extern __shared__ float4 smem4[];
  uint16_t* ks = reinterpret_cast<uint16_t*>(smem4);  // [64][kStride]
  uint16_t* vs = ks + T::kResident;                    // [64][kStride]
  uint16_t* qs0 = vs + T::kResident;                   // 2 stages of [kBq][kStride]
  uint16_t* gs0 = qs0 + 2 * T::kStreamed;              // 2 stages of [kBq][kStride]: gout
  float* lse_s0 = reinterpret_cast<float*>(gs0 + 2 * T::kStreamed);  // 2 stages of [kBq], base 2
  float* delta_s0 = lse_s0 + 2 * kBq;                                // 2 stages of [kBq]
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, g = lane / 4, t = lane % 4;
  const int64_t tiles = (S + kRowsPerBlock - 1) / kRowsPerBlock;

  for (int64_t work = blockIdx.x; work < batch * tiles; work += gridDim.x) {
    const int64_t b = work / tiles;
    const int64_t k0 = (work % tiles) * kRowsPerBlock;  // first keys first: under is_causal they see the most rows
    // Under is_causal, queries before k0 see none of these keys.
    const int64_t first = mk.causal ? (k0 / kBq) * kBq : 0;
    __syncthreads();  // the previous item's readers of shared memory are done
    stage_rows<kRowsPerBlock, kD>(ks, k + (b * S + k0) * kD, S - k0, nullptr, vec16);
    stage_rows<kRowsPerBlock, kD>(vs, v + (b * S + k0) * kD, S - k0, nullptr, vec16);
    if (first < L) {
      stage_queries<kD>(qs0, gs0, lse_s0, delta_s0, q, gout, lse, delta, b, first, L, vec16);
    }
    cp_async_commit();  // group: K, V and the first query tile

    float dk[T::kOutTiles][4], dv[T::kOutTiles][4];
    zero<kD>(dk);
    zero<kD>(dv);
    const int64_t keys[2] = {k0 + warp * 16 + g, k0 + warp * 16 + g + 8};
    int st = 0;
    for (int64_t q0 = first; q0 < L; q0 += kBq, st ^= 1) {
      // Two stages: the next tile's copies fly while this one is computed on. Its stage was
      // last read in the previous iteration, which ended with a barrier.
      if (q0 + kBq < L) {
        stage_queries<kD>(qs0 + (st ^ 1) * T::kStreamed, gs0 + (st ^ 1) * T::kStreamed, lse_s0 + (st ^ 1) * kBq,
                          delta_s0 + (st ^ 1) * kBq, q, gout, lse, delta, b, q0 + kBq, L, vec16);
      }
      cp_async_commit();  // (possibly empty: one group per iteration keeps the count simple)
      cp_async_wait<1>();  // everything but the newest group: this tile (and K, V) have landed
      __syncthreads();
      const uint16_t* qs = qs0 + st * T::kStreamed;
      const uint16_t* gs = gs0 + st * T::kStreamed;
      const float* lse_s = lse_s0 + st * kBq;
      const float* delta_s = delta_s0 + st * kBq;

      // p[n][e]: key keys[e / 2], query q0 + 8 n + 2 t + e % 2.
      float p[T::kTiles][4];
      scores<kBf16, kD, T::kTiles>(p, ks, warp * 16, qs, lane);
#pragma unroll
      for (int n = 0; n < T::kTiles; ++n) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int r = 8 * n + 2 * t + e % 2;
          const float s2 = mk.apply(p[n][e] * scale2, b, q0 + r, keys[e / 2], kLog2e);
          const float lse2 = lse_s[r];
          p[n][e] = lse2 == -INFINITY ? 0.0f : exp2f(s2 - lse2);
        }
      }
      add_product<kBf16, kD, T::kTiles>(dv, p, gs, lane);
      // ds = p * (dP - delta), dP^T = V gout^T.
      float ds[T::kTiles][4];
      scores<kBf16, kD, T::kTiles>(ds, vs, warp * 16, gs, lane);
#pragma unroll
      for (int n = 0; n < T::kTiles; ++n) {
#pragma unroll
        for (int e = 0; e < 4; ++e) ds[n][e] = p[n][e] * (ds[n][e] - delta_s[8 * n + 2 * t + e % 2]);
      }
      add_product<kBf16, kD, T::kTiles>(dk, ds, qs, lane);
      __syncthreads();  // readers of stage st are done before the next iteration's copies into it
    }
    cp_async_wait<0>();  // with no query tile, the K / V copies are still to be waited for
    store_rows<kBf16, kD>(gk + b * S * kD, dk, k0 + warp * 16, S, scale, lane);
    store_rows<kBf16, kD>(gv + b * S * kD, dv, k0 + warp * 16, S, 1.0f, lane);
  }
}

// ---- gq -----------------------------------------------------------------------------------------

template <int kBf16, int kD>
__global__ void __launch_bounds__(kThreads, 1)
gq_mma(const uint16_t* __restrict__ q, const uint16_t* __restrict__ k, const uint16_t* __restrict__ v,
       const uint16_t* __restrict__ gout, const float* __restrict__ lse, const float* __restrict__ delta, Masking mk,
       uint16_t* __restrict__ gq, int64_t batch, int64_t L, int64_t S, float scale, float scale2, bool vec16) {
  using T = Bwd<kD>;
  constexpr int kBk = T::kInner;
  extern __shared__ float4 smem4[];
  uint16_t* qs = reinterpret_cast<uint16_t*>(smem4);  // [64][kStride]
  uint16_t* gs = qs + T::kResident;                    // [64][kStride]: gout
  uint16_t* ks0 = gs + T::kResident;                   // 2 stages of [kBk][kStride]
  uint16_t* vs0 = ks0 + 2 * T::kStreamed;              // 2 stages of [kBk][kStride]
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, g = lane / 4, t = lane % 4;
  const int64_t tiles = (L + kRowsPerBlock - 1) / kRowsPerBlock;

  for (int64_t work = blockIdx.x; work < batch * tiles; work += gridDim.x) {
    const int64_t b = work / tiles;
    // Last tiles first: under is_causal they see the most keys.
    const int64_t q0 = (tiles - 1 - work % tiles) * kRowsPerBlock;
    const float* lse_rows = lse + b * L + q0;
    const int64_t kv_end = mk.causal ? (S < q0 + kRowsPerBlock ? S : q0 + kRowsPerBlock) : S;
    __syncthreads();  // the previous item's readers of shared memory are done
    stage_rows<kRowsPerBlock, kD>(qs, q + (b * L + q0) * kD, L - q0, lse_rows, vec16);
    stage_rows<kRowsPerBlock, kD>(gs, gout + (b * L + q0) * kD, L - q0, lse_rows, vec16);
    if (kv_end > 0) {
      stage_rows<kBk, kD>(ks0, k + b * S * kD, S, nullptr, vec16);
      stage_rows<kBk, kD>(vs0, v + b * S * kD, S, nullptr, vec16);
    }
    cp_async_commit();  // group: Q, gout and the first key tile

    const int64_t rows[2] = {q0 + warp * 16 + g, q0 + warp * 16 + g + 8};
    float lse2[2], dl[2];
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const bool in = rows[h] < L;
      lse2[h] = in ? lse[b * L + rows[h]] * kLog2e : -INFINITY;
      dl[h] = in ? delta[b * L + rows[h]] : 0.0f;
    }
    float dq[T::kOutTiles][4];
    zero<kD>(dq);
    int st = 0;
    for (int64_t k0 = 0; k0 < kv_end; k0 += kBk, st ^= 1) {
      // Two stages, as in gkv_mma: the next key tile's copies fly during this one.
      if (k0 + kBk < kv_end) {
        stage_rows<kBk, kD>(ks0 + (st ^ 1) * T::kStreamed, k + (b * S + k0 + kBk) * kD, S - k0 - kBk, nullptr,
                            vec16);
        stage_rows<kBk, kD>(vs0 + (st ^ 1) * T::kStreamed, v + (b * S + k0 + kBk) * kD, S - k0 - kBk, nullptr,
                            vec16);
      }
      cp_async_commit();
      cp_async_wait<1>();  // this key tile (and Q, gout) have landed
      __syncthreads();
      const uint16_t* ks = ks0 + st * T::kStreamed;
      const uint16_t* vs = vs0 + st * T::kStreamed;

      // p[n][e]: query rows[e / 2], key k0 + 8 n + 2 t + e % 2.
      float p[T::kTiles][4];
      scores<kBf16, kD, T::kTiles>(p, qs, warp * 16, ks, lane);
#pragma unroll
      for (int n = 0; n < T::kTiles; ++n) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const float s2 = mk.apply(p[n][e] * scale2, b, rows[e / 2], k0 + 8 * n + 2 * t + e % 2, kLog2e);
          p[n][e] = lse2[e / 2] == -INFINITY ? 0.0f : exp2f(s2 - lse2[e / 2]);
        }
      }
      float ds[T::kTiles][4];
      scores<kBf16, kD, T::kTiles>(ds, gs, warp * 16, vs, lane);
#pragma unroll
      for (int n = 0; n < T::kTiles; ++n) {
#pragma unroll
        for (int e = 0; e < 4; ++e) ds[n][e] = p[n][e] * (ds[n][e] - dl[e / 2]);
      }
      add_product<kBf16, kD, T::kTiles>(dq, ds, ks, lane);
      __syncthreads();  // readers of stage st are done before the next iteration's copies into it
    }
    cp_async_wait<0>();  // with no key tile, the Q / gout copies are still to be waited for
    store_rows<kBf16, kD>(gq + b * L * kD, dq, q0 + warp * 16, L, scale, lane);
  }
}

// ---- launch -------------------------------------------------------------------------------------

inline unsigned work_grid(int64_t items) {
  const int64_t cap = int64_t{1} << 30;
  return static_cast<unsigned>(items < cap ? items : cap);
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

template <int kBf16, int kD>
int launch(const TgSdpa& a, cudaStream_t s) {
  const uint16_t* q = static_cast<const uint16_t*>(a.q);
  const uint16_t* k = static_cast<const uint16_t*>(a.k);
  const uint16_t* v = static_cast<const uint16_t*>(a.v);
  const uint16_t* gout = static_cast<const uint16_t*>(a.gout);
  const bool vec16 = aligned16(q) && aligned16(k) && aligned16(v) && aligned16(gout);
  const float scale2 = a.scale * kLog2e;
  const Masking mk = make_masking(a);
  const int64_t rows = a.batch * a.q_len;
  if (rows > 0) {
    delta_rows16<kBf16><<<grid_for(rows, kThreads / kWarp), kThreads, 0, s>>>(
        static_cast<const uint16_t*>(a.out), gout, a.lse, a.delta, rows, kD);
    int err = static_cast<int>(cudaGetLastError());
    if (err != 0) return err;
  }
  const size_t smem = Bwd<kD>::kSmem;
  const int64_t kv_items = a.batch * ((a.kv_len + kRowsPerBlock - 1) / kRowsPerBlock);
  if (kv_items > 0) {  // also with L == 0: gk and gv are then zeros
    int err = static_cast<int>(cudaFuncSetAttribute(gkv_mma<kBf16, kD>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                    static_cast<int>(smem)));
    if (err != 0) return err;
    gkv_mma<kBf16, kD><<<work_grid(kv_items), kThreads, smem, s>>>(
        q, k, v, gout, a.lse, a.delta, mk, static_cast<uint16_t*>(a.gk), static_cast<uint16_t*>(a.gv), a.batch,
        a.q_len, a.kv_len, a.scale, scale2, vec16);
    err = static_cast<int>(cudaGetLastError());
    if (err != 0) return err;
  }
  const int64_t q_items = a.batch * ((a.q_len + kRowsPerBlock - 1) / kRowsPerBlock);
  if (q_items > 0) {
    int err = static_cast<int>(cudaFuncSetAttribute(gq_mma<kBf16, kD>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                    static_cast<int>(smem)));
    if (err != 0) return err;
    gq_mma<kBf16, kD><<<work_grid(q_items), kThreads, smem, s>>>(q, k, v, gout, a.lse, a.delta, mk,
                                                                 static_cast<uint16_t*>(a.gq), a.batch, a.q_len,
                                                                 a.kv_len, a.scale, scale2, vec16);
  }
  return static_cast<int>(cudaGetLastError());
}

}  // namespace

int sdpa_backward_v3(const TgSdpa& a, cudaStream_t s) {
  const bool bf16 = a.dtype == TG_DTYPE_BF16;
  if (a.head_dim == 64) return bf16 ? launch<1, 64>(a, s) : launch<0, 64>(a, s);
  return bf16 ? launch<1, 128>(a, s) : launch<0, 128>(a, s);
}

}  // namespace attn
}  // namespace cuda
}  // namespace tg
