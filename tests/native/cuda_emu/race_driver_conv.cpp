// Runs the TF32 conv2d kernels (conv2d_tf32*.cu) once each on small random problems, for
// ThreadSanitizer (emulate.build_race_driver): both block heights (64 and 128 rows), 16-byte
// and 4-byte weight copies, unit and larger strides, the split weight-gradient sum, the fused
// bias + ReLU epilogue. Several slices each, so the 3-stage pipeline wraps around its stages.
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

int conv(int64_t n, int64_t c, int64_t h, int64_t w, int64_t o, int64_t k, int64_t stride, int64_t groups) {
  const int64_t pad = k / 2, oh = (h + 2 * pad - k) / stride + 1, ow = (w + 2 * pad - k) / stride + 1;
  const TgConv2dGeom g{n, c, h, w, o, k, k, oh, ow, stride, stride, pad, pad, 1, 1, groups};
  auto x = normal(n * c * h * w), wt = normal(o * (c / groups) * k * k), gy = normal(n * o * oh * ow),
       bias = normal(o);
  std::vector<float> y(gy.size()), gx(x.size()), gw(wt.size());
  std::vector<float> ws(tg_cuda_conv2d_backward_weight_workspace_tf32(&g) + 1);
  return tg_cuda_conv2d_tf32(x.data(), wt.data(), bias.data(), y.data(), &g, TG_EPILOGUE_RELU, nullptr) |
         tg_cuda_conv2d_backward_input_tf32(gy.data(), wt.data(), gx.data(), &g, nullptr) |
         tg_cuda_conv2d_backward_weight_tf32(gy.data(), x.data(), gw.data(), ws.data(), &g, nullptr);
}

}  // namespace

int main() {
  int err = conv(1, 8, 6, 5, 12, 3, 1, 1);   // 64-row blocks, depth 72: 16-byte weight copies
  err |= conv(1, 70, 3, 4, 66, 1, 2, 1);      // 128-row blocks, depth 70: 4-byte copies, stride 2
  err |= conv(2, 3, 24, 24, 4, 3, 1, 1);      // a split weight-gradient sum
  std::printf("race driver done, error %d\n", err);
  return err;
}
