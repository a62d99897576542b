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
// The same product by v2 (128 x 128 blocks, 8 x 8 register tiles; matmul_v2.cu).
int tg_cuda_matmul_v2(const float* a, const float* b, float* out, int64_t batch, int64_t m,
                      int64_t n, int64_t k, void* stream);
// v3, opt-in only: TF32 tensor cores (inputs rounded to a 10-bit mantissa, float32
// accumulation; about 1e-3 relative to |a| @ |b|). matmul_tf32.cu; sm_80+.
int tg_cuda_matmul_tf32(const float* a, const float* b, float* out, int64_t batch, int64_t m,
                        int64_t n, int64_t k, void* stream);

// Softmax along one dim of a C-contiguous array seen as (outer, n, inner), n the
// reduced dim's size; log != 0 gives log_softmax. out may be x exactly.
int tg_cuda_softmax(const float* x, float* out, int64_t outer, int64_t n, int64_t inner, int log,
                    void* stream);
// softmax:     out = y * (gy - sum(gy * y, dim))  for y = softmax(x)
// log_softmax: out = gy - exp(y) * sum(gy, dim)   for y = log_softmax(x); out may be y or gy.
int tg_cuda_softmax_backward(const float* y, const float* gy, float* out, int64_t outer, int64_t n,
                             int64_t inner, int log, void* stream);

// Elementwise activations (kinds below). param is leaky_relu's slope, unused by
// the others. The backward takes y = f(x) for sigmoid and tanh, x for the rest.
// Unknown kinds return cudaErrorInvalidValue. out may be an input exactly.
enum {
  TG_ACT_SIGMOID = 0,
  TG_ACT_TANH = 1,
  TG_ACT_GELU = 2,       // exact: x * Phi(x)
  TG_ACT_GELU_TANH = 3,  // PyTorch's approximate="tanh"
  TG_ACT_SILU = 4,
  TG_ACT_LEAKY_RELU = 5
};
int tg_cuda_activation(int act, const float* x, float* out, int64_t n, float param, void* stream);
int tg_cuda_activation_backward(int act, const float* a, const float* gy, float* out, int64_t n,
                                float param, void* stream);

// Layer norm of `rows` rows of n elements; weight / bias (n) may be null.
// Writes y (rows, n), mean and rstd (rows). Outputs overlap nothing.
int tg_cuda_layer_norm(const float* x, const float* weight, const float* bias, float* y, float* mean,
                       float* rstd, int64_t rows, int64_t n, float eps, void* stream);
// gx (rows, n), gweight and gbias (n): sums over all rows (zeros when rows == 0).
// workspace: null, or tg_cuda_layer_norm_backward_workspace(rows, n) floats of
// scratch that let the parameter gradients be summed by more blocks (two stages).
int tg_cuda_layer_norm_backward(const float* x, const float* weight, const float* mean, const float* rstd,
                                const float* gy, float* gx, float* gweight, float* gbias, float* workspace,
                                int64_t rows, int64_t n, void* stream);
int64_t tg_cuda_layer_norm_backward_workspace(int64_t rows, int64_t n);

// Fused multi-tensor optimizer steps. Host arrays of `count` device pointers and
// element counts; s1/s2/s3 are optimizer-state lists (null list = absent).
// Tensors with n == 0 are skipped. One launch per kTgOptMaxTensors tensors.
#define kTgOptMaxTensors 256
typedef struct {
  int64_t count;
  float* const* p;
  const float* const* g;
  float* const* s1;  // Adam: exp_avg;     SGD: momentum_buffer (null: no momentum)
  float* const* s2;  // Adam: exp_avg_sq
  float* const* s3;  // Adam: max_exp_avg_sq (null: no amsgrad)
  const int64_t* n;
} TgOptTensors;

// Scalars precomputed on the host (in double, then rounded), following PyTorch:
//   g = -grad if maximize; Adam: g += weight_decay * p; AdamW: p *= decay (1 - lr * wd)
//   m = lerp(m, g, 1 - beta1); v = beta2 * v + (1 - beta2) * g * g; vmax = max(vmax, v)
//   p -= step_size * m / (sqrt(v) / bias_correction2_sqrt + eps)
//   step_size = lr / (1 - beta1^t), bias_correction2_sqrt = sqrt(1 - beta2^t)
typedef struct {
  float beta1, beta2, one_minus_beta1, one_minus_beta2;
  float step_size, bias_correction2_sqrt, eps;
  float weight_decay, decay;
  int decoupled, maximize, lerp_small;  // lerp_small: 1 - beta1 < 0.5 (torch's lerp formula choice)
} TgAdamHyper;

//   g = -grad if maximize; g += weight_decay * p
//   momentum: b = g (first step) or momentum * b + (1 - dampening) * g; g = g + momentum * b (nesterov) or b
//   p -= lr * g
typedef struct {
  float lr, momentum, one_minus_dampening, weight_decay;
  int nesterov, maximize, first_step;
} TgSgdHyper;

int tg_cuda_adam_step(const TgOptTensors* tensors, const TgAdamHyper* hyper, void* stream);
int tg_cuda_sgd_step(const TgOptTensors* tensors, const TgSgdHyper* hyper, void* stream);
int tg_cuda_opt_max_tensors_per_launch(void);

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
