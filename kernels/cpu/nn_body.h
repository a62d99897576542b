// Bodies of the softmax, activation and layer-norm kernels, written once on
// the Vec of the including ISA file (vec.h) and exported by it as an
// NnKernels table. Serial: the drivers in nn.cpp split the work across
// OpenMP threads. Every loop finishes its ragged tail with masked loads and
// stores (Vec::load_part / store_part), never touching memory past the end.
//
// Include it after the file's `#pragma GCC target` and after every standard
// header (those must keep their baseline-ISA code), with one TG_VEC_* defined.
#pragma once

// Internal functions pass vectors by value; their ABI never crosses this file.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

#include <cmath>

#include "cpu_internal.h"
#include "tg_cpu.h"
#include "vmath.h"

namespace tg {
namespace cpu {
namespace {

constexpr int W = Vec::W;
const float kNegInf = -INFINITY;

// ---- softmax / log_softmax over contiguous rows --------------------------------------

inline float row_max(const float* x, int64_t n) {
  VT m0 = Vec::set1(kNegInf), m1 = m0, m2 = m0, m3 = m0;
  int64_t i = 0;
  for (; i + 4 * W <= n; i += 4 * W) {
    m0 = Vec::max(m0, Vec::load(x + i));
    m1 = Vec::max(m1, Vec::load(x + i + W));
    m2 = Vec::max(m2, Vec::load(x + i + 2 * W));
    m3 = Vec::max(m3, Vec::load(x + i + 3 * W));
  }
  for (; i + W <= n; i += W) m0 = Vec::max(m0, Vec::load(x + i));
  if (i < n) m1 = Vec::max(m1, Vec::load_part(x + i, n - i, kNegInf));
  return Vec::hmax(Vec::max(Vec::max(m0, m1), Vec::max(m2, m3)));
}

// Sum of exp(x - mx); when y is given, the exponentials are stored there too.
inline float row_exp_sum(const float* x, float* y, int64_t n, float mx) {
  const VT vm = Vec::set1(mx);
  VT s0 = Vec::set1(0.0f), s1 = s0, s2 = s0, s3 = s0;
  int64_t i = 0;
  for (; i + 4 * W <= n; i += 4 * W) {
    const VT e0 = vexp(Vec::sub(Vec::load(x + i), vm));
    const VT e1 = vexp(Vec::sub(Vec::load(x + i + W), vm));
    const VT e2 = vexp(Vec::sub(Vec::load(x + i + 2 * W), vm));
    const VT e3 = vexp(Vec::sub(Vec::load(x + i + 3 * W), vm));
    if (y != nullptr) {
      Vec::store(y + i, e0);
      Vec::store(y + i + W, e1);
      Vec::store(y + i + 2 * W, e2);
      Vec::store(y + i + 3 * W, e3);
    }
    s0 = Vec::add(s0, e0);
    s1 = Vec::add(s1, e1);
    s2 = Vec::add(s2, e2);
    s3 = Vec::add(s3, e3);
  }
  for (; i + W <= n; i += W) {
    const VT e = vexp(Vec::sub(Vec::load(x + i), vm));
    if (y != nullptr) Vec::store(y + i, e);
    s0 = Vec::add(s0, e);
  }
  if (i < n) {
    const VT e = vexp(Vec::sub(Vec::load_part(x + i, n - i, kNegInf), vm));  // exp(-inf) = 0
    if (y != nullptr) Vec::store_part(y + i, e, n - i);
    s1 = Vec::add(s1, e);
  }
  return Vec::hsum(Vec::add(Vec::add(s0, s1), Vec::add(s2, s3)));
}

// Three passes over a row that stays in L1/L2 (max; exp and sum; scale), so
// memory sees one read of x and one write of y, and exp runs once per element.
void softmax_rows(const float* x, float* y, int64_t rows, int64_t n, bool log) {
  for (int64_t r = 0; r < rows; ++r, x += n, y += n) {
    const float mx = row_max(x, n);
    if (!log) {
      const VT inv = Vec::set1(1.0f / row_exp_sum(x, y, n, mx));
      int64_t i = 0;
      for (; i + W <= n; i += W) Vec::store(y + i, Vec::mul(Vec::load(y + i), inv));
      if (i < n) Vec::store_part(y + i, Vec::mul(Vec::load_part(y + i, n - i, 0.0f), inv), n - i);
    } else {
      const VT vm = Vec::set1(mx);
      const VT ls = Vec::set1(std::log(row_exp_sum(x, nullptr, n, mx)));
      int64_t i = 0;
      for (; i + W <= n; i += W) Vec::store(y + i, Vec::sub(Vec::sub(Vec::load(x + i), vm), ls));
      if (i < n) {
        Vec::store_part(y + i, Vec::sub(Vec::sub(Vec::load_part(x + i, n - i, 0.0f), vm), ls), n - i);
      }
    }
  }
}

// softmax: gx = y * (gy - sum(gy * y)); log_softmax: gx = gy - exp(y) * sum(gy).
void softmax_backward_rows(const float* y, const float* gy, float* gx, int64_t rows, int64_t n,
                           bool log) {
  for (int64_t r = 0; r < rows; ++r, y += n, gy += n, gx += n) {
    VT s0 = Vec::set1(0.0f), s1 = s0;
    int64_t i = 0;
    for (; i + 2 * W <= n; i += 2 * W) {
      if (log) {
        s0 = Vec::add(s0, Vec::load(gy + i));
        s1 = Vec::add(s1, Vec::load(gy + i + W));
      } else {
        s0 = Vec::fma(Vec::load(gy + i), Vec::load(y + i), s0);
        s1 = Vec::fma(Vec::load(gy + i + W), Vec::load(y + i + W), s1);
      }
    }
    for (; i < n; i += W) {
      const int64_t w = n - i < W ? n - i : W;
      const VT g = w == W ? Vec::load(gy + i) : Vec::load_part(gy + i, w, 0.0f);
      const VT v = w == W ? Vec::load(y + i) : Vec::load_part(y + i, w, 0.0f);
      s0 = log ? Vec::add(s0, g) : Vec::fma(g, v, s0);
    }
    const VT s = Vec::set1(Vec::hsum(Vec::add(s0, s1)));
    for (i = 0; i < n; i += W) {
      const int64_t w = n - i < W ? n - i : W;
      const VT g = w == W ? Vec::load(gy + i) : Vec::load_part(gy + i, w, 0.0f);
      const VT v = w == W ? Vec::load(y + i) : Vec::load_part(y + i, w, 0.0f);
      const VT out = log ? Vec::fnma(vexp(v), s, g) : Vec::mul(v, Vec::sub(g, s));
      if (w == W) {
        Vec::store(gx + i, out);
      } else {
        Vec::store_part(gx + i, out, w);
      }
    }
  }
}

// ---- softmax / log_softmax down the columns of a strided panel -----------------------
// n rows of `cols` floats, row r at x + r * stride. Sub-panels of up to kPanel
// columns are walked row by row (contiguous segments, prefetch-friendly) with
// one accumulator vector per column vector.

constexpr int kPanel = 64;               // columns per sub-panel
constexpr int kPanelVecs = kPanel / W;   // accumulator vectors

// Applies f(v, ptr_offset, lanes) to every column vector of one row segment.
template <class F>
inline void for_vectors(int64_t cols, F f) {
  int v = 0;
  for (int64_t c = 0; c < cols; c += W, ++v) f(v, c, cols - c < W ? cols - c : int64_t{W});
}

inline VT ldw(const float* p, int64_t w, float fill) {
  return w == W ? Vec::load(p) : Vec::load_part(p, w, fill);
}

inline void stw(float* p, VT v, int64_t w) {
  if (w == W) {
    Vec::store(p, v);
  } else {
    Vec::store_part(p, v, w);
  }
}

inline VT lane_log(VT v) {
  alignas(64) float buf[W];
  Vec::store(buf, v);
  for (int l = 0; l < W; ++l) buf[l] = std::log(buf[l]);
  return Vec::load(buf);
}

void softmax_subpanel(const float* x, float* y, int64_t n, int64_t stride, int64_t cols, bool log) {
  VT m[kPanelVecs], s[kPanelVecs];
  for (int v = 0; v < kPanelVecs; ++v) {
    m[v] = Vec::set1(kNegInf);
    s[v] = Vec::set1(0.0f);
  }
  for (int64_t r = 0; r < n; ++r) {
    const float* row = x + r * stride;
    for_vectors(cols, [&](int v, int64_t c, int64_t w) { m[v] = Vec::max(m[v], ldw(row + c, w, kNegInf)); });
  }
  for (int64_t r = 0; r < n; ++r) {
    const float* row = x + r * stride;
    float* out = y + r * stride;
    for_vectors(cols, [&](int v, int64_t c, int64_t w) {
      const VT e = vexp(Vec::sub(ldw(row + c, w, kNegInf), m[v]));
      if (!log) stw(out + c, e, w);
      s[v] = Vec::add(s[v], e);
    });
  }
  for (int v = 0; v < kPanelVecs; ++v) s[v] = log ? lane_log(s[v]) : Vec::div(Vec::set1(1.0f), s[v]);
  for (int64_t r = 0; r < n; ++r) {
    const float* row = x + r * stride;
    float* out = y + r * stride;
    for_vectors(cols, [&](int v, int64_t c, int64_t w) {
      const VT o = log ? Vec::sub(Vec::sub(ldw(row + c, w, 0.0f), m[v]), s[v])
                       : Vec::mul(ldw(out + c, w, 0.0f), s[v]);
      stw(out + c, o, w);
    });
  }
}

// A full sub-panel: the vector count is a constant, so the loops unroll and the
// accumulators stay in registers.
template <int NV>
void softmax_subpanel_full(const float* x, float* y, int64_t n, int64_t stride, bool log) {
  VT m[NV], s[NV];
  for (int v = 0; v < NV; ++v) {
    m[v] = Vec::set1(kNegInf);
    s[v] = Vec::set1(0.0f);
  }
  for (int64_t r = 0; r < n; ++r) {
    const float* row = x + r * stride;
    for (int v = 0; v < NV; ++v) m[v] = Vec::max(m[v], Vec::load(row + v * W));
  }
  for (int64_t r = 0; r < n; ++r) {
    const float* row = x + r * stride;
    float* out = y + r * stride;
    for (int v = 0; v < NV; ++v) {
      const VT e = vexp(Vec::sub(Vec::load(row + v * W), m[v]));
      if (!log) Vec::store(out + v * W, e);
      s[v] = Vec::add(s[v], e);
    }
  }
  for (int v = 0; v < NV; ++v) s[v] = log ? lane_log(s[v]) : Vec::div(Vec::set1(1.0f), s[v]);
  for (int64_t r = 0; r < n; ++r) {
    const float* row = x + r * stride;
    float* out = y + r * stride;
    for (int v = 0; v < NV; ++v) {
      Vec::store(out + v * W, log ? Vec::sub(Vec::sub(Vec::load(row + v * W), m[v]), s[v])
                                  : Vec::mul(Vec::load(out + v * W), s[v]));
    }
  }
}

void softmax_cols(const float* x, float* y, int64_t n, int64_t stride, int64_t cols, bool log) {
  for (int64_t c = 0; c < cols; c += kPanel) {
    if (cols - c >= kPanel) {
      softmax_subpanel_full<kPanelVecs>(x + c, y + c, n, stride, log);
    } else {
      softmax_subpanel(x + c, y + c, n, stride, cols - c, log);
    }
  }
}

void softmax_backward_subpanel(const float* y, const float* gy, float* gx, int64_t n, int64_t stride,
                               int64_t cols, bool log) {
  VT s[kPanelVecs];
  for (int v = 0; v < kPanelVecs; ++v) s[v] = Vec::set1(0.0f);
  for (int64_t r = 0; r < n; ++r) {
    const float* yr = y + r * stride;
    const float* gr = gy + r * stride;
    for_vectors(cols, [&](int v, int64_t c, int64_t w) {
      const VT g = ldw(gr + c, w, 0.0f);
      s[v] = log ? Vec::add(s[v], g) : Vec::fma(g, ldw(yr + c, w, 0.0f), s[v]);
    });
  }
  for (int64_t r = 0; r < n; ++r) {
    const float* yr = y + r * stride;
    const float* gr = gy + r * stride;
    float* out = gx + r * stride;
    for_vectors(cols, [&](int v, int64_t c, int64_t w) {
      const VT g = ldw(gr + c, w, 0.0f);
      const VT yv = ldw(yr + c, w, 0.0f);
      stw(out + c, log ? Vec::fnma(vexp(yv), s[v], g) : Vec::mul(yv, Vec::sub(g, s[v])), w);
    });
  }
}

template <int NV>
void softmax_backward_subpanel_full(const float* y, const float* gy, float* gx, int64_t n,
                                    int64_t stride, bool log) {
  VT s[NV];
  for (int v = 0; v < NV; ++v) s[v] = Vec::set1(0.0f);
  for (int64_t r = 0; r < n; ++r) {
    const float* yr = y + r * stride;
    const float* gr = gy + r * stride;
    for (int v = 0; v < NV; ++v) {
      const VT g = Vec::load(gr + v * W);
      s[v] = log ? Vec::add(s[v], g) : Vec::fma(g, Vec::load(yr + v * W), s[v]);
    }
  }
  for (int64_t r = 0; r < n; ++r) {
    const float* yr = y + r * stride;
    const float* gr = gy + r * stride;
    float* out = gx + r * stride;
    for (int v = 0; v < NV; ++v) {
      const VT g = Vec::load(gr + v * W);
      const VT yv = Vec::load(yr + v * W);
      Vec::store(out + v * W, log ? Vec::fnma(vexp(yv), s[v], g) : Vec::mul(yv, Vec::sub(g, s[v])));
    }
  }
}

void softmax_backward_cols(const float* y, const float* gy, float* gx, int64_t n, int64_t stride,
                           int64_t cols, bool log) {
  for (int64_t c = 0; c < cols; c += kPanel) {
    if (cols - c >= kPanel) {
      softmax_backward_subpanel_full<kPanelVecs>(y + c, gy + c, gx + c, n, stride, log);
    } else {
      softmax_backward_subpanel(y + c, gy + c, gx + c, n, stride, cols - c, log);
    }
  }
}

// ---- activations -----------------------------------------------------------------------

// Four independent vectors per step: the transcendental bodies are long
// dependency chains, so the out-of-order core needs several in flight.
template <class F>
inline void map1(const float* x, float* out, int64_t n, F f) {
  int64_t i = 0;
  for (; i + 4 * W <= n; i += 4 * W) {
    const VT a = f(Vec::load(x + i));
    const VT b = f(Vec::load(x + i + W));
    const VT c = f(Vec::load(x + i + 2 * W));
    const VT d = f(Vec::load(x + i + 3 * W));
    Vec::store(out + i, a);
    Vec::store(out + i + W, b);
    Vec::store(out + i + 2 * W, c);
    Vec::store(out + i + 3 * W, d);
  }
  for (; i + W <= n; i += W) Vec::store(out + i, f(Vec::load(x + i)));
  if (i < n) Vec::store_part(out + i, f(Vec::load_part(x + i, n - i, 0.0f)), n - i);
}

template <class F>
inline void map2(const float* a, const float* b, float* out, int64_t n, F f) {
  int64_t i = 0;
  for (; i + 4 * W <= n; i += 4 * W) {
    const VT u0 = f(Vec::load(a + i), Vec::load(b + i));
    const VT u1 = f(Vec::load(a + i + W), Vec::load(b + i + W));
    const VT u2 = f(Vec::load(a + i + 2 * W), Vec::load(b + i + 2 * W));
    const VT u3 = f(Vec::load(a + i + 3 * W), Vec::load(b + i + 3 * W));
    Vec::store(out + i, u0);
    Vec::store(out + i + W, u1);
    Vec::store(out + i + 2 * W, u2);
    Vec::store(out + i + 3 * W, u3);
  }
  for (; i + W <= n; i += W) Vec::store(out + i, f(Vec::load(a + i), Vec::load(b + i)));
  if (i < n) {
    Vec::store_part(out + i, f(Vec::load_part(a + i, n - i, 0.0f), Vec::load_part(b + i, n - i, 0.0f)), n - i);
  }
}

constexpr float kSqrt2OverPi = 0.79788456080286536f;
constexpr float kGeluCubic = 0.044715f;

void activation_body(Act act, const float* x, float* out, int64_t n, float param) {
  const VT one = Vec::set1(1.0f);
  const VT zero = Vec::set1(0.0f);
  switch (act) {
    case Act::sigmoid:
      map1(x, out, n, [](VT v) { return vsigmoid(v); });
      break;
    case Act::tanh:
      map1(x, out, n, [](VT v) { return vtanh(v); });
      break;
    case Act::gelu:
      map1(x, out, n, [](VT v) { return Vec::mul(v, vnormcdf(v, nullptr)); });
      break;
    case Act::gelu_tanh:
      // 0.5 x (1 + tanh(u)) = x * sigmoid(2u), u = sqrt(2/pi) (x + 0.044715 x^3).
      map1(x, out, n, [=](VT v) {
        const VT u2 = Vec::mul(Vec::mul(v, Vec::set1(-2.0f * kSqrt2OverPi)),
                               Vec::fma(Vec::mul(v, v), Vec::set1(kGeluCubic), one));
        return Vec::div(v, Vec::add(one, vexp(u2)));
      });
      break;
    case Act::silu:
      map1(x, out, n, [=](VT v) { return Vec::div(v, Vec::add(one, vexp(Vec::sub(zero, v)))); });
      break;
    case Act::leaky_relu: {
      const VT slope = Vec::set1(param);
      map1(x, out, n, [=](VT v) { return Vec::select(Vec::gt(v, zero), v, Vec::mul(v, slope)); });
      break;
    }
  }
}

// a is the saved forward output y (sigmoid, tanh) or input x (the others).
void activation_backward_body(Act act, const float* a, const float* gy, float* out, int64_t n,
                         float param) {
  const VT one = Vec::set1(1.0f);
  const VT zero = Vec::set1(0.0f);
  switch (act) {
    case Act::sigmoid:
      map2(a, gy, out, n, [=](VT y, VT g) { return Vec::mul(Vec::mul(g, y), Vec::sub(one, y)); });
      break;
    case Act::tanh:
      map2(a, gy, out, n, [=](VT y, VT g) { return Vec::mul(g, Vec::fnma(y, y, one)); });
      break;
    case Act::gelu:
      map2(a, gy, out, n, [](VT x, VT g) {
        VT pdf;
        const VT cdf = vnormcdf(x, &pdf);
        return Vec::mul(g, Vec::fma(x, pdf, cdf));
      });
      break;
    case Act::gelu_tanh:
      // d/dx = s + 2 x s (1 - s) sqrt(2/pi) (1 + 3 * 0.044715 x^2), s = sigmoid(2u).
      map2(a, gy, out, n, [=](VT x, VT g) {
        const VT x2 = Vec::mul(x, x);
        const VT u2 = Vec::mul(Vec::mul(x, Vec::set1(-2.0f * kSqrt2OverPi)),
                               Vec::fma(x2, Vec::set1(kGeluCubic), one));
        const VT s = Vec::div(one, Vec::add(one, vexp(u2)));
        const VT du = Vec::mul(Vec::set1(kSqrt2OverPi), Vec::fma(x2, Vec::set1(3.0f * kGeluCubic), one));
        const VT t = Vec::mul(Vec::mul(Vec::add(x, x), s), Vec::sub(one, s));
        return Vec::mul(g, Vec::fma(t, du, s));
      });
      break;
    case Act::silu:
      map2(a, gy, out, n, [=](VT x, VT g) {
        const VT s = vsigmoid(x);
        return Vec::mul(Vec::mul(g, s), Vec::fma(x, Vec::sub(one, s), one));
      });
      break;
    case Act::leaky_relu: {
      const VT slope = Vec::set1(param);
      map2(a, gy, out, n, [=](VT x, VT g) { return Vec::select(Vec::gt(x, zero), g, Vec::mul(g, slope)); });
      break;
    }
  }
}

// ---- layer norm over contiguous rows -------------------------------------------------

template <class F>
inline VT row_reduce(const float* x, int64_t n, F f) {  // lane sums of f(x) over a row
  VT s0 = Vec::set1(0.0f), s1 = s0, s2 = s0, s3 = s0;
  int64_t i = 0;
  for (; i + 4 * W <= n; i += 4 * W) {
    s0 = Vec::add(s0, f(Vec::load(x + i)));
    s1 = Vec::add(s1, f(Vec::load(x + i + W)));
    s2 = Vec::add(s2, f(Vec::load(x + i + 2 * W)));
    s3 = Vec::add(s3, f(Vec::load(x + i + 3 * W)));
  }
  for (; i + W <= n; i += W) s0 = Vec::add(s0, f(Vec::load(x + i)));
  if (i < n) {  // f of the padding need not be 0: keep only the valid lanes
    alignas(64) float buf[W] = {};
    Vec::store_part(buf, f(Vec::load_part(x + i, n - i, 0.0f)), n - i);
    s1 = Vec::add(s1, Vec::load(buf));
  }
  return Vec::add(Vec::add(s0, s1), Vec::add(s2, s3));
}

void layer_norm_rows(const float* x, const float* w, const float* b, float* y, float* mean,
                     float* rstd, int64_t rows, int64_t n, float eps) {
  for (int64_t r = 0; r < rows; ++r, x += n, y += n) {
    const float mu = Vec::hsum(row_reduce(x, n, [](VT v) { return v; })) / static_cast<float>(n);
    const VT vm = Vec::set1(mu);
    const float ss = Vec::hsum(row_reduce(x, n, [=](VT v) {
      const VT d = Vec::sub(v, vm);
      return Vec::mul(d, d);
    }));
    const float rs = 1.0f / std::sqrt(ss / static_cast<float>(n) + eps);
    mean[r] = mu;
    rstd[r] = rs;
    const VT vr = Vec::set1(rs);
    for (int64_t i = 0; i < n; i += W) {
      const int64_t cnt = n - i < W ? n - i : W;
      const bool full = cnt == W;
      VT v = Vec::mul(Vec::sub(full ? Vec::load(x + i) : Vec::load_part(x + i, cnt, 0.0f), vm), vr);
      if (w != nullptr) v = Vec::mul(v, full ? Vec::load(w + i) : Vec::load_part(w + i, cnt, 0.0f));
      if (b != nullptr) v = Vec::add(v, full ? Vec::load(b + i) : Vec::load_part(b + i, cnt, 0.0f));
      if (full) {
        Vec::store(y + i, v);
      } else {
        Vec::store_part(y + i, v, cnt);
      }
    }
  }
}

// gx = rstd (g - mean(g) - xhat mean(g xhat)), g = gy * w; gw_acc += gy xhat, gb_acc += gy.
void layer_norm_backward_rows(const float* x, const float* w, const float* mean, const float* rstd,
                              const float* gy, float* gx, float* gw_acc, float* gb_acc, int64_t rows,
                              int64_t n) {
  const float inv_n = 1.0f / static_cast<float>(n);
  for (int64_t r = 0; r < rows; ++r, x += n, gy += n, gx += n) {
    const VT vm = Vec::set1(mean[r]);
    const VT vr = Vec::set1(rstd[r]);
    VT sg = Vec::set1(0.0f), sgx = sg;
    for (int64_t i = 0; i < n; i += W) {
      const int64_t cnt = n - i < W ? n - i : W;
      const bool full = cnt == W;
      const VT xv = full ? Vec::load(x + i) : Vec::load_part(x + i, cnt, 0.0f);
      const VT gv = full ? Vec::load(gy + i) : Vec::load_part(gy + i, cnt, 0.0f);
      const VT xhat = Vec::mul(Vec::sub(xv, vm), vr);
      const VT g = w == nullptr ? gv : Vec::mul(gv, full ? Vec::load(w + i) : Vec::load_part(w + i, cnt, 0.0f));
      sg = Vec::add(sg, g);           // padded lanes: g = 0
      sgx = Vec::fma(g, xhat, sgx);
      const VT gw = Vec::fma(gv, xhat, full ? Vec::load(gw_acc + i) : Vec::load_part(gw_acc + i, cnt, 0.0f));
      const VT gb = Vec::add(gv, full ? Vec::load(gb_acc + i) : Vec::load_part(gb_acc + i, cnt, 0.0f));
      if (full) {
        Vec::store(gw_acc + i, gw);
        Vec::store(gb_acc + i, gb);
      } else {
        Vec::store_part(gw_acc + i, gw, cnt);
        Vec::store_part(gb_acc + i, gb, cnt);
      }
    }
    const VT a = Vec::set1(Vec::hsum(sg) * inv_n);
    const VT bb = Vec::set1(Vec::hsum(sgx) * inv_n);
    for (int64_t i = 0; i < n; i += W) {
      const int64_t cnt = n - i < W ? n - i : W;
      const bool full = cnt == W;
      const VT xv = full ? Vec::load(x + i) : Vec::load_part(x + i, cnt, 0.0f);
      const VT gv = full ? Vec::load(gy + i) : Vec::load_part(gy + i, cnt, 0.0f);
      const VT xhat = Vec::mul(Vec::sub(xv, vm), vr);
      const VT g = w == nullptr ? gv : Vec::mul(gv, full ? Vec::load(w + i) : Vec::load_part(w + i, cnt, 0.0f));
      const VT out = Vec::mul(vr, Vec::fnma(xhat, bb, Vec::sub(g, a)));
      if (full) {
        Vec::store(gx + i, out);
      } else {
        Vec::store_part(gx + i, out, cnt);
      }
    }
  }
}

}  // namespace
}  // namespace cpu
}  // namespace tg
