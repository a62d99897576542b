// Runs a float16 / bfloat16 matmul kernel on small problems for ThreadSanitizer
// (emulate.assert_no_races): `race_driver 1` the mma.sync kernel (matmul_f16.cu), `race_driver 2`
// the wgmma kernel (matmul_wgmma.cu), both through tg_cuda_matmul_half. The emulated cp.async
// copies are plain stores (and the emulated wgmma plain loads at issue), so a pipeline stage
// overwritten while another warp may still read it (a missing or misplaced barrier) is reported
// as a data race. K spans more slices than the pipeline has stages, so the stage ring wraps.
// (The hardware's asynchronous wgmma reads are ordered by wait_group, which this cannot see;
// matmul_wgmma.cu argues that part.)
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "tg_cuda.h"

namespace {

int run(int version, int dtype, int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, bool bias) {
  std::vector<uint16_t> a(m * k), b(k * n), c(m * n), bi(n);
  for (size_t i = 0; i < a.size(); ++i) a[i] = static_cast<uint16_t>(0x3000 + i % 0x0c00);  // small normal numbers
  for (size_t i = 0; i < b.size(); ++i) b[i] = static_cast<uint16_t>(0x3000 + (i * 7) % 0x0c00);
  for (size_t i = 0; i < bi.size(); ++i) bi[i] = static_cast<uint16_t>(0x3000 + i);
  TgMatmul16 args{};
  args.batch = 1, args.m = m, args.n = n, args.k = k, args.dtype = dtype, args.trans_a = trans_a;
  args.trans_b = trans_b, args.activation = TG_EPILOGUE_RELU;
  args.a = a.data(), args.b = b.data(), args.bias = bias ? bi.data() : nullptr, args.out = c.data();
  return tg_cuda_matmul_half(&args, version, nullptr);
}

}  // namespace

int main(int argc, char** argv) {
  const int version = argc > 1 ? std::atoi(argv[1]) : 1;
  int err = 0;
  if (version == 1) {
    err = run(1, TG_DTYPE_F16, 0, 0, 24, 40, 168, true) | run(1, TG_DTYPE_BF16, 1, 1, 16, 17, 168, false);
    err |= run(1, TG_DTYPE_F16, 0, 1, 9, 20, 165, true) | run(1, TG_DTYPE_BF16, 1, 0, 9, 20, 99, false);  // guarded loads
  } else {  // the wgmma kernel takes K and row lengths that are multiples of 8 only
    err = run(2, TG_DTYPE_F16, 0, 0, 24, 40, 392, true) | run(2, TG_DTYPE_BF16, 1, 1, 16, 16, 392, true);
    err |= run(2, TG_DTYPE_F16, 0, 1, 8, 24, 328, true) | run(2, TG_DTYPE_BF16, 1, 0, 8, 24, 328, true);
  }
  std::printf("race driver done, error %d\n", err);
  return err;
}
