// Bodies of the fused cross-entropy kernels, written once on the Vec of the including ISA
// file (vec.h) and exported by it as a LossKernels table. Serial: loss.cpp splits the rows
// across OpenMP threads.
//
// Forward: two passes over a row that stays in L1 (max, and the sum of x or of w * x that
// label smoothing needs; then the sum of exp(x - max)), so exp runs once per logit and the
// only outputs are two floats per row. Backward: one pass, exp(x - lse) times a per-row
// coefficient, minus the smoothed one-hot. Row scalars are combined in double.
//
// Include it after the file's `#pragma GCC target` and after every standard header, with
// one TG_VEC_* defined (see nn_body.h for why).
#pragma once

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

#include <algorithm>
#include <cmath>

#include "loss_internal.h"
#include "vmath.h"

namespace tg {
namespace cpu {
namespace {

constexpr int kW = Vec::W;

// Full vector at p, or its first n (< kW) lanes with `fill` in the others.
inline VT load_n(const float* p, int64_t n, float fill) {
  return n == kW ? Vec::load(p) : Vec::load_part(p, n, fill);
}

// max_c x[c], and sum_c x[c] (w == nullptr) or sum_c w[c] x[c] when `with_sum`.
inline void row_max_sum(const float* x, const float* w, int64_t c, bool with_sum, float* mx, float* sum) {
  VT m0 = Vec::set1(-INFINITY), m1 = m0;
  VT s0 = Vec::set1(0.0f), s1 = s0;
  int64_t i = 0;
  for (; i + 2 * kW <= c; i += 2 * kW) {
    const VT a = Vec::load(x + i);
    const VT b = Vec::load(x + i + kW);
    m0 = Vec::max(m0, a);
    m1 = Vec::max(m1, b);
    if (with_sum) {
      s0 = w ? Vec::fma(a, Vec::load(w + i), s0) : Vec::add(s0, a);
      s1 = w ? Vec::fma(b, Vec::load(w + i + kW), s1) : Vec::add(s1, b);
    }
  }
  for (; i < c; i += kW) {
    const int64_t n = std::min<int64_t>(kW, c - i);
    m0 = Vec::max(m0, load_n(x + i, n, -INFINITY));
    if (with_sum) {
      const VT a = load_n(x + i, n, 0.0f);
      s0 = w ? Vec::fma(a, load_n(w + i, n, 0.0f), s0) : Vec::add(s0, a);
    }
  }
  *mx = Vec::hmax(Vec::max(m0, m1));
  *sum = Vec::hsum(Vec::add(s0, s1));
}

// sum_c exp(x[c] - mx)
inline float row_exp_sum(const float* x, int64_t c, float mx) {
  const VT vm = Vec::set1(mx);
  VT e0 = Vec::set1(0.0f), e1 = e0;
  int64_t i = 0;
  for (; i + 2 * kW <= c; i += 2 * kW) {
    e0 = Vec::add(e0, vexp(Vec::sub(Vec::load(x + i), vm)));
    e1 = Vec::add(e1, vexp(Vec::sub(Vec::load(x + i + kW), vm)));
  }
  for (; i < c; i += kW) {
    e0 = Vec::add(e0, vexp(Vec::sub(load_n(x + i, std::min<int64_t>(kW, c - i), -INFINITY), vm)));  // exp(-inf) = 0
  }
  return Vec::hsum(Vec::add(e0, e1));
}

void forward_rows(const float* x, const int64_t* t, const float* w, float* loss, float* lse, int64_t rows,
                  int64_t c, int64_t ignore_index, float eps, double wsum) {
  const bool smooth = eps > 0.0f;
  for (int64_t r = 0; r < rows; ++r, x += c) {
    float mx, sum;
    row_max_sum(x, w, c, smooth, &mx, &sum);
    const double l = static_cast<double>(mx) + std::log(static_cast<double>(row_exp_sum(x, c, mx)));
    lse[r] = static_cast<float>(l);
    const int64_t target = t[r];
    if (target == ignore_index) {
      loss[r] = 0.0f;
      continue;
    }
    const double wt = w ? w[target] : 1.0;
    double out = (1.0 - eps) * wt * (l - x[target]);
    if (smooth) out += static_cast<double>(eps) / c * (wsum * l - sum);  // eps/c sum_c w[c] (lse - x[c])
    loss[r] = static_cast<float>(out);
  }
}

void backward_rows(const float* x, const float* lse, const int64_t* t, const float* w, const float* grow,
                   float* gx, int64_t rows, int64_t c, int64_t ignore_index, float eps, double wsum) {
  for (int64_t r = 0; r < rows; ++r, x += c, gx += c) {
    const int64_t target = t[r];
    if (target == ignore_index) {
      std::fill(gx, gx + c, 0.0f);
      continue;
    }
    const double g = grow[r];
    const double wt = w ? w[target] : 1.0;
    // gx = p * a - b * w (w = 1 without weights), then the target's own (1 - eps) w[t] g
    const VT a = Vec::set1(static_cast<float>(g * ((1.0 - eps) * wt + eps / static_cast<double>(c) * wsum)));
    const VT b = Vec::set1(static_cast<float>(g * eps / static_cast<double>(c)));
    const VT vl = Vec::set1(lse[r]);
    int64_t i = 0;
    for (; i + kW <= c; i += kW) {
      const VT pa = Vec::mul(vexp(Vec::sub(Vec::load(x + i), vl)), a);
      Vec::store(gx + i, w ? Vec::fnma(b, Vec::load(w + i), pa) : Vec::sub(pa, b));
    }
    if (i < c) {
      const int64_t n = c - i;
      const VT pa = Vec::mul(vexp(Vec::sub(Vec::load_part(x + i, n, 0.0f), vl)), a);
      Vec::store_part(gx + i, w ? Vec::fnma(b, Vec::load_part(w + i, n, 0.0f), pa) : Vec::sub(pa, b), n);
    }
    gx[target] -= static_cast<float>(g * (1.0 - eps) * wt);
  }
}

}  // namespace
}  // namespace cpu
}  // namespace tg
