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
#include <vector>

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
inline void store_index(int64_t* out, VT v) {
  const __m512i i = _mm512_cvttps_epi32(v);
  _mm512_storeu_si512(out, _mm512_cvtepi32_epi64(_mm512_castsi512_si256(i)));
  _mm512_storeu_si512(out + 8, _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(i, 1)));
}
#else
inline VM wins(VT v, VT m) { return v > m || v != v; }
inline VT load_s2(const float* p) { return *p; }
inline void store_index(int64_t* out, VT v) { *out = static_cast<int64_t>(v); }
#endif

template <int S>
inline VT load_s(const float* p) {
  return S == 1 ? Vec::load(p) : load_s2(p);
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

// The input gradient of average pooling, separably: a window covers a product of rows and
// columns, so for each output row the contributions v = gy / divisor are first summed along
// the columns into a row buffer, and that buffer is then added to each input row the window
// spans (contiguous vector adds). The column sums are gathers, not scatters: with v spread
// out to u[ow * sw] (zeros between), column iw receives sum_j u[iw + pw - j] over the kw
// taps j -- kw vector loads per W columns, whatever the stride. (Scattering every output into
// every cell of its window instead makes each vector add read what the previous one just wrote
// at an offset, which stalls on store forwarding and ran 4x slower.)
inline void add_row(float* dst, const float* src, int64_t n) {
  int64_t i = 0;
  for (; i + kW <= n; i += kW) Vec::store(dst + i, Vec::add(Vec::load(dst + i), Vec::load(src + i)));
  if (i < n) {
    const VT sum = Vec::add(Vec::load_part(dst + i, n - i, 0.0f), Vec::load_part(src + i, n - i, 0.0f));
    Vec::store_part(dst + i, sum, n - i);
  }
}

// How many cells of window `o` along one dim the average divides by (avg_divisor's rule,
// which is a product of a row count and a column count unless divisor_override is set).
inline int64_t avg_count(int64_t o, int64_t size, int64_t k, int64_t s, int64_t p, bool include_pad) {
  const int64_t start = o * s - p;
  const int64_t end = std::min(start + k, size + p);
  if (include_pad) return end - start;
  return std::max<int64_t>(0, std::min(end, size) - std::max<int64_t>(start, 0));
}

void avg_backward_planes(const float* gy, float* gx, int64_t p0, int64_t p1, const Pool2dGeom& g,
                         AvgPoolDivisor d) {
  // scratch: the column counts (ow), gy / divisor of one output row (ow), its column sums (w),
  // and u, the row spread out by the stride, behind kw - 1 zeros and ahead of a vector of zeros
  const int64_t u_off = g.kw - 1;
  const int64_t u_len = u_off + std::max(g.w + g.pw, g.sw * g.ow) + kW;
  std::vector<float> scratch(static_cast<size_t>(2 * g.ow + g.w + u_len), 0.0f);
  float* col_count = scratch.data();
  float* v = col_count + g.ow;
  float* cols = v + g.ow;
  float* u = cols + g.w + u_off;
  const bool fixed = d.divisor_override > 0;
  for (int64_t ow = 0; ow < g.ow; ++ow) {
    col_count[ow] = fixed ? 1.0f : static_cast<float>(avg_count(ow, g.w, g.kw, g.sw, g.pw, d.count_include_pad));
  }
  for (int64_t p = p0; p < p1; ++p) {
    float* gxp = gx + p * g.h * g.w;
    std::fill(gxp, gxp + g.h * g.w, 0.0f);
    for (int64_t oh = 0; oh < g.oh; ++oh) {
      const int64_t ih0 = oh * g.sh - g.ph;
      int64_t i0, i1;
      valid_taps(ih0, g.kh, 1, g.h, &i0, &i1);
      if (i0 == i1) continue;
      // gy / (row count * column count): the divisor as avg_divisor computes it (exact products)
      const VT rows = Vec::set1(fixed ? static_cast<float>(d.divisor_override)
                                      : static_cast<float>(avg_count(oh, g.h, g.kh, g.sh, g.ph, d.count_include_pad)));
      const float* gyr = gy + (p * g.oh + oh) * g.ow;
      int64_t ow = 0;
      for (; ow + kW <= g.ow; ow += kW) {
        Vec::store(v + ow, Vec::div(Vec::load(gyr + ow), Vec::mul(rows, Vec::load(col_count + ow))));
      }
      if (ow < g.ow) {
        const int64_t n = g.ow - ow;
        Vec::store_part(v + ow, Vec::div(Vec::load_part(gyr + ow, n, 0.0f),
                                         Vec::mul(rows, Vec::load_part(col_count + ow, n, 1.0f))), n);
      }
      for (ow = 0; ow < g.ow; ++ow) u[ow * g.sw] = v[ow];  // the cells between stay 0
      for (int64_t iw = 0; iw < g.w; iw += kW) {
        const float* at = u + iw + g.pw;
        VT sum = Vec::load(at);
        for (int64_t j = 1; j < g.kw; ++j) sum = Vec::add(sum, Vec::load(at - j));
        if (iw + kW <= g.w) {
          Vec::store(cols + iw, sum);
        } else {
          Vec::store_part(cols + iw, sum, g.w - iw);
        }
      }
      for (int64_t i = i0; i < i1; ++i) add_row(gxp + (ih0 + i) * g.w, cols, g.w);
    }
  }
}

}  // namespace
}  // namespace cpu
}  // namespace tg
