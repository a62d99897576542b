// Runs every attention and cross-entropy kernel once on small random problems, for
// ThreadSanitizer (emulate.build_race_driver): shapes that leave partial tiles, both head-dim
// paddings, causal and masked scores, the warp- and block-per-row cross-entropy paths.
#include <cstdio>
#include <random>
#include <vector>

#include "tg_cuda.h"

namespace {

std::mt19937 gen(1);

std::vector<float> normal(size_t n) {
  std::normal_distribution<float> d;
  std::vector<float> v(n);
  for (float& x : v) x = d(gen);
  return v;
}

int attention(int version, int64_t L, int64_t S, int64_t E, int64_t Ev, bool masked) {
  const int64_t B = 2;
  auto q = normal(B * L * E), k = normal(B * S * E), v = normal(B * S * Ev), gout = normal(B * L * Ev);
  std::vector<float> out(B * L * Ev), lse(B * L), delta(B * L), gq(B * L * E), gk(B * S * E), gv(B * S * Ev);
  std::vector<unsigned char> mask(B * L * S);
  for (size_t i = 0; i < mask.size(); ++i) mask[i] = (i % 7) != 3;
  TgSdpa a{};
  a.batch = B, a.q_len = L, a.kv_len = S, a.head_dim = E, a.v_dim = Ev, a.dtype = TG_DTYPE_F32;
  a.q = q.data(), a.k = k.data(), a.v = v.data(), a.is_causal = !masked, a.scale = 0.3f;
  if (masked) {
    a.mask = mask.data(), a.mask_kind = TG_MASK_BOOL;
    a.mask_stride_b = L * S, a.mask_stride_l = S, a.mask_stride_s = 1;
  }
  a.out = out.data(), a.lse = lse.data(), a.gout = gout.data(), a.delta = delta.data();
  a.gq = gq.data(), a.gk = gk.data(), a.gv = gv.data();
  return tg_cuda_sdpa_forward(&a, version, nullptr) | tg_cuda_sdpa_backward(&a, version, nullptr);
}

// The float16 (dtype TG_DTYPE_F16) or bfloat16 forward (version 3 or 4) and backward: any
// 16-bit patterns of normal numbers do.
int attention_half(int version, int dtype, int64_t L, int64_t S, int64_t D) {
  const int64_t B = 2;
  std::uniform_int_distribution<int> bits(0x3000, 0x3c00);  // float16 0.125..1; bfloat16 tiny, fine
  auto fill = [&](size_t n) {
    std::vector<uint16_t> v(n);
    for (auto& x : v) x = static_cast<uint16_t>(bits(gen));
    return v;
  };
  auto q = fill(B * L * D), k = fill(B * S * D), v = fill(B * S * D), gout = fill(B * L * D);
  std::vector<uint16_t> out(B * L * D), gq(B * L * D), gk(B * S * D), gv(B * S * D);
  std::vector<float> lse(B * L), delta(B * L);
  TgSdpa a{};
  a.batch = B, a.q_len = L, a.kv_len = S, a.head_dim = D, a.v_dim = D, a.dtype = dtype;
  a.q = q.data(), a.k = k.data(), a.v = v.data(), a.is_causal = 1, a.scale = 0.3f;
  a.out = out.data(), a.lse = lse.data(), a.gout = gout.data(), a.delta = delta.data();
  a.gq = gq.data(), a.gk = gk.data(), a.gv = gv.data();
  return tg_cuda_sdpa_forward(&a, version, nullptr) | tg_cuda_sdpa_backward(&a, version, nullptr);
}

int cross_entropy(int64_t rows, int64_t classes) {
  auto logits = normal(rows * classes), grow = normal(rows), weight = normal(classes);
  std::vector<int64_t> target(rows);
  for (int64_t r = 0; r < rows; ++r) target[r] = (r * 7) % (classes + 1);  // one out of range when r*7 hits classes
  std::vector<float> loss(rows), lse(rows), glogits(rows * classes);
  int error = 0;
  return tg_cuda_cross_entropy(logits.data(), target.data(), weight.data(), loss.data(), lse.data(), &error, rows,
                               classes, -100, 0.1f, nullptr) |
         tg_cuda_cross_entropy_backward(logits.data(), lse.data(), target.data(), weight.data(), grow.data(),
                                        glogits.data(), rows, classes, -100, 0.1f, nullptr);
}

}  // namespace

int main() {
  int err = attention(1, 9, 13, 5, 3, false) | attention(1, 9, 13, 5, 3, true);
  err |= attention(2, 70, 130, 8, 8, false) | attention(2, 70, 40, 65, 128, true) | attention(2, 130, 33, 100, 20, false);
  err |= attention_half(3, TG_DTYPE_F16, 70, 130, 64) | attention_half(3, TG_DTYPE_BF16, 65, 40, 128);
  // v4's two-stage pipeline: several key tiles per block (S 200), and one (S 40).
  err |= attention_half(4, TG_DTYPE_F16, 70, 200, 64) | attention_half(4, TG_DTYPE_BF16, 65, 40, 128);
  err |= cross_entropy(9, 33) | cross_entropy(3, 2000);
  std::printf("race driver done, error %d\n", err);
  return err;
}
