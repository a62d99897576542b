// The float16 / bfloat16 matmul's kernel choice (tg_cuda_matmul_half in tg_cuda.h): Hopper's
// wgmma kernel (matmul_wgmma.cu) where the device runs sm_90a code and the shape suits it, the
// mma.sync kernel (matmul_f16.cu) everywhere else. Both tile C in 128 x 256 blocks, so there is
// no size below which the older kernel would win by tiling; a GPU run may still find one.
#include <cuda_runtime.h>

#include "tg_cuda.h"

extern "C" int tg_cuda_matmul_half(const TgMatmul16* args, int version, void* stream) {
  switch (version) {
    case 0:
      if (tg_cuda_matmul_f16_wgmma_takes(args) && tg_cuda_has_wgmma()) return tg_cuda_matmul_f16_wgmma(args, stream);
      return tg_cuda_matmul_f16(args, stream);
    case 1:
      return tg_cuda_matmul_f16(args, stream);
    case 2:
      return tg_cuda_matmul_f16_wgmma(args, stream);
    default:
      return static_cast<int>(cudaErrorInvalidValue);
  }
}
