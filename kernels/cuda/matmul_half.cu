// The float16 / bfloat16 matmul's kernel choice (tg_cuda_matmul_half in tg_cuda.h): version 1
// is the mma.sync kernel (matmul_f16.cu, every GPU), version 2 Hopper's wgmma kernel
// (matmul_wgmma.cu, sm_90a, the shapes tg_cuda_matmul_f16_wgmma_takes accepts).
//
// Version 0 (automatic) is the mma.sync kernel until a GPU run has checked the wgmma one: its
// asynchronous parts (wgmma in flight while the next stage lands, the proxy fences) are exactly
// what the CPU emulation cannot see, so it stays opt-in. Once bench/matmul_gpu.py and the GPU
// tests pass, case 0 becomes: wgmma where tg_cuda_matmul_f16_wgmma_takes(args) and
// tg_cuda_has_wgmma(), mma.sync elsewhere.
#include <cuda_runtime.h>

#include "tg_cuda.h"

extern "C" int tg_cuda_matmul_half(const TgMatmul16* args, int version, void* stream) {
  switch (version) {
    case 0:
    case 1:
      return tg_cuda_matmul_f16(args, stream);
    case 2:
      return tg_cuda_matmul_f16_wgmma(args, stream);
    default:
      return static_cast<int>(cudaErrorInvalidValue);
  }
}
