// SIMD vector wrappers with one interface, so the math (vmath.h) and the
// kernel bodies (nn_body.h) are written once and compiled per ISA.
//
// Each ISA file (nn_generic.cpp, nn_avx2.cpp, nn_avx512.cpp) includes this
// header after its `#pragma GCC target`, so only the struct it uses is
// compiled for that target; everything here has internal linkage, so the
// per-ISA copies never meet in the linker.
//
// Conventions shared by every wrapper:
//   min(a, b) / max(a, b) return b when either operand is NaN (the x86 rule),
//   so min(hi, x) and max(lo, x) let a NaN x through;
//   select(m, a, b) is m ? a : b lane by lane;
//   load_part / store_part touch only the first n (< W) lanes, never past them.
#pragma once

#include <cstdint>
#include <cstring>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace tg {
namespace cpu {
namespace {

#if defined(TG_VEC_GENERIC)
// One float per "vector": the portable path (the compiler may still vectorize it).
struct Vec {
  using T = float;
  using M = bool;
  using I = int32_t;
  static constexpr int W = 1;
  static T load(const float* p) { return *p; }
  static void store(float* p, T v) { *p = v; }
  static T load_part(const float* p, int64_t, float) { return *p; }  // never called (W == 1)
  static void store_part(float* p, T v, int64_t) { *p = v; }
  static T set1(float f) { return f; }
  static T add(T a, T b) { return a + b; }
  static T sub(T a, T b) { return a - b; }
  static T mul(T a, T b) { return a * b; }
  static T div(T a, T b) { return a / b; }
  static T fma(T a, T b, T c) { return a * b + c; }    // rounding twice is fine here
  static T fnma(T a, T b, T c) { return c - a * b; }
  static T min(T a, T b) { return a < b ? a : b; }
  static T max(T a, T b) { return a > b ? a : b; }
  static M lt(T a, T b) { return a < b; }
  static M gt(T a, T b) { return a > b; }
  static T select(M m, T a, T b) { return m ? a : b; }
  static T abs(T a) {
    uint32_t u;
    std::memcpy(&u, &a, 4);
    u &= 0x7fffffffu;
    std::memcpy(&a, &u, 4);
    return a;
  }
  static T sign_of(T a) {  // the sign bit of a, as a float bit pattern (0.0f or -0.0f)
    uint32_t u;
    std::memcpy(&u, &a, 4);
    u &= 0x80000000u;
    std::memcpy(&a, &u, 4);
    return a;
  }
  static T xor_bits(T a, T b) {
    uint32_t u, v;
    std::memcpy(&u, &a, 4);
    std::memcpy(&v, &b, 4);
    u ^= v;
    std::memcpy(&a, &u, 4);
    return a;
  }
  static T shl23(T a) {  // the float whose bits are a's bits shifted left by 23
    uint32_t u;
    std::memcpy(&u, &a, 4);
    u <<= 23;
    std::memcpy(&a, &u, 4);
    return a;
  }
  static float hsum(T a) { return a; }
  static float hmax(T a) { return a; }
};
#endif

#if defined(TG_VEC_AVX2)
struct Vec {
  using T = __m256;
  using M = __m256;
  static constexpr int W = 8;
  static __m256i tail_mask(int64_t n) {
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)), idx);
  }
  static T load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, T v) { _mm256_storeu_ps(p, v); }
  static T load_part(const float* p, int64_t n, float fill) {
    const __m256i m = tail_mask(n);
    return _mm256_blendv_ps(_mm256_set1_ps(fill), _mm256_maskload_ps(p, m), _mm256_castsi256_ps(m));
  }
  static void store_part(float* p, T v, int64_t n) { _mm256_maskstore_ps(p, tail_mask(n), v); }
  static T set1(float f) { return _mm256_set1_ps(f); }
  static T add(T a, T b) { return _mm256_add_ps(a, b); }
  static T sub(T a, T b) { return _mm256_sub_ps(a, b); }
  static T mul(T a, T b) { return _mm256_mul_ps(a, b); }
  static T div(T a, T b) { return _mm256_div_ps(a, b); }
  static T fma(T a, T b, T c) { return _mm256_fmadd_ps(a, b, c); }
  static T fnma(T a, T b, T c) { return _mm256_fnmadd_ps(a, b, c); }
  static T min(T a, T b) { return _mm256_min_ps(a, b); }
  static T max(T a, T b) { return _mm256_max_ps(a, b); }
  static M lt(T a, T b) { return _mm256_cmp_ps(a, b, _CMP_LT_OQ); }
  static M gt(T a, T b) { return _mm256_cmp_ps(a, b, _CMP_GT_OQ); }
  static T select(M m, T a, T b) { return _mm256_blendv_ps(b, a, m); }
  static T abs(T a) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), a); }
  static T sign_of(T a) { return _mm256_and_ps(_mm256_set1_ps(-0.0f), a); }
  static T xor_bits(T a, T b) { return _mm256_xor_ps(a, b); }
  static T shl23(T a) { return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_castps_si256(a), 23)); }
  static float hsum(T a) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  static float hmax(T a) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
};
#endif

#if defined(TG_VEC_AVX512)
struct Vec {
  using T = __m512;
  using M = __mmask16;
  static constexpr int W = 16;
  static __mmask16 tail_mask(int64_t n) { return static_cast<__mmask16>((1u << n) - 1u); }
  static T load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, T v) { _mm512_storeu_ps(p, v); }
  static T load_part(const float* p, int64_t n, float fill) {
    return _mm512_mask_loadu_ps(_mm512_set1_ps(fill), tail_mask(n), p);
  }
  static void store_part(float* p, T v, int64_t n) { _mm512_mask_storeu_ps(p, tail_mask(n), v); }
  static T set1(float f) { return _mm512_set1_ps(f); }
  static T add(T a, T b) { return _mm512_add_ps(a, b); }
  static T sub(T a, T b) { return _mm512_sub_ps(a, b); }
  static T mul(T a, T b) { return _mm512_mul_ps(a, b); }
  static T div(T a, T b) { return _mm512_div_ps(a, b); }
  static T fma(T a, T b, T c) { return _mm512_fmadd_ps(a, b, c); }
  static T fnma(T a, T b, T c) { return _mm512_fnmadd_ps(a, b, c); }
  static T min(T a, T b) { return _mm512_min_ps(a, b); }
  static T max(T a, T b) { return _mm512_max_ps(a, b); }
  static M lt(T a, T b) { return _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ); }
  static M gt(T a, T b) { return _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ); }
  static T select(M m, T a, T b) { return _mm512_mask_blend_ps(m, b, a); }
  static T abs(T a) {
    return _mm512_castsi512_ps(_mm512_and_epi32(_mm512_castps_si512(a), _mm512_set1_epi32(0x7fffffff)));
  }
  static T sign_of(T a) {
    return _mm512_castsi512_ps(
        _mm512_and_epi32(_mm512_castps_si512(a), _mm512_set1_epi32(static_cast<int>(0x80000000u))));
  }
  static T xor_bits(T a, T b) {
    return _mm512_castsi512_ps(_mm512_xor_epi32(_mm512_castps_si512(a), _mm512_castps_si512(b)));
  }
  static T shl23(T a) { return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_castps_si512(a), 23)); }
  static float hsum(T a) { return _mm512_reduce_add_ps(a); }
  static float hmax(T a) { return _mm512_reduce_max_ps(a); }
};
#endif

}  // namespace
}  // namespace cpu
}  // namespace tg
