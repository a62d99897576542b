// ReLU forward and backward: OpenMP over chunks, SIMD body chosen per ISA.
#include <algorithm>

#include "cpu_internal.h"
#include "tg_cpu.h"

namespace tg {
namespace cpu {

namespace {

constexpr int64_t kChunk = 1 << 14;            // floats per OpenMP work item
constexpr int64_t kParallelMin = 1 << 18;      // below 1 MiB a fork/join costs more than it saves

template <typename Body>
void for_chunks(int64_t n, Body body) {
  const int64_t chunks = (n + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(dynamic, 1) if (n >= kParallelMin)
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t begin = c * kChunk;
    body(begin, std::min(kChunk, n - begin));
  }
}

}  // namespace

void relu_generic(const float* x, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = x[i] < 0.0f ? 0.0f : x[i];
}

void relu_backward_generic(const float* x, const float* gy, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = x[i] > 0.0f ? gy[i] : 0.0f;
}

void relu(const float* x, float* out, int64_t n) {
  if (n <= 0) return;
  auto fn = relu_generic;
  switch (active_isa()) {
    case Isa::avx512: fn = relu_avx512; break;
    case Isa::avx2: fn = relu_avx2; break;
    default: break;
  }
  for_chunks(n, [&](int64_t begin, int64_t len) { fn(x + begin, out + begin, len); });
}

void relu_backward(const float* x, const float* gy, float* out, int64_t n) {
  if (n <= 0) return;
  auto fn = relu_backward_generic;
  switch (active_isa()) {
    case Isa::avx512: fn = relu_backward_avx512; break;
    case Isa::avx2: fn = relu_backward_avx2; break;
    default: break;
  }
  for_chunks(n, [&](int64_t begin, int64_t len) { fn(x + begin, gy + begin, out + begin, len); });
}

}  // namespace cpu
}  // namespace tg
