// Runs the wgmma float16 / bfloat16 matmul (matmul_wgmma.cu, through tg_cuda_matmul_half version
// 2) on small problems for ThreadSanitizer (test_cuda_emulated_matmul_wgmma.py): the emulated
// cp.async copies are plain stores and the emulated wgmma plain loads at issue, so a stage
// overwritten without a barrier after the reads it could overlap in the emulation is reported as
// a race. (The hardware's asynchronous wgmma reads are ordered by wait_group, which this cannot
// see; matmul_wgmma.cu argues that part.) K spans more slices than the ring has stages.
#include <cstdio>
#include <vector>

#include "tg_cuda.h"

namespace {

int run(int dtype, int trans_a, int trans_b, int64_t m, int64_t n, int64_t k) {
  std::vector<uint16_t> a(m * k), b(k * n), c(m * n), bi(n);
  for (size_t i = 0; i < a.size(); ++i) a[i] = static_cast<uint16_t>(0x3000 + i % 0x0c00);  // small normal numbers
  for (size_t i = 0; i < b.size(); ++i) b[i] = static_cast<uint16_t>(0x3000 + (i * 7) % 0x0c00);
  for (size_t i = 0; i < bi.size(); ++i) bi[i] = static_cast<uint16_t>(0x3000 + i);
  TgMatmul16 args{};
  args.batch = 1, args.m = m, args.n = n, args.k = k, args.dtype = dtype, args.trans_a = trans_a;
  args.trans_b = trans_b, args.activation = TG_EPILOGUE_RELU;
  args.a = a.data(), args.b = b.data(), args.bias = bi.data(), args.out = c.data();
  return tg_cuda_matmul_half(&args, 2, nullptr);
}

}  // namespace

int main() {
  int err = run(TG_DTYPE_F16, 0, 0, 24, 40, 392) | run(TG_DTYPE_BF16, 1, 1, 16, 16, 392);
  err |= run(TG_DTYPE_F16, 0, 1, 8, 24, 328) | run(TG_DTYPE_BF16, 1, 0, 8, 24, 328);
  std::printf("race driver done, error %d\n", err);
  return err;
}
