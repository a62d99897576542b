// Scaled dot-product attention v4: the pipelined forward for float16 / bfloat16 inputs on the
// tensor cores (mma.sync m16n8k16, float32 accumulation), head dims E == Ev == 64 or 128; the
// default for 16-bit inputs. v3 (attention_mma.cu) stays selectable; both share the backward
// (attention_mma_bwd.cu), which works from out and lse alone.
//
// FlashAttention-2's forward:
//   - a block of 8 warps (E = 64) or 4 (E = 128) takes 16 queries per warp of one batch entry,
//     128 or 64 in all, last tiles first
//     (under is_causal they see the most keys). The Q tile is copied into shared memory once
//     and read with ldmatrix into A fragments that stay in registers (E / 4 words per thread);
//   - K and V stream through shared memory in 64-key tiles, two stages: the cp.async copies of
//     tile j + 1 are issued right after the barrier that opens tile j, so they fly while tile j
//     is computed on. Rows past S (and queries past L) are zero-filled: nothing past the ends is
//     read, and a zero V row times a zero probability cannot make a NaN;
//   - S = Q K^T from K fragments read with ldmatrix ([key][d] is the B operand's [n][k] layout),
//     the scale folded into log2 space (scale * log2 e) so that the softmax is exp2;
//   - online softmax in registers (each thread holds 2 rows; row max / sum over the 4 lanes of
//     a quad by 2 shuffles). Only tiles that need it are masked: a bool / float mask, keys past
//     S, or a causal tile that crosses this warp's diagonal. Causal tiles wholly above the
//     diagonal are never loaded (the key loop stops at the block's last query), and a warp
//     skips the tiles wholly past its own last query (and a warp wholly past L does nothing);
//   - P, rounded to the input type, goes from the score C fragments straight into the A
//     fragments of P V (two adjacent 8-key C fragments are one 16-deep A fragment), and V's B
//     fragments come from ldmatrix.trans of the [key][d] tile.
// Shared memory is unpadded and XOR-swizzled: the 16-byte chunk c of row r sits at chunk
// c ^ (r % 8), so the 8 row addresses of every ldmatrix (same logical chunk, 8 consecutive
// rows) and every 16-byte cp.async of a warp fall in distinct banks. Q [128 or 64][E] + 2
// stages of K and V [64][E]: 48 KiB (E = 64) or 80 KiB (E = 128).
//
// Registers per thread (nvcc 13.0, -Xptxas -v, no spills, float16 and bfloat16 alike):
// E = 64, 256 threads: 164 (sm_80) / 168 (sm_90), one block per SM; E = 128, 128 threads:
// 218 / 223, two blocks per SM.
//
// Global rows are copied 16 bytes at a time when q, k and v are 16-byte aligned, 4 bytes
// otherwise (the binding guarantees 4); out is written 4 bytes at a time.
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

constexpr int kBc = 64;  // keys per streamed tile
constexpr unsigned kFull = 0xffffffffu;

// E = 64: 8 warps (128 queries per block, half the K / V traffic per query; one block of 256
// threads per SM by registers). E = 128: 4 warps (64 queries; two blocks per SM).
template <int kD>
struct Fwd {
  static constexpr int kWarps = kD == 64 ? 8 : 4;
  static constexpr int kThreads = 32 * kWarps;
  static constexpr int kMinBlocks = kD == 64 ? 1 : 2;  // per SM, for __launch_bounds__
  static constexpr int kBr = 16 * kWarps;    // queries per block: 16 per warp
  static constexpr int kTile = kBc * kD;     // halves of one K or V stage
  static constexpr int kSteps = kD / 16;     // 16-deep steps of Q K^T
  static constexpr int kKeyTiles = kBc / 8;  // 8-key score fragments
  static constexpr int kOutTiles = kD / 8;   // 8-column output fragments
  static constexpr size_t kSmem = sizeof(uint16_t) * (kBr * kD + 4 * kTile);  // Q, 2 x K, 2 x V
};

// Offset of element (r, c) of a [rows][kD] tile in the swizzled layout: 16-byte chunk c / 8
// of row r is stored at chunk (c / 8) ^ (r % 8). kD / 8 >= 8 chunks per row, so the XOR stays
// inside the row.
template <int kD>
__device__ __forceinline__ int swz(int r, int c) {
  return r * kD + ((((c >> 3) ^ (r & 7))) << 3) + (c & 7);
}

// Rows [0, kRows) of kD halves from `src` (row stride kD) into the swizzled tile `dst` with
// cp.async; zeros past `valid` rows. `vec16`: every source row is 16-byte aligned.
template <int kRows, int kD, int kThreads>
__device__ __forceinline__ void stage_tile(uint16_t* dst, const uint16_t* src, int64_t valid, bool vec16) {
  if (vec16) {
    constexpr int kChunks = kD / 8;
#pragma unroll
    for (int i = threadIdx.x; i < kRows * kChunks; i += kThreads) {
      const int r = i / kChunks, c = 8 * (i % kChunks);
      const bool keep = r < valid;
      cp_async16(dst + swz<kD>(r, c), keep ? src + static_cast<int64_t>(r) * kD + c : src, keep);
    }
  } else {
    constexpr int kPairs = kD / 2;
    for (int i = threadIdx.x; i < kRows * kPairs; i += kThreads) {
      const int r = i / kPairs, c = 2 * (i % kPairs);
      const bool keep = r < valid;
      cp_async4(dst + swz<kD>(r, c), keep ? src + static_cast<int64_t>(r) * kD + c : src, keep);
    }
  }
}

// ldmatrix operands from a swizzled [rows][kD] tile; lane l gives row l % 8 of matrix l / 8.
// A fragment of rows [r0, r0 + 16) x columns [c0, c0 + 16): matrices (rows +0, cols +0),
// (+8, +0), (+0, +8), (+8, +8) are a[0..3].
template <int kD>
__device__ __forceinline__ void load_a(uint32_t (&a)[4], const uint16_t* tile, int r0, int c0, int lane) {
  const int m = lane / 8;
  mma16::ldmatrix_x4(a, tile + swz<kD>(r0 + 8 * (m % 2) + lane % 8, c0 + 8 * (m / 2)));
}

// B fragments of the 8-column tiles n0 and n0 + 8 (b[0..1], b[2..3]), depth [k0, k0 + 16),
// from a tile stored [n][k] (K for Q K^T).
template <int kD>
__device__ __forceinline__ void load_b_nk(uint32_t (&b)[4], const uint16_t* tile, int n0, int k0, int lane) {
  const int m = lane / 8;
  mma16::ldmatrix_x4(b, tile + swz<kD>(n0 + 8 * (m / 2) + lane % 8, k0 + 8 * (m % 2)));
}

// The same from a tile stored [k][n] (V for P V), through the transposing ldmatrix.
template <int kD>
__device__ __forceinline__ void load_b_kn(uint32_t (&b)[4], const uint16_t* tile, int k0, int n0, int lane) {
  const int m = lane / 8;
  mma16::ldmatrix_x4_trans(b, tile + swz<kD>(k0 + 8 * (m % 2) + lane % 8, n0 + 8 * (m / 2)));
}

template <int kBf16>
__device__ __forceinline__ void mma_pair(float (&d0)[4], float (&d1)[4], const uint32_t (&a)[4],
                                         const uint32_t (&b)[4]) {
  const uint32_t b0[2] = {b[0], b[1]}, b1[2] = {b[2], b[3]};
  mma<kBf16>(d0, a, b0);
  mma<kBf16>(d1, a, b1);
}

// 2^x by the special-function unit alone (ex2.approx.ftz: about 2 ulp, subnormal results
// flushed to 0, 2^-inf = 0); exp2f adds instructions for the subnormal range that the
// probabilities (relative to the row maximum, summed with at least one 1) do not need.
__device__ __forceinline__ float fast_exp2(float x) {
#ifdef TG_CUDA_EMULATION
  return exp2f(x);
#else
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
#endif
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
__global__ void __launch_bounds__(Fwd<kD>::kThreads, Fwd<kD>::kMinBlocks)
forward_pipelined(const uint16_t* __restrict__ q, const uint16_t* __restrict__ k, const uint16_t* __restrict__ v,
                  Masking mk, uint16_t* __restrict__ out, float* __restrict__ lse, int64_t batch, int64_t L,
                  int64_t S, float scale2, bool vec16) {
  using T = Fwd<kD>;
  constexpr int kBr = T::kBr, kThreads = T::kThreads;
  extern __shared__ float4 smem4[];
  uint16_t* qs = reinterpret_cast<uint16_t*>(smem4);  // [kBr][kD]
  uint16_t* ks0 = qs + kBr * kD;                       // 2 stages of [kBc][kD]
  uint16_t* vs0 = ks0 + 2 * T::kTile;                  // 2 stages of [kBc][kD]
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, g = lane / 4, t = lane % 4;
  const int64_t tiles = (L + kBr - 1) / kBr;
  const bool masked = mk.bool_mask != nullptr || mk.add_mask != nullptr;

  for (int64_t work = blockIdx.x; work < batch * tiles; work += gridDim.x) {
    const int64_t b = work / tiles;
    const int64_t q0 = (tiles - 1 - work % tiles) * kBr;
    const int64_t kv_end = mk.causal ? (S < q0 + kBr ? S : q0 + kBr) : S;
    __syncthreads();  // the previous item's readers of qs and of both stages are done
    stage_tile<kBr, kD, kThreads>(qs, q + (b * L + q0) * kD, L - q0, vec16);
    if (kv_end > 0) {
      stage_tile<kBc, kD, kThreads>(ks0, k + b * S * kD, S, vec16);
      stage_tile<kBc, kD, kThreads>(vs0, v + b * S * kD, S, vec16);
    }
    cp_async_commit();  // group: Q and the first key tile

    const int64_t row0 = q0 + warp * 16;  // this warp's first query
    const int64_t rows[2] = {row0 + g, row0 + g + 8};
    uint32_t qa[T::kSteps][4];
    float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
    float o[T::kOutTiles][4];
#pragma unroll
    for (int j = 0; j < T::kOutTiles; ++j) o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0.0f;

    int st = 0;
    for (int64_t k0 = 0; k0 < kv_end; k0 += kBc, st ^= 1) {
      // Tile k0 is the only group in flight here (the next one is issued below), so waiting
      // for all of them waits for exactly it. The barrier then (a) makes every thread's copies
      // of it visible and (b) ends every warp's reads of tile k0 - kBc, whose stage st ^ 1 the
      // next copies overwrite. (Waiting for fewer, or issuing before the barrier, would let
      // the mma read a half-landed tile or the copies clobber one still being read: races the
      // CPU emulation cannot show, since it copies synchronously.)
      cp_async_wait<0>();
      __syncthreads();
      if (k0 + kBc < kv_end) {
        stage_tile<kBc, kD, kThreads>(ks0 + (st ^ 1) * T::kTile, k + (b * S + k0 + kBc) * kD, S - k0 - kBc, vec16);
        stage_tile<kBc, kD, kThreads>(vs0 + (st ^ 1) * T::kTile, v + (b * S + k0 + kBc) * kD, S - k0 - kBc, vec16);
      }
      cp_async_commit();
      const uint16_t* ks = ks0 + st * T::kTile;
      const uint16_t* vs = vs0 + st * T::kTile;
      if (k0 == 0) {
#pragma unroll
        for (int s = 0; s < T::kSteps; ++s) load_a<kD>(qa[s], qs, warp * 16, 16 * s, lane);
      }
      // Nothing to do for this warp (warp-uniform; the barriers are above): all its queries are
      // past L, or under is_causal all its keys here are past its last query.
      if (row0 >= L || (mk.causal && k0 > row0 + 15)) continue;

      // s[n][e]: query rows[e / 2], key k0 + 8 n + 2 t + e % 2.
      float s[T::kKeyTiles][4];
#pragma unroll
      for (int n = 0; n < T::kKeyTiles; ++n) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.0f;
#pragma unroll
      for (int d = 0; d < T::kSteps; ++d) {
#pragma unroll
        for (int n = 0; n < T::kKeyTiles; n += 2) {
          uint32_t kb[4];
          load_b_nk<kD>(kb, ks, 8 * n, 16 * d, lane);
          mma_pair<kBf16>(s[n], s[n + 1], qa[d], kb);
        }
      }
      // Mask only where some score of this warp may be dropped: a mask, keys past S, or keys
      // past the warp's first query under is_causal (the diagonal tile). Warp-uniform.
      const bool edge = masked || k0 + kBc > S || (mk.causal && k0 + kBc - 1 > row0);
      if (edge) {
#pragma unroll
        for (int n = 0; n < T::kKeyTiles; ++n) {
          const int64_t col = k0 + n * 8 + 2 * t;
#pragma unroll
          for (int e = 0; e < 4; ++e) s[n][e] = mk.apply(s[n][e] * scale2, b, rows[e / 2], col + e % 2, kLog2e);
        }
      } else {
#pragma unroll
        for (int n = 0; n < T::kKeyTiles; ++n) {
#pragma unroll
          for (int e = 0; e < 4; ++e) s[n][e] *= scale2;
        }
      }
      // Online softmax of the thread's two rows (h = 0: row g, h = 1: row g + 8).
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        float mt = -INFINITY;
#pragma unroll
        for (int n = 0; n < T::kKeyTiles; ++n) mt = fmaxf(mt, fmaxf(s[n][2 * h], s[n][2 * h + 1]));
        const float m_new = fmaxf(m[h], quad_max(mt));
        const float base = m_new == -INFINITY ? 0.0f : m_new;  // nothing allowed yet: p = 0, not NaN
        const float alpha = fast_exp2(m[h] - base);
        float rs = 0.0f;
#pragma unroll
        for (int n = 0; n < T::kKeyTiles; ++n) {
          s[n][2 * h] = fast_exp2(s[n][2 * h] - base);
          s[n][2 * h + 1] = fast_exp2(s[n][2 * h + 1] - base);
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
      // O += P V, 16 keys per step: score fragments 2 kk and 2 kk + 1 are the A fragment.
#pragma unroll
      for (int kk = 0; kk < kBc / 16; ++kk) {
        const uint32_t pa[4] = {pack2<kBf16>(s[2 * kk][0], s[2 * kk][1]), pack2<kBf16>(s[2 * kk][2], s[2 * kk][3]),
                                pack2<kBf16>(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                                pack2<kBf16>(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
        for (int j = 0; j < T::kOutTiles; j += 2) {
          uint32_t vb[4];
          load_b_kn<kD>(vb, vs, 16 * kk, 8 * j, lane);
          mma_pair<kBf16>(o[j], o[j + 1], pa, vb);
        }
      }
    }
    cp_async_wait<0>();  // with no key tile (S == 0), the Q copies are still to be waited for

#pragma unroll
    for (int h = 0; h < 2; ++h) {
      if (rows[h] >= L) continue;
      const bool dead = l[h] == 0.0f;  // no key allowed: lse -inf
      const float inv = dead ? 0.0f : 1.0f / l[h];  // and outputs 0, as v3 and PyTorch's flash kernel
      uint16_t* orow = out + (b * L + rows[h]) * kD + 2 * t;
#pragma unroll
      for (int j = 0; j < T::kOutTiles; ++j) {
        *reinterpret_cast<uint32_t*>(orow + 8 * j) = pack2<kBf16>(o[j][2 * h] * inv, o[j][2 * h + 1] * inv);
      }
      if (t == 0) lse[b * L + rows[h]] = dead ? -INFINITY : (m[h] + log2f(l[h])) * kLn2;
    }
  }
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

template <int kBf16, int kD>
int launch(const TgSdpa& a, cudaStream_t s) {
  using T = Fwd<kD>;
  const int64_t items = a.batch * ((a.q_len + T::kBr - 1) / T::kBr);
  if (items == 0) return 0;
  const size_t smem = T::kSmem;
  int err = static_cast<int>(cudaFuncSetAttribute(forward_pipelined<kBf16, kD>,
                                                  cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
  if (err != 0) return err;
  const bool vec16 = aligned16(a.q) && aligned16(a.k) && aligned16(a.v);
  const int64_t cap = int64_t{1} << 30;
  forward_pipelined<kBf16, kD><<<static_cast<unsigned>(items < cap ? items : cap), T::kThreads, smem, s>>>(
      static_cast<const uint16_t*>(a.q), static_cast<const uint16_t*>(a.k), static_cast<const uint16_t*>(a.v),
      make_masking(a), static_cast<uint16_t*>(a.out), a.lse, a.batch, a.q_len, a.kv_len, a.scale * kLog2e, vec16);
  return static_cast<int>(cudaGetLastError());
}

}  // namespace

int sdpa_forward_v4(const TgSdpa& a, cudaStream_t s) {
  const bool bf16 = a.dtype == TG_DTYPE_BF16;
  if (a.head_dim == 64) return bf16 ? launch<1, 64>(a, s) : launch<0, 64>(a, s);
  return bf16 ? launch<1, 128>(a, s) : launch<0, 128>(a, s);
}

}  // namespace attn
}  // namespace cuda
}  // namespace tg
