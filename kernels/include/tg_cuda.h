// tilegrad CUDA kernels: plain C entry points with no CUDA types, so the
// pybind11 glue (csrc/cuda_module.cpp) compiles with an ordinary C++ compiler.
//
// Launchers take device pointers to C-contiguous float32 buffers and a stream
// handle (cudaStream_t as void*; nullptr = legacy default stream). They queue
// the work and return the cudaError_t of the launch (0 = success) without
// synchronising. Arguments are checked by the caller (csrc/).
#pragma once

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

int tg_cuda_relu(const float* x, float* out, int64_t n, void* stream);
int tg_cuda_relu_backward(const float* x, const float* gy, float* out, int64_t n, void* stream);

// out[b] = a[b] @ b[b] for b < batch; a (M, K), b (K, N), out (M, N). K == 0 writes zeros.
int tg_cuda_matmul(const float* a, const float* b, float* out, int64_t batch, int64_t m,
                   int64_t n, int64_t k, void* stream);

// Queries. Each returns a cudaError_t (0 = success).
int tg_cuda_device_count(int* count);
int tg_cuda_device_name(int device, char* buf, int len);
int tg_cuda_compute_capability(int device, int* major, int* minor);
int tg_cuda_runtime_version(int* version);
int tg_cuda_driver_version(int* version);

// 1 when the error means "this machine has no usable GPU" (no device, no or too old driver).
int tg_cuda_is_no_device_error(int error);
const char* tg_cuda_error_name(int error);
const char* tg_cuda_error_string(int error);

#ifdef __cplusplus
}
#endif
