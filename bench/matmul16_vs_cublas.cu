// tg_cuda_matmul_f16 against cuBLAS (cublasGemmEx, 16-bit in and out, float32 accumulation, the
// call PyTorch makes) on one GPU: median time of 20 runs each, TFLOP/s, the ratio, and the largest
// difference from cuBLAS's result relative to max |cuBLAS|. On a GPU machine, from the repository root:
//   nvcc -O3 -std=c++17 -arch=sm_90 -Ikernels/include -Ikernels/cuda bench/matmul16_vs_cublas.cu \
//        kernels/cuda/matmul_f16.cu -lcublas -o /tmp/mm16 && /tmp/mm16 [M N K]
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "tg_cuda.h"

#define CHECK(x)                                                                     \
  do {                                                                               \
    int e_ = static_cast<int>(x);                                                    \
    if (e_ != 0) {                                                                   \
      std::fprintf(stderr, "%s:%d: %s failed with %d\n", __FILE__, __LINE__, #x, e_); \
      std::exit(1);                                                                  \
    }                                                                                \
  } while (0)

__global__ void fill(uint16_t* p, int64_t n, uint32_t seed, int bf16) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    uint32_t h = static_cast<uint32_t>(i) * 2654435761u ^ seed;
    h ^= h >> 13;
    h *= 0x5bd1e995u;
    h ^= h >> 15;
    const float v = (h & 0xffff) / 32768.0f - 1.0f;
    p[i] = bf16 ? __bfloat16_as_ushort(__float2bfloat16(v)) : __half_as_ushort(__float2half(v));
  }
}

float to_float(uint16_t b, int bf16) {
  if (bf16) {
    uint32_t w = static_cast<uint32_t>(b) << 16;
    float f;
    std::memcpy(&f, &w, 4);
    return f;
  }
  return __half2float(__ushort_as_half(b));
}

template <typename F>
float median_ms(F run, int reps) {
  cudaEvent_t t0, t1;
  cudaEventCreate(&t0);
  cudaEventCreate(&t1);
  run();  // warm up
  std::vector<float> ms;
  for (int r = 0; r < reps; ++r) {
    cudaEventRecord(t0);
    run();
    cudaEventRecord(t1);
    cudaEventSynchronize(t1);
    float x;
    cudaEventElapsedTime(&x, t0, t1);
    ms.push_back(x);
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

int main(int argc, char** argv) {
  const int64_t M = argc > 3 ? std::atoll(argv[1]) : 8192, N = argc > 3 ? std::atoll(argv[2]) : 8192,
                K = argc > 3 ? std::atoll(argv[3]) : 8192;
  uint16_t *a, *b, *c, *ref;
  CHECK(cudaMalloc(&a, M * K * 2));
  CHECK(cudaMalloc(&b, K * N * 2));
  CHECK(cudaMalloc(&c, M * N * 2));
  CHECK(cudaMalloc(&ref, M * N * 2));
  cublasHandle_t h;
  CHECK(cublasCreate(&h));
  const double flop = 2.0 * M * N * K;
  for (int bf16 = 0; bf16 < 2; ++bf16) {
    fill<<<1024, 256>>>(a, M * K, 1, bf16);
    fill<<<1024, 256>>>(b, K * N, 2, bf16);
    const cudaDataType t = bf16 ? CUDA_R_16BF : CUDA_R_16F;
    for (int ta = 0; ta < 2; ++ta) {
      for (int tb = 0; tb < 2; ++tb) {
        // Row-major out = op(a) @ op(b) is column-major out^T = op(b)^T @ op(a)^T.
        const float one = 1.0f, zero = 0.0f;
        auto cublas = [&] {
          CHECK(cublasGemmEx(h, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K, &one, b, t,
                             tb ? K : N, a, t, ta ? M : K, &zero, ref, t, N, CUBLAS_COMPUTE_32F,
                             CUBLAS_GEMM_DEFAULT));
        };
        TgMatmul16 args{};
        args.batch = 1, args.m = M, args.n = N, args.k = K, args.dtype = bf16 ? TG_DTYPE_BF16 : TG_DTYPE_F16;
        args.trans_a = ta, args.trans_b = tb, args.a = a, args.b = b, args.out = c;
        auto ours = [&] { CHECK(tg_cuda_matmul_f16(&args, nullptr)); };
        const float ms_ref = median_ms(cublas, 20), ms = median_ms(ours, 20);
        CHECK(cudaDeviceSynchronize());
        std::vector<uint16_t> hc(M * N), hr(M * N);
        CHECK(cudaMemcpy(hc.data(), c, M * N * 2, cudaMemcpyDeviceToHost));
        CHECK(cudaMemcpy(hr.data(), ref, M * N * 2, cudaMemcpyDeviceToHost));
        double diff = 0, scale = 0;
        for (int64_t i = 0; i < M * N; ++i) {
          const double x = to_float(hc[i], bf16), y = to_float(hr[i], bf16);
          diff = std::max(diff, std::fabs(x - y));
          if (std::isnan(x)) diff = INFINITY;
          scale = std::max(scale, std::fabs(y));
        }
        std::printf("%s %lldx%lldx%lld trans_a=%d trans_b=%d  ours %.3f ms %.1f TFLOP/s  cuBLAS %.3f ms %.1f TFLOP/s  "
                    "ratio %.3f  max|diff|/max|ref| %.2e\n",
                    bf16 ? "bf16" : "f16 ", (long long)M, (long long)N, (long long)K, ta, tb, ms, flop / ms / 1e9,
                    ms_ref, flop / ms_ref / 1e9, ms_ref / ms, diff / scale);
      }
    }
  }
  return 0;
}
