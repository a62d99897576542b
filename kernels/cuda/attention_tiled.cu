// Scaled dot-product attention v2, float32 on the CUDA cores (FlashAttention-2's scheme): the
// L x S scores never leave the chip. Head dims are padded with zeros to 64 or 128 (template
// kD for E, kDv for Ev), so any E, Ev <= 128 runs here; 64 and 128 waste nothing.
//
// 128 threads per block seen as 16 x 8: ty = tid / 8 picks rows, tx = tid % 8 columns, so the
// 8 threads sharing rows are 8 consecutive lanes of one warp and their row reductions are
// 3 shuffles. Scores are kept in base-2 units (scale * log2(e) folded in once), exp2f.
//
// forward (a block per (batch, 64-query tile), last tiles first): the Q tile stays in shared
//   memory; for each 64-key tile, K and V are staged, each thread computes 4 rows x 8 keys
//   of scores (rows ty + 16 i, keys tx + 8 j), masks them, updates its rows' running max and
//   sum (online softmax), and adds P @ V into 4 rows x Ev/8 output columns held in
//   registers; P values are passed between the row's 8 threads by shuffles.
// backward, after delta = rowsum(gout * out) (attention.cu), two kernels, no atomics:
//   gk, gv: a block per (batch, 32-key tile); gk and gv of its keys accumulate in registers
//           (2 keys x E/8 and Ev/8 columns per thread) over the 64-query tiles that can see
//           them: P^T = exp2(S^T - lse), gv += P^T gout, dP^T = V gout^T,
//           dS^T = P^T (dP^T - delta), gk += dS^T Q.
//   gq:     a block per (batch, 64-query tile); gq (4 rows x E/8 columns per thread) over
//           the 32-key tiles: P, dP = gout V^T, dS, gq += dS K.
//   Splitting gq into its own pass recomputes Q K^T and gout V^T once more (7 tile products
//   instead of FlashAttention-2's 5) but needs no atomics or gq scratch, and every sum runs
//   in a fixed order: results are bit-identical run to run.
//
// Shared memory: arrays read by a whole row group at one address (broadcast) are unpadded;
// arrays read at 8 different rows by the 8 lanes of a row group carry 4 floats of padding
// per row, so the 8 float4 reads of one quarter-warp fall in distinct banks. Every block
// uses at most 101 KB (the opt-in limit of every sm_80+ GPU is at least 99 KB).
#include <cuda_runtime.h>
#include <math.h>

#include "attention.cuh"
#include "tg_cuda.h"
#include "tg_cuda_device.h"

namespace tg {
namespace cuda {
namespace attn {
namespace {

constexpr int kThreads = 128;
constexpr int kTy = 16;  // row groups
constexpr int kTx = 8;   // threads per row group
constexpr int kPad = 4;  // floats of padding on rows read at 8 different rows
constexpr unsigned kFull = 0xffffffffu;

static_assert(kTy * kTx == kThreads, "16 x 8 threads");

// Rows [0, rows) x columns [0, kWidth) of a tile in shared memory (row stride kStride) from
// global rows `src_stride` apart, zero past `valid_rows`, past `width` columns, and on rows
// where `dead_lse` (global, may be null) is -inf.
template <int kRows, int kWidth, int kStride>
__device__ __forceinline__ void load_tile(float* dst, const float* src, int64_t valid_rows, int width,
                                          int64_t src_stride, const float* dead_lse) {
  for (int i = threadIdx.x; i < kRows * kWidth; i += kThreads) {
    const int r = i / kWidth, d = i % kWidth;
    const bool keep = r < valid_rows && d < width && (dead_lse == nullptr || dead_lse[r] != -INFINITY);
    dst[r * kStride + d] = keep ? src[r * src_stride + d] : 0.0f;
  }
}

__device__ __forceinline__ float4 ld4(const float* p) { return *reinterpret_cast<const float4*>(p); }

__device__ __forceinline__ float dot4(float4 a, float4 b, float acc) {
  acc = fmaf(a.x, b.x, acc);
  acc = fmaf(a.y, b.y, acc);
  acc = fmaf(a.z, b.z, acc);
  return fmaf(a.w, b.w, acc);
}

__device__ __forceinline__ void axpy4(float* acc, float p, float4 x) {
  acc[0] = fmaf(p, x.x, acc[0]);
  acc[1] = fmaf(p, x.y, acc[1]);
  acc[2] = fmaf(p, x.z, acc[2]);
  acc[3] = fmaf(p, x.w, acc[3]);
}

// Reductions over the 8 lanes of a row group (lanes differing in their low 3 bits).
__device__ __forceinline__ float group_max(float v) {
  v = fmaxf(v, __shfl_xor_sync(kFull, v, 4));
  v = fmaxf(v, __shfl_xor_sync(kFull, v, 2));
  return fmaxf(v, __shfl_xor_sync(kFull, v, 1));
}

__device__ __forceinline__ float group_sum(float v) {
  v += __shfl_xor_sync(kFull, v, 4);
  v += __shfl_xor_sync(kFull, v, 2);
  return v + __shfl_xor_sync(kFull, v, 1);
}

// acc[i][:] += sum over the tile's kTx * kCols columns c of x[i][c] * rows[c][32 g + 4 tx + e],
// where x[i][j] of column c = src + kTx * j lives in lane src of the row group: the
// (P @ V, dS @ K, P^T @ gout, dS^T @ Q) product of every kernel here.
template <int kRowsT, int kCols, int kOut, int kStride>
__device__ __forceinline__ void add_product(float (&acc)[kRowsT][kOut], const float (&x)[kRowsT][kCols],
                                            const float* rows, int lane, int tx) {
  const int base = lane & ~(kTx - 1);
#pragma unroll
  for (int j = 0; j < kCols; ++j) {
#pragma unroll
    for (int src = 0; src < kTx; ++src) {
      const int c = src + kTx * j;
      float xs[kRowsT];
#pragma unroll
      for (int i = 0; i < kRowsT; ++i) xs[i] = __shfl_sync(kFull, x[i][j], base + src);
#pragma unroll
      for (int g = 0; g < kOut / 4; ++g) {
        const float4 r = ld4(rows + c * kStride + 32 * g + 4 * tx);
#pragma unroll
        for (int i = 0; i < kRowsT; ++i) axpy4(&acc[i][4 * g], xs[i], r);
      }
    }
  }
}

// s[i][j] = a[ai(i)] . b[bj(j)] over kDepth: a rows ty + kTy * i (stride kAStride, the same
// row in the whole row group: a broadcast), b rows tx + kTx * j (stride kBStride, padded).
template <int kRowsT, int kCols, int kDepth, int kAStride, int kBStride>
__device__ __forceinline__ void tile_scores(float (&s)[kRowsT][kCols], const float* a, const float* b, int ty,
                                            int tx) {
#pragma unroll
  for (int i = 0; i < kRowsT; ++i)
#pragma unroll
    for (int j = 0; j < kCols; ++j) s[i][j] = 0.0f;
#pragma unroll 4
  for (int d = 0; d < kDepth; d += 4) {
    float4 av[kRowsT];
#pragma unroll
    for (int i = 0; i < kRowsT; ++i) av[i] = ld4(a + (ty + kTy * i) * kAStride + d);
#pragma unroll
    for (int j = 0; j < kCols; ++j) {
      const float4 bv = ld4(b + (tx + kTx * j) * kBStride + d);
#pragma unroll
      for (int i = 0; i < kRowsT; ++i) s[i][j] = dot4(av[i], bv, s[i][j]);
    }
  }
}

// Work items are (batch, tile) pairs walked by a grid-stride loop.
inline unsigned work_grid(int64_t items) {
  const int64_t cap = int64_t{1} << 30;
  return static_cast<unsigned>(items < cap ? items : cap);
}

template <typename Kernel>
int launch_prep(Kernel kernel, size_t smem) {
  return static_cast<int>(
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
}

// ---- forward --------------------------------------------------------------------------

constexpr int kFwdBr = 64;  // queries per tile
constexpr int kFwdBc = 64;  // keys per tile

template <int kD, int kDv>
struct Fwd {
  static constexpr int kRows = kFwdBr / kTy;  // 4 query rows per thread
  static constexpr int kCols = kFwdBc / kTx;  // 8 keys per thread
  static constexpr int kOut = kDv / kTx;      // output columns per thread
  static constexpr int kKStride = kD + kPad;
  static constexpr size_t kSmem = sizeof(float) * (kFwdBr * kD + kFwdBc * kKStride + kFwdBc * kDv);
};

template <int kD, int kDv>
__global__ void __launch_bounds__(kThreads, 1)
forward_tiled(const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v, Masking mk,
              float* __restrict__ out, float* __restrict__ lse, int64_t batch, int64_t L, int64_t S, int E, int Ev,
              float scale2) {
  using T = Fwd<kD, kDv>;
  extern __shared__ float4 smem4[];
  float* qs = reinterpret_cast<float*>(smem4);  // [kFwdBr][kD]
  float* ks = qs + kFwdBr * kD;                  // [kFwdBc][kD + kPad]
  float* vs = ks + kFwdBc * T::kKStride;         // [kFwdBc][kDv]
  const int tid = threadIdx.x, lane = tid % kWarp, ty = tid / kTx, tx = tid % kTx;
  const int64_t tiles = (L + kFwdBr - 1) / kFwdBr;

  for (int64_t work = blockIdx.x; work < batch * tiles; work += gridDim.x) {
    const int64_t b = work / tiles;
    const int64_t q0 = (tiles - 1 - work % tiles) * kFwdBr;  // last first: under is_causal they see the most keys
    __syncthreads();  // the previous item's readers of qs are done
    load_tile<kFwdBr, kD, kD>(qs, q + (b * L + q0) * E, L - q0, E, E, nullptr);

    float m[T::kRows], l[T::kRows], acc[T::kRows][T::kOut];
#pragma unroll
    for (int i = 0; i < T::kRows; ++i) {
      m[i] = -INFINITY;
      l[i] = 0.0f;
#pragma unroll
      for (int c = 0; c < T::kOut; ++c) acc[i][c] = 0.0f;
    }
    const int64_t kv_end = mk.causal ? (S < q0 + kFwdBr ? S : q0 + kFwdBr) : S;
    for (int64_t k0 = 0; k0 < kv_end; k0 += kFwdBc) {
      __syncthreads();  // readers of the previous ks / vs are done (and qs is written)
      load_tile<kFwdBc, kD, T::kKStride>(ks, k + (b * S + k0) * E, S - k0, E, E, nullptr);
      load_tile<kFwdBc, kDv, kDv>(vs, v + (b * S + k0) * Ev, S - k0, Ev, Ev, nullptr);
      __syncthreads();

      float s[T::kRows][T::kCols];
      tile_scores<T::kRows, T::kCols, kD, kD, T::kKStride>(s, qs, ks, ty, tx);
#pragma unroll
      for (int i = 0; i < T::kRows; ++i) {
        const int64_t row = q0 + ty + kTy * i;
#pragma unroll
        for (int j = 0; j < T::kCols; ++j) s[i][j] = mk.apply(s[i][j] * scale2, b, row, k0 + tx + kTx * j, kLog2e);
      }
      // Online softmax: s becomes p = exp2(s - m_new), rows rescaled by exp2(m_old - m_new).
#pragma unroll
      for (int i = 0; i < T::kRows; ++i) {
        float mt = s[i][0];
#pragma unroll
        for (int j = 1; j < T::kCols; ++j) mt = fmaxf(mt, s[i][j]);
        const float m_new = fmaxf(m[i], group_max(mt));
        const float base = m_new == -INFINITY ? 0.0f : m_new;  // nothing allowed yet: p = 0, not NaN
        const float alpha = exp2f(m[i] - base);
        float rs = 0.0f;
#pragma unroll
        for (int j = 0; j < T::kCols; ++j) {
          s[i][j] = exp2f(s[i][j] - base);
          rs += s[i][j];
        }
        l[i] = l[i] * alpha + group_sum(rs);
        m[i] = m_new;
#pragma unroll
        for (int c = 0; c < T::kOut; ++c) acc[i][c] *= alpha;
      }
      add_product<T::kRows, T::kCols, T::kOut, kDv>(acc, s, vs, lane, tx);
    }

#pragma unroll
    for (int i = 0; i < T::kRows; ++i) {
      const int64_t row = q0 + ty + kTy * i;
      if (row >= L) continue;
      const bool dead = l[i] == 0.0f;  // no key allowed: NaN outputs, lse -inf
      const float inv = dead ? 0.0f : 1.0f / l[i];  // a row with no key: 0, as PyTorch
      float* orow = out + (b * L + row) * Ev;
#pragma unroll
      for (int c = 0; c < T::kOut; ++c) {
        const int col = 32 * (c / 4) + 4 * tx + c % 4;
        if (col < Ev) orow[col] = acc[i][c] * inv;
      }
      if (tx == 0) lse[b * L + row] = dead ? -INFINITY : (m[i] + log2f(l[i])) * kLn2;
    }
  }
}

// ---- backward: gk, gv -------------------------------------------------------------------

constexpr int kKvBk = 32;  // keys per block
constexpr int kKvBq = 64;  // queries per tile

template <int kD, int kDv>
struct Kv {
  static constexpr int kKeys = kKvBk / kTy;   // 2 keys per thread
  static constexpr int kCols = kKvBq / kTx;   // 8 queries per thread
  static constexpr int kOutK = kD / kTx;      // gk columns per thread
  static constexpr int kOutV = kDv / kTx;     // gv columns per thread
  static constexpr int kQStride = kD + kPad;
  static constexpr int kGStride = kDv + kPad;
  static constexpr size_t kSmem =
      sizeof(float) * (kKvBk * kD + kKvBk * kDv + kKvBq * kQStride + kKvBq * kGStride + 2 * kKvBq);
};

template <int kD, int kDv>
__global__ void __launch_bounds__(kThreads, 1)
gkv_tiled(const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v,
          const float* __restrict__ gout, const float* __restrict__ lse, const float* __restrict__ delta, Masking mk,
          float* __restrict__ gk, float* __restrict__ gv, int64_t batch, int64_t L, int64_t S, int E, int Ev,
          float scale, float scale2) {
  using T = Kv<kD, kDv>;
  extern __shared__ float4 smem4[];
  float* ks = reinterpret_cast<float*>(smem4);  // [kKvBk][kD]
  float* vs = ks + kKvBk * kD;                   // [kKvBk][kDv]
  float* qs = vs + kKvBk * kDv;                  // [kKvBq][kD + kPad]
  float* gs = qs + kKvBq * T::kQStride;          // [kKvBq][kDv + kPad]: gout
  float* lse_s = gs + kKvBq * T::kGStride;       // [kKvBq], base 2
  float* delta_s = lse_s + kKvBq;                // [kKvBq]
  const int tid = threadIdx.x, lane = tid % kWarp, ty = tid / kTx, tx = tid % kTx;
  const int64_t tiles = (S + kKvBk - 1) / kKvBk;

  for (int64_t work = blockIdx.x; work < batch * tiles; work += gridDim.x) {
    const int64_t b = work / tiles;
    const int64_t k0 = (work % tiles) * kKvBk;  // first keys first: under is_causal they see the most rows
    __syncthreads();  // the previous item's readers of ks / vs are done
    load_tile<kKvBk, kD, kD>(ks, k + (b * S + k0) * E, S - k0, E, E, nullptr);
    load_tile<kKvBk, kDv, kDv>(vs, v + (b * S + k0) * Ev, S - k0, Ev, Ev, nullptr);

    float dk[T::kKeys][T::kOutK], dv[T::kKeys][T::kOutV];
#pragma unroll
    for (int i = 0; i < T::kKeys; ++i) {
#pragma unroll
      for (int c = 0; c < T::kOutK; ++c) dk[i][c] = 0.0f;
#pragma unroll
      for (int c = 0; c < T::kOutV; ++c) dv[i][c] = 0.0f;
    }
    // Under is_causal, rows above k0 see none of these keys.
    for (int64_t q0 = mk.causal ? (k0 / kKvBq) * kKvBq : 0; q0 < L; q0 += kKvBq) {
      __syncthreads();  // readers of the previous qs / gs / lse_s / delta_s are done (and ks / vs written)
      const float* lse_rows = lse + b * L + q0;
      for (int r = tid; r < kKvBq; r += kThreads) {
        const bool in = q0 + r < L;
        lse_s[r] = in ? lse_rows[r] * kLog2e : -INFINITY;
        delta_s[r] = in ? delta[b * L + q0 + r] : 0.0f;
      }
      // Dead rows load as zeros, so a NaN in their q or gout cannot reach gk / gv.
      load_tile<kKvBq, kD, T::kQStride>(qs, q + (b * L + q0) * E, L - q0, E, E, lse_rows);
      load_tile<kKvBq, kDv, T::kGStride>(gs, gout + (b * L + q0) * Ev, L - q0, Ev, Ev, lse_rows);
      __syncthreads();

      // p[i][j]: key ty + 16 i, query tx + 8 j.
      float p[T::kKeys][T::kCols];
      tile_scores<T::kKeys, T::kCols, kD, kD, T::kQStride>(p, ks, qs, ty, tx);
#pragma unroll
      for (int i = 0; i < T::kKeys; ++i) {
        const int64_t col = k0 + ty + kTy * i;
#pragma unroll
        for (int j = 0; j < T::kCols; ++j) {
          const int r = tx + kTx * j;
          const float s2 = mk.apply(p[i][j] * scale2, b, q0 + r, col, kLog2e);
          const float lse2 = lse_s[r];
          p[i][j] = lse2 == -INFINITY ? 0.0f : exp2f(s2 - lse2);
        }
      }
      add_product<T::kKeys, T::kCols, T::kOutV, T::kGStride>(dv, p, gs, lane, tx);
      // ds = p * (dP - delta), dP^T[i][j] = v[key] . gout[query].
      float ds[T::kKeys][T::kCols];
      tile_scores<T::kKeys, T::kCols, kDv, kDv, T::kGStride>(ds, vs, gs, ty, tx);
#pragma unroll
      for (int i = 0; i < T::kKeys; ++i)
#pragma unroll
        for (int j = 0; j < T::kCols; ++j) ds[i][j] = p[i][j] * (ds[i][j] - delta_s[tx + kTx * j]);
      add_product<T::kKeys, T::kCols, T::kOutK, T::kQStride>(dk, ds, qs, lane, tx);
    }

#pragma unroll
    for (int i = 0; i < T::kKeys; ++i) {
      const int64_t key = k0 + ty + kTy * i;
      if (key >= S) continue;
      float* gkr = gk + (b * S + key) * E;
      float* gvr = gv + (b * S + key) * Ev;
#pragma unroll
      for (int c = 0; c < T::kOutK; ++c) {
        const int col = 32 * (c / 4) + 4 * tx + c % 4;
        if (col < E) gkr[col] = dk[i][c] * scale;
      }
#pragma unroll
      for (int c = 0; c < T::kOutV; ++c) {
        const int col = 32 * (c / 4) + 4 * tx + c % 4;
        if (col < Ev) gvr[col] = dv[i][c];
      }
    }
  }
}

// ---- backward: gq -----------------------------------------------------------------------

constexpr int kQBq = 64;  // queries per block
constexpr int kQBk = 32;  // keys per tile

template <int kD, int kDv>
struct Gq {
  static constexpr int kRows = kQBq / kTy;  // 4 query rows per thread
  static constexpr int kCols = kQBk / kTx;  // 4 keys per thread
  static constexpr int kOut = kD / kTx;     // gq columns per thread
  static constexpr int kKStride = kD + kPad;
  static constexpr int kVStride = kDv + kPad;
  static constexpr size_t kSmem = sizeof(float) * (kQBq * kD + kQBq * kDv + kQBk * kKStride + kQBk * kVStride);
};

template <int kD, int kDv>
__global__ void __launch_bounds__(kThreads, 1)
gq_tiled(const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v,
         const float* __restrict__ gout, const float* __restrict__ lse, const float* __restrict__ delta, Masking mk,
         float* __restrict__ gq, int64_t batch, int64_t L, int64_t S, int E, int Ev, float scale, float scale2) {
  using T = Gq<kD, kDv>;
  extern __shared__ float4 smem4[];
  float* qs = reinterpret_cast<float*>(smem4);  // [kQBq][kD]
  float* gs = qs + kQBq * kD;                    // [kQBq][kDv]: gout
  float* ks = gs + kQBq * kDv;                   // [kQBk][kD + kPad]
  float* vs = ks + kQBk * T::kKStride;           // [kQBk][kDv + kPad]
  const int tid = threadIdx.x, lane = tid % kWarp, ty = tid / kTx, tx = tid % kTx;
  const int64_t tiles = (L + kQBq - 1) / kQBq;

  for (int64_t work = blockIdx.x; work < batch * tiles; work += gridDim.x) {
    const int64_t b = work / tiles;
    const int64_t q0 = (tiles - 1 - work % tiles) * kQBq;
    const float* lse_rows = lse + b * L + q0;
    __syncthreads();  // the previous item's readers of qs / gs are done
    load_tile<kQBq, kD, kD>(qs, q + (b * L + q0) * E, L - q0, E, E, lse_rows);
    load_tile<kQBq, kDv, kDv>(gs, gout + (b * L + q0) * Ev, L - q0, Ev, Ev, lse_rows);

    float lse2[T::kRows], dl[T::kRows], dq[T::kRows][T::kOut];
#pragma unroll
    for (int i = 0; i < T::kRows; ++i) {
      const int r = ty + kTy * i;
      const bool in = q0 + r < L;
      lse2[i] = in ? lse_rows[r] * kLog2e : -INFINITY;
      dl[i] = in ? delta[b * L + q0 + r] : 0.0f;
#pragma unroll
      for (int c = 0; c < T::kOut; ++c) dq[i][c] = 0.0f;
    }
    const int64_t kv_end = mk.causal ? (S < q0 + kQBq ? S : q0 + kQBq) : S;
    for (int64_t k0 = 0; k0 < kv_end; k0 += kQBk) {
      __syncthreads();  // readers of the previous ks / vs are done (and qs / gs written)
      load_tile<kQBk, kD, T::kKStride>(ks, k + (b * S + k0) * E, S - k0, E, E, nullptr);
      load_tile<kQBk, kDv, T::kVStride>(vs, v + (b * S + k0) * Ev, S - k0, Ev, Ev, nullptr);
      __syncthreads();

      // p[i][j]: query ty + 16 i, key tx + 8 j.
      float p[T::kRows][T::kCols];
      tile_scores<T::kRows, T::kCols, kD, kD, T::kKStride>(p, qs, ks, ty, tx);
#pragma unroll
      for (int i = 0; i < T::kRows; ++i) {
        const int64_t row = q0 + ty + kTy * i;
#pragma unroll
        for (int j = 0; j < T::kCols; ++j) {
          const float s2 = mk.apply(p[i][j] * scale2, b, row, k0 + tx + kTx * j, kLog2e);
          p[i][j] = lse2[i] == -INFINITY ? 0.0f : exp2f(s2 - lse2[i]);
        }
      }
      float ds[T::kRows][T::kCols];
      tile_scores<T::kRows, T::kCols, kDv, kDv, T::kVStride>(ds, gs, vs, ty, tx);
#pragma unroll
      for (int i = 0; i < T::kRows; ++i)
#pragma unroll
        for (int j = 0; j < T::kCols; ++j) ds[i][j] = p[i][j] * (ds[i][j] - dl[i]);
      add_product<T::kRows, T::kCols, T::kOut, T::kKStride>(dq, ds, ks, lane, tx);
    }

#pragma unroll
    for (int i = 0; i < T::kRows; ++i) {
      const int64_t row = q0 + ty + kTy * i;
      if (row >= L) continue;
      float* gqr = gq + (b * L + row) * E;
#pragma unroll
      for (int c = 0; c < T::kOut; ++c) {
        const int col = 32 * (c / 4) + 4 * tx + c % 4;
        if (col < E) gqr[col] = dq[i][c] * scale;
      }
    }
  }
}

// ---- dispatch over the padded head dims -----------------------------------------------------

int padded(int64_t dim) { return dim <= 64 ? 64 : 128; }

template <int kD, int kDv>
int forward_launch(const TgSdpa& a, cudaStream_t s) {
  const int64_t items = a.batch * ((a.q_len + kFwdBr - 1) / kFwdBr);
  if (items == 0) return 0;
  const size_t smem = Fwd<kD, kDv>::kSmem;
  int err = launch_prep(forward_tiled<kD, kDv>, smem);
  if (err != 0) return err;
  forward_tiled<kD, kDv><<<work_grid(items), kThreads, smem, s>>>(
      static_cast<const float*>(a.q), static_cast<const float*>(a.k), static_cast<const float*>(a.v),
      make_masking(a), static_cast<float*>(a.out), a.lse, a.batch, a.q_len, a.kv_len,
      static_cast<int>(a.head_dim), static_cast<int>(a.v_dim), a.scale * kLog2e);
  return static_cast<int>(cudaGetLastError());
}

template <int kD, int kDv>
int backward_launch(const TgSdpa& a, cudaStream_t s) {
  const float* q = static_cast<const float*>(a.q);
  const float* k = static_cast<const float*>(a.k);
  const float* v = static_cast<const float*>(a.v);
  const float* gout = static_cast<const float*>(a.gout);
  const int E = static_cast<int>(a.head_dim), Ev = static_cast<int>(a.v_dim);
  const float scale2 = a.scale * kLog2e;
  const int64_t kv_items = a.batch * ((a.kv_len + kKvBk - 1) / kKvBk);
  if (kv_items > 0) {  // also with L == 0: gk and gv are then zeros
    const size_t smem = Kv<kD, kDv>::kSmem;
    int err = launch_prep(gkv_tiled<kD, kDv>, smem);
    if (err != 0) return err;
    gkv_tiled<kD, kDv><<<work_grid(kv_items), kThreads, smem, s>>>(
        q, k, v, gout, a.lse, a.delta, make_masking(a), static_cast<float*>(a.gk), static_cast<float*>(a.gv),
        a.batch, a.q_len, a.kv_len, E, Ev, a.scale, scale2);
    err = static_cast<int>(cudaGetLastError());
    if (err != 0) return err;
  }
  const int64_t q_items = a.batch * ((a.q_len + kQBq - 1) / kQBq);
  if (q_items > 0) {
    const size_t smem = Gq<kD, kDv>::kSmem;
    int err = launch_prep(gq_tiled<kD, kDv>, smem);
    if (err != 0) return err;
    gq_tiled<kD, kDv><<<work_grid(q_items), kThreads, smem, s>>>(q, k, v, gout, a.lse, a.delta, make_masking(a),
                                                                  static_cast<float*>(a.gq), a.batch, a.q_len,
                                                                  a.kv_len, E, Ev, a.scale, scale2);
  }
  return static_cast<int>(cudaGetLastError());
}

template <template <int, int> class Launch>
int dispatch(const TgSdpa& a, cudaStream_t s) {
  const int d = padded(a.head_dim), dv = padded(a.v_dim);
  if (d == 64) return dv == 64 ? Launch<64, 64>::run(a, s) : Launch<64, 128>::run(a, s);
  return dv == 64 ? Launch<128, 64>::run(a, s) : Launch<128, 128>::run(a, s);
}

template <int kD, int kDv>
struct ForwardLaunch {
  static int run(const TgSdpa& a, cudaStream_t s) { return forward_launch<kD, kDv>(a, s); }
};

template <int kD, int kDv>
struct BackwardLaunch {
  static int run(const TgSdpa& a, cudaStream_t s) { return backward_launch<kD, kDv>(a, s); }
};

}  // namespace

int sdpa_forward_v2(const TgSdpa& a, cudaStream_t s) { return dispatch<ForwardLaunch>(a, s); }
int sdpa_backward_v2(const TgSdpa& a, cudaStream_t s) { return dispatch<BackwardLaunch>(a, s); }

}  // namespace attn
}  // namespace cuda
}  // namespace tg
