// Optimizer steps over one float32 parameter, in one pass over memory (the NumPy
// formulation makes about ten). Each step does exactly the float32 operations,
// in the same order, as tilegrad.optim's array code (and so as torch.optim), so
// the native and the reference paths agree bit for bit: no FMA contraction, no
// reordering (this file is built without -ffast-math or FMA targets).
#include <cmath>
#include <omp.h>

#include "tg_cpu.h"

namespace tg {
namespace cpu {
namespace {

constexpr int64_t kParallelMin = 1 << 16;  // below this a fork/join costs more than the pass

// a.lerp_(end, w) with PyTorch's two formulas, each exact at its own end.
inline float lerp(float a, float end, float w, bool small, float one_minus_w) {
  return small ? a + w * (end - a) : end - (end - a) * one_minus_w;
}

// np.maximum: NaN if either is NaN.
inline float nan_max(float a, float b) {
  if (std::isnan(a) || std::isnan(b)) return a + b;
  return a > b ? a : b;
}

}  // namespace

void adam_step(float* p, const float* grad, float* m, float* v, float* v_max, int64_t n,
               const AdamStep& h) {
  const bool small = std::fabs(h.lerp_weight) < 0.5;
  const float w = static_cast<float>(h.lerp_weight);
  const float one_minus_w = static_cast<float>(1.0 - h.lerp_weight);
  const float decay = static_cast<float>(h.decay);
  const float wd = static_cast<float>(h.weight_decay);
  const float beta2 = static_cast<float>(h.beta2);
  const float one_minus_beta2 = static_cast<float>(1.0 - h.beta2);
  const float bias2_sqrt = static_cast<float>(h.bias2_sqrt);
  const float eps = static_cast<float>(h.eps);
  const float step_size = static_cast<float>(h.step_size);
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
  for (int64_t i = 0; i < n; ++i) {
    float g = h.maximize ? -grad[i] : grad[i];
    float d = p[i];
    if (h.decoupled) {
      d = d * decay;
    } else if (h.weight_decay != 0) {
      g = g + wd * d;
    }
    const float mi = lerp(m[i], g, w, small, one_minus_w);
    m[i] = mi;
    float vi = v[i] * beta2;
    vi = vi + (one_minus_beta2 * g) * g;
    v[i] = vi;
    if (v_max != nullptr) {
      vi = nan_max(v_max[i], vi);
      v_max[i] = vi;
    }
    const float denom = std::sqrt(vi) / bias2_sqrt + eps;
    p[i] = d - step_size * (mi / denom);
  }
}

void sgd_step(float* p, const float* grad, float* buf, int64_t n, const SgdStep& h) {
  const float wd = static_cast<float>(h.weight_decay);
  const float momentum = static_cast<float>(h.momentum);
  const float one_minus_dampening = static_cast<float>(1.0 - h.dampening);
  const float lr = static_cast<float>(h.lr);
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
  for (int64_t i = 0; i < n; ++i) {
    float g = h.maximize ? -grad[i] : grad[i];
    const float d = p[i];
    if (h.weight_decay != 0) g = g + wd * d;
    if (buf != nullptr) {
      const float b = h.first_step ? g : buf[i] * momentum + one_minus_dampening * g;
      buf[i] = b;
      g = h.nesterov ? g + momentum * b : b;
    }
    p[i] = d - lr * g;
  }
}

}  // namespace cpu
}  // namespace tg
