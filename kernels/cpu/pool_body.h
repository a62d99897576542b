// Bodies of the max / average pooling kernels, written once on the Vec of the including
// ISA file (vec.h) and exported by it as a PoolKernels table. Serial: pool.cpp splits the
// work across OpenMP threads.
//
// One output row at a time. Its output columns split into an interior, where every tap of
// the window lies inside the image row (and, for stride 2, one float past the last tap
// too: a deinterleaving load reads it), and the borders. The interior runs W outputs per
// vector when the column stride is 1 or 2 (the strides of nearly every network); the
// borders and other strides take the scalar path, which checks each tap. Each vector lane
// keeps its running maximum and, as a float, the flat index of that maximum in the input
// plane (exact below 2^24 cells; bigger planes use the scalar path throughout).
//
// Include it after the file's `#pragma GCC target` and after every standard header, with
// one TG_VEC_* defined (see nn_body.h for why).
#pragma once

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

#include <algorithm>
#include <cmath>

#include "pool_internal.h"
#include "tg_cpu.h"
#include "vec.h"

namespace tg {
namespace cpu {
namespace {

using VT = Vec::T;
using VM = Vec::M;
constexpr int kW = Vec::W;
constexpr int64_t kMaxExactIndex = int64_t{1} << 24;  // float lanes hold plane indices below this

// ---- the few operations pooling needs beyond vec.h ---------------------------------------
// wins(v, m): v replaces the running maximum m: v > m, or v is NaN (PyTorch's rule).
// load_s2(p): p[0], p[2], ..., p[2W - 2] (reads up to p[2W - 1]).
// add_s2(p, g): p[2l] += g[l] for every lane l (touches p[0 .. 2W - 1], adding 0 to the odd ones).
// store_index(out, v): out[l] = int64(v[l]).
#if defined(TG_VEC_AVX2)
inline VM wins(VT v, VT m) {
  return _mm256_or_ps(_mm256_cmp_ps(v, m, _CMP_GT_OQ), _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
}
inline VT load_s2(const float* p) {
  const __m256 e = _mm256_shuffle_ps(_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8), _MM_SHUFFLE(2, 0, 2, 0));
  // e = a0 a2 b0 b2 | a4 a6 b4 b6: put the 64-bit pairs in order
  return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(e), _MM_SHUFFLE(3, 1, 2, 0)));
}
inline void add_s2(float* p, VT g) {
  const __m256 zero = _mm256_setzero_ps();
  const __m256 lo = _mm256_unpacklo_ps(g, zero);  // g0 0 g1 0 | g4 0 g5 0
  const __m256 hi = _mm256_unpackhi_ps(g, zero);  // g2 0 g3 0 | g6 0 g7 0
  _mm256_storeu_ps(p, _mm256_add_ps(_mm256_loadu_ps(p), _mm256_permute2f128_ps(lo, hi, 0x20)));
  _mm256_storeu_ps(p + 8, _mm256_add_ps(_mm256_loadu_ps(p + 8), _mm256_permute2f128_ps(lo, hi, 0x31)));
}
inline void store_index(int64_t* out, VT v) {
  const __m256i i = _mm256_cvttps_epi32(v);
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), _mm256_cvtepi32_epi64(_mm256_castsi256_si128(i)));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + 4), _mm256_cvtepi32_epi64(_mm256_extracti128_si256(i, 1)));
}
#elif defined(TG_VEC_AVX512)
inline VM wins(VT v, VT m) {
  return static_cast<VM>(_mm512_cmp_ps_mask(v, m, _CMP_GT_OQ) | _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q));
}
inline VT load_s2(const float* p) {
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  return _mm512_permutex2var_ps(_mm512_loadu_ps(p), even, _mm512_loadu_ps(p + 16));
}
inline void add_s2(float* p, VT g) {
  const __m512 zero = _mm512_setzero_ps();
  const __m512i lo = _mm512_setr_epi32(0, 16, 1, 16, 2, 16, 3, 16, 4, 16, 5, 16, 6, 16, 7, 16);
  const __m512i hi = _mm512_setr_epi32(8, 16, 9, 16, 10, 16, 11, 16, 12, 16, 13, 16, 14, 16, 15, 16);
  _mm512_storeu_ps(p, _mm512_add_ps(_mm512_loadu_ps(p), _mm512_permutex2var_ps(g, lo, zero)));
  _mm512_storeu_ps(p + 16, _mm512_add_ps(_mm512_loadu_ps(p + 16), _mm512_permutex2var_ps(g, hi, zero)));
}
inline void store_index(int64_t* out, VT v) {
  const __m512i i = _mm512_cvttps_epi32(v);
  _mm512_storeu_si512(out, _mm512_cvtepi32_epi64(_mm512_castsi512_si256(i)));
  _mm512_storeu_si512(out + 8, _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(i, 1)));
}
#else
inline VM wins(VT v, VT m) { return v > m || v != v; }
inline VT load_s2(const float* p) { return *p; }
inline void add_s2(float* p, VT g) { *p += g; }
inline void store_index(int64_t* out, VT v) { *out = static_cast<int64_t>(v); }
#endif

template <int S>
inline VT load_s(const float* p) {
  return S == 1 ? Vec::load(p) : load_s2(p);
}

template <int S>
inline void add_s(float* p, VT g) {
  if (S == 1) {
    Vec::store(p, Vec::add(Vec::load(p), g));
  } else {
    add_s2(p, g);
  }
}

// lane l holds l * step
inline VT iota(float step) {
  alignas(64) float lanes[kW];
  for (int l = 0; l < kW; ++l) lanes[l] = static_cast<float>(l) * step;
  return Vec::load(lanes);
}

// ---- geometry ---------------------------------------------------------------------------

// The taps t in [0, k) whose position start + t * d lies in [0, size): [*t0, *t1).
inline void valid_taps(int64_t start, int64_t k, int64_t d, int64_t size, int64_t* t0, int64_t* t1) {
  if (d == 1) {  // no division: the common case, run for every border output
    *t0 = std::min(k, std::max<int64_t>(0, -start));
    *t1 = std::max(*t0, std::min(k, size - start));
    return;
  }
  const int64_t a = start < 0 ? std::min(k, (-start + d - 1) / d) : 0;
  const int64_t b = start > size - 1 ? 0 : std::min(k, (size - 1 - start) / d + 1);
  *t0 = a;
  *t1 = std::max(a, b);
}

// The output columns [lo, hi) that a vector may cover with column stride S: every tap
// inside the row, and for S = 2 the float after the last tap too.
struct Interior {
  int64_t lo, hi;
};

inline Interior interior_cols(const Pool2dGeom& g, int64_t dw) {
  const int64_t lo = (g.pw + g.sw - 1) / g.sw;
  const int64_t num = g.w - g.sw + g.pw - (g.kw - 1) * dw;  // last ow: ow * sw <= num
  const int64_t hi = num >= 0 ? std::min(g.ow, num / g.sw + 1) : 0;
  return Interior{std::min(lo, hi), hi};
}

// The divisor of average window (oh, ow) (see AvgPoolDivisor in tg_cpu.h).
inline float avg_divisor(int64_t oh, int64_t ow, const Pool2dGeom& g, AvgPoolDivisor d) {
  if (d.divisor_override > 0) return static_cast<float>(d.divisor_override);
  const int64_t hs = oh * g.sh - g.ph;
  const int64_t ws = ow * g.sw - g.pw;
  const int64_t he = std::min(hs + g.kh, g.h + g.ph);
  const int64_t we = std::min(ws + g.kw, g.w + g.pw);
  if (d.count_include_pad) return static_cast<float>((he - hs) * (we - ws));
  const int64_t rows = std::max<int64_t>(0, std::min(he, g.h) - std::max<int64_t>(hs, 0));
  const int64_t cols = std::max<int64_t>(0, std::min(we, g.w) - std::max<int64_t>(ws, 0));
  return static_cast<float>(rows * cols);
}

// ---- max pooling --------------------------------------------------------------------------

// One output of max pooling, checking every tap.
inline void max_one(const float* xp, float* y, int64_t* arg, int64_t ih0, int64_t i0, int64_t i1, int64_t ow,
                    const Pool2dGeom& g) {
  const int64_t iw0 = ow * g.sw - g.pw;
  int64_t j0, j1;
  valid_taps(iw0, g.kw, g.dw, g.w, &j0, &j1);
  float m = -INFINITY;
  int64_t a = (ih0 + i0 * g.dh) * g.w + iw0 + j0 * g.dw;  // the first tap inside, as PyTorch
  for (int64_t i = i0; i < i1; ++i) {
    const int64_t base = (ih0 + i * g.dh) * g.w;
    for (int64_t j = j0; j < j1; ++j) {
      const int64_t idx = base + iw0 + j * g.dw;
      const float v = xp[idx];
      if (v > m || v != v) {
        m = v;
        a = idx;
      }
    }
  }
  y[ow] = m;
  arg[ow] = a;
}

// W interior outputs from column ow0 of max pooling with column stride S.
template <int S>
inline void max_block(const float* xp, float* y, int64_t* arg, int64_t ih0, int64_t i0, int64_t i1, int64_t ow0,
                      VT lane_offsets, const Pool2dGeom& g) {
  const int64_t col0 = ow0 * S - g.pw;  // input column of tap j = 0 in lane 0
  VT m = Vec::set1(-INFINITY);
  VT a = Vec::add(Vec::set1(static_cast<float>((ih0 + i0 * g.dh) * g.w + col0)), lane_offsets);
  const VT step = Vec::set1(static_cast<float>(g.dw));
  for (int64_t i = i0; i < i1; ++i) {
    const float* row = xp + (ih0 + i * g.dh) * g.w + col0;
    VT idx = Vec::add(Vec::set1(static_cast<float>((ih0 + i * g.dh) * g.w + col0)), lane_offsets);
    for (int64_t j = 0; j < g.kw; ++j, idx = Vec::add(idx, step)) {
      const VT v = load_s<S>(row + j * g.dw);
      const VM better = wins(v, m);
      m = Vec::select(better, v, m);
      a = Vec::select(better, idx, a);
    }
  }
  Vec::store(y + ow0, m);
  store_index(arg + ow0, a);
}

template <int S>
void max_rows_vec(const float* x, float* y, int64_t* arg, int64_t r0, int64_t r1, const Pool2dGeom& g) {
  const Interior in = interior_cols(g, g.dw);
  const VT lane_offsets = iota(static_cast<float>(S));
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t plane = r / g.oh;
    const int64_t ih0 = (r % g.oh) * g.sh - g.ph;
    const float* xp = x + plane * g.h * g.w;
    float* yr = y + r * g.ow;
    int64_t* ar = arg + r * g.ow;
    int64_t i0, i1;
    valid_taps(ih0, g.kh, g.dh, g.h, &i0, &i1);
    int64_t ow = 0;
    for (; ow < in.lo; ++ow) max_one(xp, yr, ar, ih0, i0, i1, ow, g);
    for (; ow + kW <= in.hi; ow += kW) max_block<S>(xp, yr, ar, ih0, i0, i1, ow, lane_offsets, g);
    if (ow < in.hi && in.hi - in.lo >= kW) {  // the last interior outputs: one block overlapping the previous
      max_block<S>(xp, yr, ar, ih0, i0, i1, in.hi - kW, lane_offsets, g);
      ow = in.hi;
    }
    for (; ow < g.ow; ++ow) max_one(xp, yr, ar, ih0, i0, i1, ow, g);
  }
}

void max_rows(const float* x, float* y, int64_t* arg, int64_t r0, int64_t r1, const Pool2dGeom& g) {
  const bool vector = kW > 1 && g.h * g.w <= kMaxExactIndex;
  if (vector && g.sw == 1) return max_rows_vec<1>(x, y, arg, r0, r1, g);
  if (vector && g.sw == 2) return max_rows_vec<2>(x, y, arg, r0, r1, g);
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t ih0 = (r % g.oh) * g.sh - g.ph;
    int64_t i0, i1;
    valid_taps(ih0, g.kh, g.dh, g.h, &i0, &i1);
    for (int64_t ow = 0; ow < g.ow; ++ow) {
      max_one(x + (r / g.oh) * g.h * g.w, y + r * g.ow, arg + r * g.ow, ih0, i0, i1, ow, g);
    }
  }
}

// ---- average pooling ----------------------------------------------------------------------

inline void avg_one(const float* xp, float* y, int64_t oh, int64_t ih0, int64_t i0, int64_t i1, int64_t ow,
                    const Pool2dGeom& g, AvgPoolDivisor d) {
  const int64_t iw0 = ow * g.sw - g.pw;
  int64_t j0, j1;
  valid_taps(iw0, g.kw, 1, g.w, &j0, &j1);
  float s = 0.0f;
  for (int64_t i = i0; i < i1; ++i) {
    const float* row = xp + (ih0 + i) * g.w + iw0;
    for (int64_t j = j0; j < j1; ++j) s += row[j];
  }
  y[ow] = s / avg_divisor(oh, ow, g, d);
}

template <int S>
void avg_rows_impl(const float* x, float* y, int64_t r0, int64_t r1, const Pool2dGeom& g, AvgPoolDivisor d) {
  const Interior in = interior_cols(g, 1);
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t oh = r % g.oh;
    const int64_t ih0 = oh * g.sh - g.ph;
    const float* xp = x + (r / g.oh) * g.h * g.w;
    float* yr = y + r * g.ow;
    int64_t i0, i1;
    valid_taps(ih0, g.kh, 1, g.h, &i0, &i1);
    int64_t ow = 0;
    if (S > 0) {
      for (; ow < in.lo; ++ow) avg_one(xp, yr, oh, ih0, i0, i1, ow, g, d);
      // every interior window has the same divisor along the row
      const VT div = Vec::set1(in.lo < in.hi ? avg_divisor(oh, in.lo, g, d) : 1.0f);
      auto block = [&](int64_t ow0) {
        VT s = Vec::set1(0.0f);
        for (int64_t i = i0; i < i1; ++i) {
          const float* row = xp + (ih0 + i) * g.w + ow0 * S - g.pw;
          for (int64_t j = 0; j < g.kw; ++j) s = Vec::add(s, load_s<S>(row + j));
        }
        Vec::store(yr + ow0, Vec::div(s, div));
      };
      for (; ow + kW <= in.hi; ow += kW) block(ow);
      if (ow < in.hi && in.hi - in.lo >= kW) {  // one block overlapping the previous (it rewrites equal values)
        block(in.hi - kW);
        ow = in.hi;
      }
    }
    for (; ow < g.ow; ++ow) avg_one(xp, yr, oh, ih0, i0, i1, ow, g, d);
  }
}

void avg_rows(const float* x, float* y, int64_t r0, int64_t r1, const Pool2dGeom& g, AvgPoolDivisor d) {
  if (kW > 1 && g.sw == 1) return avg_rows_impl<1>(x, y, r0, r1, g, d);
  if (kW > 1 && g.sw == 2) return avg_rows_impl<2>(x, y, r0, r1, g, d);
  avg_rows_impl<0>(x, y, r0, r1, g, d);  // scalar throughout
}

// gy / divisor of output (oh, ow) added to every cell of its window inside the image.
inline void avg_backward_one(float gy, float* gxp, int64_t oh, int64_t ih0, int64_t i0, int64_t i1, int64_t ow,
                             const Pool2dGeom& g, AvgPoolDivisor d) {
  const int64_t iw0 = ow * g.sw - g.pw;
  int64_t j0, j1;
  valid_taps(iw0, g.kw, 1, g.w, &j0, &j1);
  const float v = gy / avg_divisor(oh, ow, g, d);
  for (int64_t i = i0; i < i1; ++i) {
    float* row = gxp + (ih0 + i) * g.w + iw0;
    for (int64_t j = j0; j < j1; ++j) row[j] += v;
  }
}

template <int S>
void avg_backward_impl(const float* gy, float* gx, int64_t p0, int64_t p1, const Pool2dGeom& g,
                       AvgPoolDivisor d) {
  const Interior in = interior_cols(g, 1);
  for (int64_t p = p0; p < p1; ++p) {
    float* gxp = gx + p * g.h * g.w;
    std::fill(gxp, gxp + g.h * g.w, 0.0f);
    for (int64_t oh = 0; oh < g.oh; ++oh) {
      const float* gyr = gy + (p * g.oh + oh) * g.ow;
      const int64_t ih0 = oh * g.sh - g.ph;
      int64_t i0, i1;
      valid_taps(ih0, g.kh, 1, g.h, &i0, &i1);
      int64_t ow = 0;
      if (S > 0) {
        for (; ow < in.lo; ++ow) avg_backward_one(gyr[ow], gxp, oh, ih0, i0, i1, ow, g, d);
        const VT div = Vec::set1(in.lo < in.hi ? avg_divisor(oh, in.lo, g, d) : 1.0f);
        for (; ow + kW <= in.hi; ow += kW) {
          const VT v = Vec::div(Vec::load(gyr + ow), div);
          for (int64_t i = i0; i < i1; ++i) {
            float* row = gxp + (ih0 + i) * g.w + ow * S - g.pw;
            for (int64_t j = 0; j < g.kw; ++j) add_s<S>(row + j, v);
          }
        }
      }
      for (; ow < g.ow; ++ow) avg_backward_one(gyr[ow], gxp, oh, ih0, i0, i1, ow, g, d);
    }
  }
}

void avg_backward_planes(const float* gy, float* gx, int64_t p0, int64_t p1, const Pool2dGeom& g,
                         AvgPoolDivisor d) {
  if (kW > 1 && g.sw == 1) return avg_backward_impl<1>(gy, gx, p0, p1, g, d);
  if (kW > 1 && g.sw == 2) return avg_backward_impl<2>(gy, gx, p0, p1, g, d);
  avg_backward_impl<0>(gy, gx, p0, p1, g, d);
}

}  // namespace
}  // namespace cpu
}  // namespace tg
