// Runs the float16 / bfloat16 matmul (matmul_f16.cu) once per kernel path on small problems, for
// ThreadSanitizer (test_cuda_emulated_matmul16.py builds it like emulate.build_race_driver): the
// emulated cp.async copies are plain stores, so a pipeline stage overwritten while another warp
// may still read it (a missing or misplaced barrier) is reported as a data race. K spans more
// slices than the pipeline has stages, so the stage ring wraps.
#include <cstdio>
#include <vector>

#include "tg_cuda.h"

namespace {

int run(int dtype, int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, bool bias) {
  std::vector<uint16_t> a(m * k), b(k * n), c(m * n), bi(n);
  for (size_t i = 0; i < a.size(); ++i) a[i] = static_cast<uint16_t>(0x3000 + i % 0x0c00);  // small normal numbers
  for (size_t i = 0; i < b.size(); ++i) b[i] = static_cast<uint16_t>(0x3000 + (i * 7) % 0x0c00);
  for (size_t i = 0; i < bi.size(); ++i) bi[i] = static_cast<uint16_t>(0x3000 + i);
  TgMatmul16 args{};
  args.batch = 1, args.m = m, args.n = n, args.k = k, args.dtype = dtype, args.trans_a = trans_a;
  args.trans_b = trans_b, args.activation = TG_EPILOGUE_RELU;
  args.a = a.data(), args.b = b.data(), args.bias = bias ? bi.data() : nullptr, args.out = c.data();
  return tg_cuda_matmul_f16(&args, nullptr);
}

}  // namespace

int main() {
  int err = run(TG_DTYPE_F16, 0, 0, 24, 40, 168, true) | run(TG_DTYPE_BF16, 1, 1, 16, 17, 168, false);
  err |= run(TG_DTYPE_F16, 0, 1, 9, 20, 165, true) | run(TG_DTYPE_BF16, 1, 0, 9, 20, 99, false);  // guarded loads
  std::printf("race driver done, error %d\n", err);
  return err;
}
