// Bodies of the fused attention kernels, written once on the Vec of the including ISA file
// (vec.h) and exported by it as an AttnKernels table. Serial: the driver (attention.cpp) runs
// the tasks on OpenMP threads, each with its own scratch.
//
// Flash style: a task packs its batch's keys and values once, then walks tiles of kBq queries
// x kBk keys. The scores of a tile land in a kBq x kBk buffer that stays in L1/L2; the forward
// keeps a running max and sum per row (online softmax) and rescales its output rows when the
// max grows; the backward recomputes each tile's probabilities from the saved log-sum-exps.
// Every product goes through one register-tiled micro-kernel (kMr rows x kNr columns of
// accumulators) whose right operand is a packed sliver: kNr consecutive floats per step of the
// inner dimension, zero-padded, so it never reads past an array.
//
// Include it after the file's `#pragma GCC target` and after every standard header, with one
// TG_VEC_* defined (see nn_body.h for why).
#pragma once

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

#include <algorithm>
#include <cmath>
#include <cstring>

#include "attention_internal.h"
#include "vmath.h"

namespace tg {
namespace cpu {
namespace {

constexpr int W = Vec::W;
#if defined(TG_VEC_GENERIC)
constexpr int kMr = 4;  // 4 x 8 scalar accumulators: the compiler may vectorize them
constexpr int kNv = 8;
#else
constexpr int kMr = 6;  // 6 x 2 vector accumulators, 2 B vectors, 1 broadcast: 15 of 16 ymm
constexpr int kNv = 2;
#endif
constexpr int kNr = kNv * W;
// Tiles: a 48 x 128 score tile is 24 KiB, a 48-row query block of E = 64 12 KiB, a packed
// 16-key sliver of K^T 4 KiB: a tile's operands stay in L1/L2. Measured on the AVX2 machine
// (B8 H8 S512 D64, one thread): 48 x 128 beat 48 x 64 by ~10% forward and backward; 24, 72 or
// 96 queries and 256 keys were within noise of it. kBq is a multiple of every kMr, kBk of every
// kNr (packed slivers then start at a tile's first key).
constexpr int64_t kBq = 48;
constexpr int64_t kBk = 128;
const float kNegInf = -INFINITY;
constexpr float kLog2e = 1.44269504088896341f;

int64_t padded(int64_t n) { return (n + kNr - 1) / kNr * kNr; }

// 2^x for the arguments of a softmax (x <= 0, up to rounding): about 2 ulp; exactly 0 for
// x <= -127 (and -inf), so masked scores get probability 0; NaN propagates. Cheaper than vexp:
// no overflow range to cover, no ln 2 reduction (the caller folds log2(e) into its own fma).
// n = round(x) comes from the magic-number addition, whose low mantissa bits then hold
// n + 127, the biased exponent of 2^n (0 at n = -127: the result flushes to 0); 2^(x - n) is
// a degree-5 polynomial (a relative-error fit on [-1/2, 1/2]; Horner's scheme needs the fewest
// registers, and the callers' loops keep every value in one).
inline VT vexp2_nonpos(VT x) {
  x = Vec::max(Vec::set1(-127.0f), x);  // NaN passes through
  const VT magic = Vec::set1(12582912.0f + 127.0f);  // 1.5 * 2^23 + exponent bias
  const VT t = Vec::add(x, magic);
  const VT f = Vec::sub(x, Vec::sub(t, magic));
  VT p = Vec::fma(Vec::set1(0.0013276471f), f, Vec::set1(0.0096755419f));
  p = Vec::fma(p, f, Vec::set1(0.055507131f));
  p = Vec::fma(p, f, Vec::set1(0.24022120f));
  p = Vec::fma(p, f, Vec::set1(0.69314694f));
  p = Vec::fma(p, f, Vec::set1(1.0000001f));
  return Vec::mul(p, Vec::shl23(t));
}

// ---- packing ------------------------------------------------------------------------------

// src (rows x cols, row-major) as slivers of kNr columns: dst[g][r][j] = src[r][g * kNr + j],
// zero past the last column. A product reads rows r0.. of sliver g at dst + g * kNr * rows + r0 * kNr.
void pack_cols(const float* src, int64_t rows, int64_t cols, float* dst) {
  for (int64_t g = 0; g * kNr < cols; ++g) {
    const int64_t n = std::min<int64_t>(kNr, cols - g * kNr);
    const float* s = src + g * kNr;
    float* d = dst + g * kNr * rows;
    if (n == kNr) {  // whole vectors (a variable-length memcpy of 64 bytes costs more)
      for (int64_t r = 0; r < rows; ++r, d += kNr, s += cols) {
#pragma GCC unroll 8
        for (int v = 0; v < kNv; ++v) Vec::store(d + v * W, Vec::load(s + v * W));
      }
      continue;
    }
    for (int64_t r = 0; r < rows; ++r, d += kNr, s += cols) {
      for (int64_t j = 0; j < n; ++j) d[j] = s[j];
      for (int64_t j = n; j < kNr; ++j) d[j] = 0.0f;
    }
  }
}

// src (rows x cols, row-major) transposed into slivers of kNr rows: dst[g][c][j] = src[g * kNr + j][c],
// zero past the last row. Sliver g of the transpose starts at dst + g * kNr * cols.
void pack_rows(const float* src, int64_t rows, int64_t cols, float* dst) {
  for (int64_t g = 0; g * kNr < rows; ++g) {
    const int64_t n = std::min<int64_t>(kNr, rows - g * kNr);
    float* d = dst + g * kNr * cols;
    for (int64_t c = 0; c < cols; ++c) {
      for (int64_t j = 0; j < n; ++j) d[c * kNr + j] = src[(g * kNr + j) * cols + c];
      for (int64_t j = n; j < kNr; ++j) d[c * kNr + j] = 0.0f;
    }
  }
}

// ---- the micro-kernel ---------------------------------------------------------------------

// C[0:m, 0:n] (+)= A[0:m, 0:kc] @ Bp[0:kc, 0:n], 1 <= m <= kMr, n <= kNr. A's element (i, k)
// is at a[i * lda + k] (row-major) or, with kKMajor, at a[k * lda + i] (a transposed operand
// read in place). Bp is a packed sliver: kNr floats per k. Rows of A past m are never read.
template <bool kKMajor, bool kFull>
inline void micro_body(int64_t kc, const float* a, int64_t lda, const float* bp, float* c, int64_t ldc,
                       int m, int n, bool accumulate) {
  const int64_t row_step = kKMajor ? 1 : lda;
  const int64_t k_step = kKMajor ? lda : 1;
  int64_t off[kMr];
#pragma GCC unroll 12
  for (int i = 0; i < kMr; ++i) off[i] = (kFull ? i : std::min(i, m - 1)) * row_step;
  VT acc[kMr][kNv];
#pragma GCC unroll 12
  for (int i = 0; i < kMr; ++i) {
#pragma GCC unroll 8
    for (int v = 0; v < kNv; ++v) acc[i][v] = Vec::set1(0.0f);
  }
#pragma GCC unroll 4
  for (int64_t k = 0; k < kc; ++k) {
    const float* ak = a + k * k_step;
    VT b[kNv];
#pragma GCC unroll 8
    for (int v = 0; v < kNv; ++v) b[v] = Vec::load(bp + v * W);
#pragma GCC unroll 12
    for (int i = 0; i < kMr; ++i) {
      const VT x = Vec::set1(ak[off[i]]);
#pragma GCC unroll 8
      for (int v = 0; v < kNv; ++v) acc[i][v] = Vec::fma(x, b[v], acc[i][v]);
    }
    bp += kNr;
  }
#pragma GCC unroll 12
  for (int i = 0; i < kMr; ++i) {
    if (!kFull && i >= m) break;
    float* row = c + i * ldc;
#pragma GCC unroll 8
    for (int v = 0; v < kNv; ++v) {
      const int64_t cols = n - v * W;
      if (cols >= W) {
        VT r = acc[i][v];
        if (accumulate) r = Vec::add(r, Vec::load(row + v * W));
        Vec::store(row + v * W, r);
      } else if (cols > 0) {
        VT r = acc[i][v];
        if (accumulate) r = Vec::add(r, Vec::load_part(row + v * W, cols, 0.0f));
        Vec::store_part(row + v * W, r, cols);
      }
    }
  }
}

template <bool kKMajor>
inline void micro(int64_t kc, const float* a, int64_t lda, const float* bp, float* c, int64_t ldc, int m, int n,
                  bool accumulate) {
  if (m == kMr) {
    micro_body<kKMajor, true>(kc, a, lda, bp, c, ldc, m, n, accumulate);
  } else {
    micro_body<kKMajor, false>(kc, a, lda, bp, c, ldc, m, n, accumulate);
  }
}

// C (m x n, row stride ldc) (+)= A (m x kc) @ B (kc x n), B given as packed slivers (sliver g
// at bp + g * b_sliver, already offset to the first row used). A as in micro_body.
template <bool kKMajor>
void product(int64_t m, int64_t n, int64_t kc, const float* a, int64_t lda, const float* bp, int64_t b_sliver,
             float* c, int64_t ldc, bool accumulate) {
  for (int64_t g = 0; g * kNr < n; ++g) {
    const int cols = static_cast<int>(std::min<int64_t>(kNr, n - g * kNr));
    for (int64_t i0 = 0; i0 < m; i0 += kMr) {
      const int rows = static_cast<int>(std::min<int64_t>(kMr, m - i0));
      const float* ai = kKMajor ? a + i0 : a + i0 * lda;
      micro<kKMajor>(kc, ai, lda, bp + g * b_sliver, c + i0 * ldc + g * kNr, ldc, rows, cols, accumulate);
    }
  }
}

// ---- row helpers --------------------------------------------------------------------------

// s[j] = s[j] * scale (+ mask[j]) for j < n; returns the largest.
inline float scale_mask_max(float* s, const float* mask, int64_t n, float scale) {
  const VT vs = Vec::set1(scale);
  VT mx = Vec::set1(kNegInf);
  int64_t j = 0;
  for (; j + W <= n; j += W) {
    VT x = Vec::mul(Vec::load(s + j), vs);
    if (mask != nullptr) x = Vec::add(x, Vec::load(mask + j));
    Vec::store(s + j, x);
    mx = Vec::max(mx, x);
  }
  if (j < n) {
    VT x = Vec::mul(Vec::load_part(s + j, n - j, 0.0f), vs);
    if (mask != nullptr) x = Vec::add(x, Vec::load_part(mask + j, n - j, 0.0f));
    Vec::store_part(s + j, x, n - j);
    mx = Vec::max(mx, Vec::load_part(s + j, n - j, kNegInf));  // only the stored lanes count
  }
  return Vec::hmax(mx);
}

// The largest of s[0:n].
inline float row_max(const float* s, int64_t n) {
  VT mx = Vec::set1(kNegInf);
  int64_t j = 0;
  for (; j + W <= n; j += W) mx = Vec::max(mx, Vec::load(s + j));
  if (j < n) mx = Vec::max(mx, Vec::load_part(s + j, n - j, kNegInf));
  return Vec::hmax(mx);
}

// s[j] = 2^(s[j] * mul - sub) for j < n (exp(s * scale - mx) with mul = scale log2(e) and
// sub = mx log2(e)); returns their sum.
inline float exp_sum(float* s, int64_t n, float mul, float sub) {
  const VT vmul = Vec::set1(mul);
  const VT vsub = Vec::set1(-sub);
  VT sum = Vec::set1(0.0f);
  int64_t j = 0;
  for (; j + W <= n; j += W) {
    const VT e = vexp2_nonpos(Vec::fma(Vec::load(s + j), vmul, vsub));
    Vec::store(s + j, e);
    sum = Vec::add(sum, e);
  }
  if (j < n) {
    const VT e = vexp2_nonpos(Vec::fma(Vec::load_part(s + j, n - j, kNegInf), vmul, vsub));  // 2^-inf = 0
    Vec::store_part(s + j, e, n - j);
    sum = Vec::add(sum, e);
  }
  return Vec::hsum(sum);
}

inline void scale_row(float* x, int64_t n, float f) {
  const VT vf = Vec::set1(f);
  int64_t j = 0;
  for (; j + W <= n; j += W) Vec::store(x + j, Vec::mul(Vec::load(x + j), vf));
  if (j < n) Vec::store_part(x + j, Vec::mul(Vec::load_part(x + j, n - j, 0.0f), vf), n - j);
}

inline float dot(const float* a, const float* b, int64_t n) {
  VT acc = Vec::set1(0.0f);
  int64_t j = 0;
  for (; j + W <= n; j += W) acc = Vec::fma(Vec::load(a + j), Vec::load(b + j), acc);
  if (j < n) acc = Vec::fma(Vec::load_part(a + j, n - j, 0.0f), Vec::load_part(b + j, n - j, 0.0f), acc);
  return Vec::hsum(acc);
}

// Backward, one row of a tile: p[j] = exp(s[j] * scale + mask[j] - lse) (the probability) and
// ds[j] = p[j] * (ds[j] - d) * scale (ds holds dP on entry), for j < n.
inline void probs_and_grads(float* s, float* ds, const float* mask, int64_t n, float scale, float lse, float d) {
  // 2^(x log2(e) - lse log2(e)) with x = s * scale (+ mask); without a mask one fma does it all.
  const VT vmul = Vec::set1(mask == nullptr ? scale * kLog2e : kLog2e);
  const VT vs = Vec::set1(scale);
  const VT vl = Vec::set1(-lse * kLog2e);
  const VT vd = Vec::set1(d);
  int64_t j = 0;
  for (; j + W <= n; j += W) {
    VT x = Vec::load(s + j);
    if (mask != nullptr) x = Vec::fma(x, vs, Vec::load(mask + j));
    const VT p = vexp2_nonpos(Vec::fma(x, vmul, vl));
    Vec::store(s + j, p);
    Vec::store(ds + j, Vec::mul(Vec::mul(p, Vec::sub(Vec::load(ds + j), vd)), vs));
  }
  if (j < n) {
    const int64_t r = n - j;
    VT x = Vec::load_part(s + j, r, 0.0f);
    if (mask != nullptr) x = Vec::fma(x, vs, Vec::load_part(mask + j, r, 0.0f));
    const VT p = vexp2_nonpos(Vec::fma(x, vmul, vl));
    Vec::store_part(s + j, p, r);
    Vec::store_part(ds + j, Vec::mul(Vec::mul(p, Vec::sub(Vec::load_part(ds + j, r, 0.0f), vd)), vs), r);
  }
}

inline void zero(float* x, int64_t n) {
  if (n > 0) std::memset(x, 0, static_cast<size_t>(n) * sizeof(float));
}

// The keys [k0, k0 + n) of query row qi of batch b in the mask, or null without a mask.
inline const float* mask_row(const AttnProblem& p, int64_t b, int64_t qi, int64_t k0) {
  if (p.mask == nullptr) return nullptr;
  const int64_t mb = p.mask_batch == 1 ? 0 : b;
  const int64_t mr = p.mask_rows == 1 ? 0 : qi;
  return p.mask + (mb * p.mask_rows + mr) * p.s + k0;
}

// Keys of a tile that row qi may see: all n, or those up to its diagonal when causal.
inline int64_t visible(const AttnProblem& p, int64_t qi, int64_t k0, int64_t n) {
  return p.causal ? std::max<int64_t>(0, std::min(n, qi - k0 + 1)) : n;
}

// ---- forward ------------------------------------------------------------------------------

size_t forward_work(const AttnProblem& p) {
  return static_cast<size_t>(padded(p.s) * p.e + padded(p.ev) * p.s + kBq * kBk + 2 * kBq);
}

// Query rows [q0, q0 + rows) of batch b; kt and vp are the batch's packed K^T and V.
void forward_tile(const AttnProblem& p, int64_t b, int64_t q0, int64_t rows, const float* kt, const float* vp,
                  float* sbuf, float* mrow, float* lrow, float* out, float* lse) {
  const float* q = p.q + (b * p.l + q0) * p.e;
  float* o = out + (b * p.l + q0) * p.ev;
  zero(o, rows * p.ev);
  std::fill(mrow, mrow + rows, kNegInf);
  std::fill(lrow, lrow + rows, 0.0f);
  // Causal: keys past the last row's diagonal are masked for every row of the tile.
  const int64_t k_end = p.causal ? std::min(p.s, q0 + rows) : p.s;
  for (int64_t k0 = 0; k0 < k_end; k0 += kBk) {
    const int64_t nk = std::min(kBk, k_end - k0);
    product<false>(rows, nk, p.e, q, p.e, kt + k0 * p.e, kNr * p.e, sbuf, kBk, false);
    for (int64_t r = 0; r < rows; ++r) {
      float* s = sbuf + r * kBk;
      const int64_t n = visible(p, q0 + r, k0, nk);
      const float* mk = mask_row(p, b, q0 + r, k0);
      // Without a mask (and scale > 0) the scale rides in exp's argument: one pass less.
      const bool plain = mk == nullptr && p.scale > 0.0f;
      float mx = kNegInf;
      if (n > 0) mx = plain ? row_max(s, n) * p.scale : scale_mask_max(s, mk, n, p.scale);
      const float m_new = std::max(mrow[r], mx);
      if (m_new == kNegInf) {  // nothing visible yet: this tile adds nothing to the row
        zero(s, nk);
        continue;
      }
      const float sum = exp_sum(s, n, (plain ? p.scale : 1.0f) * kLog2e, m_new * kLog2e);
      zero(s + n, nk - n);
      if (m_new != mrow[r]) {  // the running max grew: rescale what the row holds so far
        const float alpha = std::exp(mrow[r] - m_new);  // 0 when the row had nothing before
        scale_row(o + r * p.ev, p.ev, alpha);
        lrow[r] *= alpha;
      }
      lrow[r] += sum;
      mrow[r] = m_new;
    }
    product<false>(rows, p.ev, nk, sbuf, kBk, vp + k0 * kNr, kNr * p.s, o, p.ev, true);
  }
  float* lse_rows = lse + b * p.l + q0;
  for (int64_t r = 0; r < rows; ++r) {
    if (lrow[r] > 0.0f) {
      scale_row(o + r * p.ev, p.ev, 1.0f / lrow[r]);
      lse_rows[r] = mrow[r] + std::log(lrow[r]);
    } else {  // a fully masked row: out stays 0
      lse_rows[r] = kNegInf;
    }
  }
}

void forward_task(const AttnProblem& p, int64_t b, int64_t chunk, int64_t chunks, float* out, float* lse,
                  float* work) {
  float* kt = work;
  float* vp = kt + padded(p.s) * p.e;
  float* sbuf = vp + padded(p.ev) * p.s;
  float* mrow = sbuf + kBq * kBk;
  float* lrow = mrow + kBq;
  pack_rows(p.k + b * p.s * p.e, p.s, p.e, kt);
  pack_cols(p.v + b * p.s * p.ev, p.s, p.ev, vp);
  const int64_t tiles = (p.l + kBq - 1) / kBq;
  for (int64_t t = chunk; t < tiles; t += chunks) {
    const int64_t q0 = t * kBq;
    forward_tile(p, b, q0, std::min(kBq, p.l - q0), kt, vp, sbuf, mrow, lrow, out, lse);
  }
}

// ---- backward -----------------------------------------------------------------------------

size_t backward_work(const AttnProblem& p) {
  return static_cast<size_t>(padded(p.s) * (p.e + p.ev) + padded(p.e) * (p.s + p.l) + padded(p.ev) * p.l +
                             2 * kBq * kBk + p.l);
}

void backward_task(const AttnProblem& p, const AttnGrads& g, int64_t b, int64_t chunk, int64_t chunks,
                   float* gq, float* work) {
  const int64_t L = p.l, S = p.s, E = p.e, Ev = p.ev;
  const float* q = p.q + b * L * E;
  const float* go = g.gout + b * L * Ev;
  const float* o = g.out + b * L * Ev;
  const float* lse = g.lse + b * L;
  float* gk = g.gk + b * S * E;
  float* gv = g.gv + b * S * Ev;
  // Packed operands: K^T and V^T (for the scores and dP), K (dQ), Q (dK) and gout (dV).
  float* kt = work;
  float* vt = kt + padded(S) * E;
  float* kn = vt + padded(S) * Ev;
  float* qn = kn + padded(E) * S;
  float* gon = qn + padded(E) * L;
  float* sbuf = gon + padded(Ev) * L;
  float* dpbuf = sbuf + kBq * kBk;
  float* drow = dpbuf + kBq * kBk;
  pack_rows(p.k + b * S * E, S, E, kt);
  pack_rows(p.v + b * S * Ev, S, Ev, vt);
  pack_cols(p.k + b * S * E, S, E, kn);
  pack_cols(q, L, E, qn);
  pack_cols(go, L, Ev, gon);
  for (int64_t i = 0; i < L; ++i) drow[i] = dot(go + i * Ev, o + i * Ev, Ev);  // rowsum(dO * O)
  zero(gq, L * E);
  const int64_t k_tiles = (S + kBk - 1) / kBk;
  for (int64_t t = chunk; t < k_tiles; t += chunks) {
    const int64_t k0 = t * kBk;
    const int64_t nk = std::min(kBk, S - k0);
    zero(gk + k0 * E, nk * E);
    zero(gv + k0 * Ev, nk * Ev);
    // Causal: queries before k0 see none of these keys.
    for (int64_t q0 = p.causal ? k0 : 0; q0 < L; q0 += kBq) {
      const int64_t rows = std::min(kBq, L - q0);
      const int64_t n = p.causal ? std::min(nk, q0 + rows - k0) : nk;  // keys any row of the tile sees
      product<false>(rows, n, E, q + q0 * E, E, kt + k0 * E, kNr * E, sbuf, kBk, false);
      product<false>(rows, n, Ev, go + q0 * Ev, Ev, vt + k0 * Ev, kNr * Ev, dpbuf, kBk, false);
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t qi = q0 + r;
        float* s = sbuf + r * kBk;
        float* ds = dpbuf + r * kBk;
        const int64_t seen = lse[qi] == kNegInf ? 0 : visible(p, qi, k0, n);
        probs_and_grads(s, ds, mask_row(p, b, qi, k0), seen, p.scale, lse[qi], drow[qi]);
        zero(s + seen, n - seen);
        zero(ds + seen, n - seen);
      }
      // dV[k0:] += P^T dO,  dK[k0:] += dS^T Q,  dQ[q0:] += dS K[k0:]
      product<true>(n, Ev, rows, sbuf, kBk, gon + q0 * kNr, kNr * L, gv + k0 * Ev, Ev, true);
      product<true>(n, E, rows, dpbuf, kBk, qn + q0 * kNr, kNr * L, gk + k0 * E, E, true);
      product<false>(rows, E, n, dpbuf, kBk, kn + k0 * kNr, kNr * S, gq + q0 * E, E, true);
    }
  }
}

}  // namespace
}  // namespace cpu
}  // namespace tg
