// y = act(y + bias[channel]) in place over y seen as (outer, channels, inner): the Linear /
// Conv2d epilogue when the product that made y did not apply it. One thread per element in a
// grid-stride loop; the channel index uses 32-bit division when every index fits (64-bit
// division is several times the cost of the memory traffic it serves).
#include <cuda_runtime.h>
#include <stdint.h>

#include "epilogue.cuh"
#include "tg_cuda.h"

namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 65535;

template <typename Index>
__global__ void __launch_bounds__(kThreads)
bias_act_kernel(float* __restrict__ y, const float* __restrict__ bias, Index size, Index channels, Index inner,
                int act) {
  const Index stride = static_cast<Index>(gridDim.x) * kThreads;
  for (Index i = static_cast<Index>(blockIdx.x) * kThreads + threadIdx.x; i < size; i += stride) {
    const float b = bias != nullptr ? bias[(i / inner) % channels] : 0.0f;
    y[i] = tg::cuda::epilogue::apply(y[i], b, act);
  }
}

}  // namespace

extern "C" int tg_cuda_bias_act(float* y, const float* bias, int64_t outer, int64_t channels, int64_t inner,
                                int act, void* stream) {
  if (act != TG_EPILOGUE_NONE && act != TG_EPILOGUE_RELU) return static_cast<int>(cudaErrorInvalidValue);
  const int64_t size = outer * channels * inner;
  if (size <= 0 || (bias == nullptr && act == TG_EPILOGUE_NONE)) return 0;
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  const int64_t want = (size + kThreads - 1) / kThreads;
  const unsigned blocks = static_cast<unsigned>(want < kMaxBlocks ? want : kMaxBlocks);
  // i + stride must not wrap either: 32-bit indices below 2^31 leave room for it.
  if (size + static_cast<int64_t>(blocks) * kThreads < (int64_t{1} << 32)) {
    bias_act_kernel<uint32_t><<<blocks, kThreads, 0, s>>>(y, bias, static_cast<uint32_t>(size),
                                                          static_cast<uint32_t>(channels),
                                                          static_cast<uint32_t>(inner), act);
  } else {
    bias_act_kernel<int64_t><<<blocks, kThreads, 0, s>>>(y, bias, size, channels, inner, act);
  }
  return static_cast<int>(cudaGetLastError());
}
