// Vectorized float32 exp, tanh, sigmoid and the normal CDF on the Vec of the
// including ISA file (vec.h). Polynomials are Cephes' (exp, tanh) and the
// Chebyshev fit of Numerical Recipes' erfcc (relative error < 1.2e-7).
// Accuracy (checked against float64 in tests/native): a few ulp.
#pragma once

#include "vec.h"

namespace tg {
namespace cpu {
namespace {

using VT = Vec::T;

// exp(x): a few ulp wherever the result is a normal float above 2^-125;
// NaN propagates, overflow gives +inf exactly where float32 overflows
// (x > 88.7228), results below ~2^-125 (x < -87) flush to 0: the price of
// building the power of two with one shift. n = round(x / ln2) comes from the
// "magic number" addition, whose low mantissa bits then hold n - 1 + 127; the
// polynomial is Cephes' expf with doubled coefficients (2 exp(r), exact), so
// 2^(n-1) * 2 exp(r) reaches up to n = 128 without an exponent overflow. It is
// evaluated in Estrin's scheme (shorter dependency chains than Horner).
inline VT vexp(VT x) {
  x = Vec::max(Vec::set1(-87.6f), Vec::min(Vec::set1(88.8f), x));  // NaN passes through
  const VT magic = Vec::set1(12582912.0f + 126.0f);  // 1.5 * 2^23 + (exponent bias - 1)
  const VT t = Vec::fma(x, Vec::set1(1.44269504088896341f), magic);
  const VT n = Vec::sub(t, magic);
  VT r = Vec::fnma(n, Vec::set1(0.693359375f), x);  // x - n ln2, ln2 split in two
  r = Vec::fnma(n, Vec::set1(-2.12194440e-4f), r);
  const VT r2 = Vec::mul(r, r);
  const VT r4 = Vec::mul(r2, r2);
  const VT a01 = Vec::fma(Vec::set1(2 * 1.6666665459e-1f), r, Vec::set1(2 * 5.0000001201e-1f));
  const VT a23 = Vec::fma(Vec::set1(2 * 8.3334519073e-3f), r, Vec::set1(2 * 4.1665795894e-2f));
  const VT a45 = Vec::fma(Vec::set1(2 * 1.9875691500e-4f), r, Vec::set1(2 * 1.3981999507e-3f));
  const VT q = Vec::fma(a45, r4, Vec::fma(a23, r2, a01));
  const VT p2 = Vec::fma(q, r2, Vec::fma(r, Vec::set1(2.0f), Vec::set1(2.0f)));  // 2 exp(r)
  return Vec::mul(p2, Vec::shl23(t));  // * 2^(n-1): n - 1 + 127 moved into the exponent field
}

// 1 / (1 + exp(-x)): exact limits 0 and 1, no cancellation for x < 0.
inline VT vsigmoid(VT x) {
  const VT one = Vec::set1(1.0f);
  return Vec::div(one, Vec::add(one, vexp(Vec::sub(Vec::set1(0.0f), x))));
}

// tanh: an odd polynomial below |x| = 0.625, 1 - 2 / (exp(2|x|) + 1) above.
inline VT vtanh(VT x) {
  const VT a = Vec::abs(x);
  const VT z = Vec::mul(x, x);
  VT p = Vec::set1(-5.70498872745e-3f);
  p = Vec::fma(p, z, Vec::set1(2.06390887954e-2f));
  p = Vec::fma(p, z, Vec::set1(-5.37397155531e-2f));
  p = Vec::fma(p, z, Vec::set1(1.33314422036e-1f));
  p = Vec::fma(p, z, Vec::set1(-3.33332819422e-1f));
  const VT small = Vec::fma(Vec::mul(p, z), x, x);
  const VT e = vexp(Vec::add(a, a));
  const VT big = Vec::fnma(Vec::set1(2.0f), Vec::div(Vec::set1(1.0f), Vec::add(e, Vec::set1(1.0f))),
                           Vec::set1(1.0f));
  return Vec::select(Vec::lt(a, Vec::set1(0.625f)), small, Vec::xor_bits(big, Vec::sign_of(x)));
}

// Phi(x), the standard normal CDF, as 0.5 erfc(-x / sqrt 2): relative accuracy
// holds in the lower tail too (no 1 + erf cancellation). *pdf_out, when given,
// receives the density exp(-x^2 / 2) / sqrt(2 pi) (0 beyond |x| = 20).
inline VT vnormcdf(VT x, VT* pdf_out) {
  // Beyond |x| = 20 Phi is 0 or 1 in float32; clamping keeps x^2 finite (NaN passes).
  x = Vec::max(Vec::set1(-20.0f), Vec::min(Vec::set1(20.0f), x));
  const VT u = Vec::mul(x, Vec::set1(0.70710678118654752f));
  const VT a = Vec::abs(u);
  const VT t = Vec::div(Vec::set1(1.0f), Vec::fma(Vec::set1(0.5f), a, Vec::set1(1.0f)));
  VT p = Vec::set1(0.17087277f);
  p = Vec::fma(p, t, Vec::set1(-0.82215223f));
  p = Vec::fma(p, t, Vec::set1(1.48851587f));
  p = Vec::fma(p, t, Vec::set1(-1.13520398f));
  p = Vec::fma(p, t, Vec::set1(0.27886807f));
  p = Vec::fma(p, t, Vec::set1(-0.18628806f));
  p = Vec::fma(p, t, Vec::set1(0.09678418f));
  p = Vec::fma(p, t, Vec::set1(0.37409196f));
  p = Vec::fma(p, t, Vec::set1(1.00002368f));
  p = Vec::fma(p, t, Vec::set1(-1.26551223f));
  // exp(-a^2 + p) with a^2 = x^2 / 2 = hi + lo split exactly (no rounding of u
  // enters the exponent): exp(p - hi) * (1 - lo), to first order.
  const VT xx = Vec::mul(x, x);
  const VT hi = Vec::mul(Vec::set1(0.5f), xx);
  const VT lo = Vec::mul(Vec::set1(0.5f), Vec::fma(x, x, Vec::sub(Vec::set1(0.0f), xx)));
  // p - hi rounds by up to half an ulp of hi (~4e-6 at x = -12): carry the
  // rounding error (exact, Fast2Sum with |hi| >= |p| in the tail) with lo.
  const VT s = Vec::sub(p, hi);
  const VT corr = Vec::sub(Vec::sub(p, Vec::add(s, hi)), lo);
  const VT e = vexp(s);
  const VT half_erfc = Vec::mul(Vec::mul(Vec::set1(0.5f), t), Vec::fma(e, corr, e));
  if (pdf_out != nullptr) {
    const VT g = vexp(Vec::sub(Vec::set1(0.0f), hi));
    *pdf_out = Vec::mul(Vec::fnma(g, lo, g), Vec::set1(0.39894228040143268f));
  }
  // u < 0: Phi = erfc(|u|) / 2; otherwise 1 - erfc(|u|) / 2.
  return Vec::select(Vec::lt(u, Vec::set1(0.0f)), half_erfc, Vec::sub(Vec::set1(1.0f), half_erfc));
}

}  // namespace
}  // namespace cpu
}  // namespace tg
