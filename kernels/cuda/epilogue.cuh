// The fused epilogue of the GEMM kernels (matmul, conv): out = act(acc + bias), applied to each
// float32 accumulator before it is stored, so a Linear or Conv2d layer with its bias and ReLU
// writes its output once instead of three times. The activation codes are tg_cuda.h's
// TG_EPILOGUE_* (the C API); bias is per output column for matmul (Linear), per output channel
// for conv. CUDA code: include only from .cu files (also built by the CPU test emulation).
#pragma once

#include "tg_cuda.h"

namespace tg {
namespace cuda {
namespace epilogue {

// act(v + b) for one of the TG_EPILOGUE_* codes (the caller has checked the code).
__device__ __forceinline__ float apply(float v, float b, int act) {
  v += b;
  if (act == TG_EPILOGUE_RELU) v = v < 0.0f ? 0.0f : v;  // NaN passes, like relu.cu and PyTorch
  return v;
}

}  // namespace epilogue
}  // namespace cuda
}  // namespace tg
