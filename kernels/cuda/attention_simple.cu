// Scaled dot-product attention v1, float32: the simple kernels the tiled ones (v2) are checked
// against. One warp per row, lanes across the head dim (d = lane + 32 t, t < 4, so E and Ev up
// to 128), each score a warp-wide dot product, natural-log softmax arithmetic.
//   forward: a warp per query row walks the keys with an online softmax (running max m,
//            running sum l of exp(score - m), output accumulator rescaled when m grows);
//   gq:      a warp per query row: p = exp(score - lse), ds = p * (gout . v - delta),
//            gq += ds * k;
//   gk, gv:  a warp per key row: gv += p * gout, gk += ds * q, over the query rows.
// Every value is reduced in one fixed order, so results are bit-identical run to run.
#include <cuda_runtime.h>
#include <math.h>

#include "attention.cuh"
#include "tg_cuda.h"
#include "tg_cuda_device.h"

namespace tg {
namespace cuda {
namespace attn {
namespace {

constexpr int kSlots = TG_SDPA_MAX_HEAD_DIM / kWarp;  // head-dim elements per lane
constexpr int kBlock = 128;                            // 4 warps, 4 rows per block

// row[lane + 32 t] for t < kSlots, 0 past n.
__device__ __forceinline__ void load_row(float (&dst)[kSlots], const float* row, int n, int lane) {
#pragma unroll
  for (int t = 0; t < kSlots; ++t) {
    const int d = lane + kWarp * t;
    dst[t] = d < n ? row[d] : 0.0f;
  }
}

// sum_d a[d] * row[d] over the warp (every lane gets the same bits: the xor butterfly adds
// the same pairs in every lane).
__device__ __forceinline__ float warp_dot(const float (&a)[kSlots], const float* row, int n, int lane) {
  float part = 0.0f;
#pragma unroll
  for (int t = 0; t < kSlots; ++t) {
    const int d = lane + kWarp * t;
    if (d < n) part = fmaf(a[t], row[d], part);
  }
  return warp_sum(part);
}

__device__ __forceinline__ void store_row(float* row, const float (&src)[kSlots], float factor, int n, int lane) {
#pragma unroll
  for (int t = 0; t < kSlots; ++t) {
    const int d = lane + kWarp * t;
    if (d < n) row[d] = src[t] * factor;
  }
}

struct WarpRows {
  int lane;
  int64_t first, step;
  __device__ WarpRows() {
    const int warps = blockDim.x / kWarp;
    lane = threadIdx.x % kWarp;
    first = static_cast<int64_t>(blockIdx.x) * warps + threadIdx.x / kWarp;
    step = static_cast<int64_t>(gridDim.x) * warps;
  }
};

__global__ void __launch_bounds__(kBlock)
forward_rows(const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v, Masking mk,
             float* __restrict__ out, float* __restrict__ lse, int64_t batch, int64_t L, int64_t S, int E, int Ev,
             float scale) {
  const WarpRows w;
  for (int64_t r = w.first; r < batch * L; r += w.step) {
    const int64_t b = r / L, row = r % L;
    const float* kb = k + b * S * E;
    const float* vb = v + b * S * Ev;
    float qv[kSlots], acc[kSlots];
    load_row(qv, q + r * E, E, w.lane);
#pragma unroll
    for (int t = 0; t < kSlots; ++t) acc[t] = 0.0f;
    float m = -INFINITY, l = 0.0f;
    for (int64_t c = 0; c < S; ++c) {
      const float score = mk.apply(warp_dot(qv, kb + c * E, E, w.lane) * scale, b, row, c, 1.0f);
      if (score == -INFINITY) continue;  // the same in every lane
      const float m_new = fmaxf(m, score);
      const float alpha = expf(m - m_new);  // 0 for the first allowed key (m == -inf)
      const float p = expf(score - m_new);  // a NaN score makes l and the row NaN
      l = l * alpha + p;
      const float* vc = vb + c * Ev;
#pragma unroll
      for (int t = 0; t < kSlots; ++t) {
        const int d = w.lane + kWarp * t;
        acc[t] = acc[t] * alpha + (d < Ev ? p * vc[d] : 0.0f);
      }
      m = m_new;
    }
    const bool dead = l == 0.0f;  // no key allowed: NaN outputs, lse -inf
    store_row(out + r * Ev, acc, dead ? 0.0f : 1.0f / l, Ev, w.lane);  // no key: 0, as PyTorch
    if (w.lane == 0) lse[r] = dead ? -INFINITY : m + logf(l);
  }
}

__global__ void __launch_bounds__(kBlock)
gq_rows(const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v,
        const float* __restrict__ gout, const float* __restrict__ lse, const float* __restrict__ delta, Masking mk,
        float* __restrict__ gq, int64_t batch, int64_t L, int64_t S, int E, int Ev, float scale) {
  const WarpRows w;
  for (int64_t r = w.first; r < batch * L; r += w.step) {
    const int64_t b = r / L, row = r % L;
    const float* kb = k + b * S * E;
    const float* vb = v + b * S * Ev;
    const float lse_r = lse[r];
    const float delta_r = delta[r];
    float qv[kSlots], gv[kSlots], acc[kSlots];
    load_row(qv, q + r * E, E, w.lane);
    load_row(gv, gout + r * Ev, Ev, w.lane);
#pragma unroll
    for (int t = 0; t < kSlots; ++t) acc[t] = 0.0f;
    for (int64_t c = 0; lse_r != -INFINITY && c < S; ++c) {  // a dead row's gq is 0
      const float score = mk.apply(warp_dot(qv, kb + c * E, E, w.lane) * scale, b, row, c, 1.0f);
      if (score == -INFINITY) continue;
      const float p = expf(score - lse_r);
      const float ds = p * (warp_dot(gv, vb + c * Ev, Ev, w.lane) - delta_r);
      const float* kc = kb + c * E;
#pragma unroll
      for (int t = 0; t < kSlots; ++t) {
        const int d = w.lane + kWarp * t;
        if (d < E) acc[t] = fmaf(ds, kc[d], acc[t]);
      }
    }
    store_row(gq + r * E, acc, scale, E, w.lane);
  }
}

__global__ void __launch_bounds__(kBlock)
gkv_rows(const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v,
         const float* __restrict__ gout, const float* __restrict__ lse, const float* __restrict__ delta, Masking mk,
         float* __restrict__ gk, float* __restrict__ gvout, int64_t batch, int64_t L, int64_t S, int E, int Ev,
         float scale) {
  const WarpRows w;
  for (int64_t r = w.first; r < batch * S; r += w.step) {
    const int64_t b = r / S, col = r % S;
    float kv[kSlots], vv[kSlots], dk[kSlots], dv[kSlots];
    load_row(kv, k + r * E, E, w.lane);
    load_row(vv, v + r * Ev, Ev, w.lane);
#pragma unroll
    for (int t = 0; t < kSlots; ++t) dk[t] = dv[t] = 0.0f;
    // Under is_causal only the rows at or below this key's index see it.
    for (int64_t row = mk.causal ? col : 0; row < L; ++row) {
      const int64_t qr = b * L + row;
      const float lse_r = lse[qr];
      if (lse_r == -INFINITY) continue;  // dead row: contributes nothing
      const float score = mk.apply(warp_dot(kv, q + qr * E, E, w.lane) * scale, b, row, col, 1.0f);
      if (score == -INFINITY) continue;
      const float p = expf(score - lse_r);
      const float* gr = gout + qr * Ev;
      const float ds = p * (warp_dot(vv, gr, Ev, w.lane) - delta[qr]);
      const float* qrow = q + qr * E;
#pragma unroll
      for (int t = 0; t < kSlots; ++t) {
        const int d = w.lane + kWarp * t;
        if (d < Ev) dv[t] = fmaf(p, gr[d], dv[t]);
        if (d < E) dk[t] = fmaf(ds, qrow[d], dk[t]);
      }
    }
    store_row(gk + r * E, dk, scale, E, w.lane);
    store_row(gvout + r * Ev, dv, 1.0f, Ev, w.lane);
  }
}

}  // namespace

int sdpa_forward_v1(const TgSdpa& a, cudaStream_t s) {
  const int64_t rows = a.batch * a.q_len;
  if (rows == 0) return 0;
  forward_rows<<<grid_for(rows, kBlock / kWarp), kBlock, 0, s>>>(
      static_cast<const float*>(a.q), static_cast<const float*>(a.k), static_cast<const float*>(a.v),
      make_masking(a), static_cast<float*>(a.out), a.lse, a.batch, a.q_len, a.kv_len,
      static_cast<int>(a.head_dim), static_cast<int>(a.v_dim), a.scale);
  return static_cast<int>(cudaGetLastError());
}

int sdpa_backward_v1(const TgSdpa& a, cudaStream_t s) {
  const float* q = static_cast<const float*>(a.q);
  const float* k = static_cast<const float*>(a.k);
  const float* v = static_cast<const float*>(a.v);
  const float* gout = static_cast<const float*>(a.gout);
  const int E = static_cast<int>(a.head_dim), Ev = static_cast<int>(a.v_dim);
  const int64_t q_rows = a.batch * a.q_len, kv_rows = a.batch * a.kv_len;
  if (q_rows > 0) {
    gq_rows<<<grid_for(q_rows, kBlock / kWarp), kBlock, 0, s>>>(q, k, v, gout, a.lse, a.delta, make_masking(a),
                                                                static_cast<float*>(a.gq), a.batch, a.q_len,
                                                                a.kv_len, E, Ev, a.scale);
  }
  if (kv_rows > 0) {  // also with L == 0: gk and gv are then zeros
    gkv_rows<<<grid_for(kv_rows, kBlock / kWarp), kBlock, 0, s>>>(
        q, k, v, gout, a.lse, a.delta, make_masking(a), static_cast<float*>(a.gk), static_cast<float*>(a.gv),
        a.batch, a.q_len, a.kv_len, E, Ev, a.scale);
  }
  return static_cast<int>(cudaGetLastError());
}

}  // namespace attn
}  // namespace cuda
}  // namespace tg
