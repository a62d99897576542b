// Host-side device queries behind plain C functions (see tg_cuda.h).
#include <cuda_runtime.h>

#include <cstring>

#include "tg_cuda.h"

extern "C" int tg_cuda_device_count(int* count) {
  *count = 0;
  cudaError_t err = cudaGetDeviceCount(count);
  if (err != cudaSuccess) *count = 0;
  return static_cast<int>(err);
}

extern "C" int tg_cuda_device_name(int device, char* buf, int len) {
  if (len > 0) buf[0] = '\0';
  cudaDeviceProp prop;
  cudaError_t err = cudaGetDeviceProperties(&prop, device);
  if (err != cudaSuccess) return static_cast<int>(err);
  if (len > 0) {
    std::strncpy(buf, prop.name, static_cast<size_t>(len) - 1);
    buf[len - 1] = '\0';
  }
  return 0;
}

extern "C" int tg_cuda_compute_capability(int device, int* major, int* minor) {
  *major = 0;
  *minor = 0;
  cudaError_t err = cudaDeviceGetAttribute(major, cudaDevAttrComputeCapabilityMajor, device);
  if (err != cudaSuccess) return static_cast<int>(err);
  return static_cast<int>(cudaDeviceGetAttribute(minor, cudaDevAttrComputeCapabilityMinor, device));
}

extern "C" int tg_cuda_runtime_version(int* version) {
  *version = 0;
  return static_cast<int>(cudaRuntimeGetVersion(version));
}

extern "C" int tg_cuda_driver_version(int* version) {
  *version = 0;  // cudaDriverGetVersion reports 0 when no driver is installed
  return static_cast<int>(cudaDriverGetVersion(version));
}

extern "C" int tg_cuda_is_no_device_error(int error) {
  return error == cudaErrorNoDevice || error == cudaErrorInsufficientDriver;
}

extern "C" const char* tg_cuda_error_name(int error) {
  return cudaGetErrorName(static_cast<cudaError_t>(error));
}

extern "C" const char* tg_cuda_error_string(int error) {
  return cudaGetErrorString(static_cast<cudaError_t>(error));
}
