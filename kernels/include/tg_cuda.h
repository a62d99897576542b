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

// Fused epilogues of the GEMM kernels (epilogue.cuh): out = act(acc + bias).
enum { TG_EPILOGUE_NONE = 0, TG_EPILOGUE_RELU = 1 };

// out[i] = act(A[i] @ B[i] + bias) for i < batch, out (M, N). A (M, K) is a, or the transpose of
// a stored (K, M) when trans_a; B (K, N) is b, or the transpose of b stored (N, K) when trans_b
// (transposed views are read in place, no copy); each array C-contiguous, batch entries one after
// another. bias: null or N floats, one per output column; act: TG_EPILOGUE_NONE or _RELU (anything
// else returns cudaErrorInvalidValue). K == 0 writes act(bias) (zeros without a bias). out
// overlaps neither input nor bias.
int tg_cuda_matmul(const float* a, const float* b, const float* bias, float* out, int64_t batch, int64_t m,
                   int64_t n, int64_t k, int trans_a, int trans_b, int act, void* stream);
// The same product by v2 (128 x 128 blocks, 8 x 8 register tiles; matmul_v2.cu).
int tg_cuda_matmul_v2(const float* a, const float* b, const float* bias, float* out, int64_t batch, int64_t m,
                      int64_t n, int64_t k, int trans_a, int trans_b, int act, void* stream);
// v3, opt-in only: TF32 tensor cores (inputs rounded to a 10-bit mantissa, float32
// accumulation; about 1e-3 relative to |a| @ |b|). matmul_tf32.cu; sm_80+.
int tg_cuda_matmul_tf32(const float* a, const float* b, const float* bias, float* out, int64_t batch, int64_t m,
                        int64_t n, int64_t k, int trans_a, int trans_b, int act, void* stream);
// In place on y seen as (outer, channels, inner): y = act(y + bias[channel]) (bias_act.cu), the
// epilogue of a product that did not fuse it (conv: channels = C of NCHW, inner = H * W). bias:
// null or `channels` floats, not overlapping y; act as for tg_cuda_matmul.
int tg_cuda_bias_act(float* y, const float* bias, int64_t outer, int64_t channels, int64_t inner, int act,
                     void* stream);

// float16 / bfloat16 matmul on the tensor cores (matmul_f16.cu, sm_80+): for each of `batch`
// products, out = act(op(a) @ op(b) + bias) with float32 accumulation, stored in the input type
// (round to nearest even). a is (M, K), or (K, M) when trans_a (op = transpose); b is (K, N), or
// (N, K) when trans_b; out (M, N); batched arrays are (batch, ...) of those, C-contiguous. All
// arrays are raw 16-bit values of `dtype` (TG_DTYPE_F16 or TG_DTYPE_BF16, declared below), bias
// included: null or N elements. activation: TG_EPILOGUE_*. K == 0 writes act(bias) (zeros
// without bias). Fast path: K and the row length of each stored operand multiples of 8, a and b
// 16-byte aligned; other sizes and alignments take a slower path. out overlaps no input.
typedef struct {
  int64_t batch, m, n, k;
  int dtype;
  int trans_a, trans_b;
  int activation;
  const void* a;
  const void* b;
  const void* bias;
  void* out;
} TgMatmul16;
int tg_cuda_matmul_f16(const TgMatmul16* args, void* stream);
// The same product by Hopper's warpgroup MMA (matmul_wgmma.cu, sm_90a: compute capability 9.0
// only), for the fast path's shapes alone (tg_cuda_matmul_f16_wgmma_takes != 0; others return
// cudaErrorInvalidValue); cudaErrorNoKernelImageForDevice where tg_cuda_has_wgmma() is 0.
int tg_cuda_matmul_f16_wgmma(const TgMatmul16* args, void* stream);
int tg_cuda_matmul_f16_wgmma_takes(const TgMatmul16* args);
int tg_cuda_has_wgmma(void);  // the current device runs sm_90a code
// Kernel choice (matmul_half.cu): version 0 the wgmma kernel where it runs and takes the shape,
// else the mma.sync one; 1 the mma.sync kernel (tg_cuda_matmul_f16); 2 the wgmma kernel.
int tg_cuda_matmul_half(const TgMatmul16* args, int version, void* stream);

// Softmax along one dim of a C-contiguous array seen as (outer, n, inner), n the
// reduced dim's size; log != 0 gives log_softmax. out may be x exactly. dtype: TG_DTYPE_F32 or
// TG_DTYPE_F16 (every array of that type; float16 is computed in float32 and rounded once).
int tg_cuda_softmax(int dtype, const void* x, void* out, int64_t outer, int64_t n, int64_t inner, int log,
                    void* stream);
// softmax:     out = y * (gy - sum(gy * y, dim))  for y = softmax(x)
// log_softmax: out = gy - exp(y) * sum(gy, dim)   for y = log_softmax(x); out may be y or gy.
int tg_cuda_softmax_backward(int dtype, const void* y, const void* gy, void* out, int64_t outer, int64_t n,
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
// dtype: TG_DTYPE_F32 or TG_DTYPE_F16 (below; every array of that type, float16 computed in
// float32 and rounded once on the store); other dtypes return cudaErrorInvalidValue.
int tg_cuda_activation(int act, int dtype, const void* x, void* out, int64_t n, float param, void* stream);
int tg_cuda_activation_backward(int act, int dtype, const void* a, const void* gy, void* out, int64_t n,
                                float param, void* stream);

// Layer norm of `rows` rows of n elements; weight / bias (n) may be null.
// Writes y (rows, n), mean and rstd (rows). Outputs overlap nothing. dtype (TG_DTYPE_F32 or
// TG_DTYPE_F16) is that of x, weight, bias, y, gy, gx, gweight, gbias; mean, rstd and the
// workspace are float32 always.
int tg_cuda_layer_norm(int dtype, const void* x, const void* weight, const void* bias, void* y, float* mean,
                       float* rstd, int64_t rows, int64_t n, float eps, void* stream);
// gx (rows, n), gweight and gbias (n): sums over all rows (zeros when rows == 0).
// workspace: null, or tg_cuda_layer_norm_backward_workspace(rows, n) floats of
// scratch that let the parameter gradients be summed by more blocks (two stages).
int tg_cuda_layer_norm_backward(int dtype, const void* x, const void* weight, const float* mean, const float* rstd,
                                const void* gy, void* gx, void* gweight, void* gbias, float* workspace,
                                int64_t rows, int64_t n, void* stream);
int64_t tg_cuda_layer_norm_backward_workspace(int64_t rows, int64_t n);

// 2-D convolution (conv2d.cu): cross-correlation of NCHW x (n, c, h, w) with OIHW w
// (o, c / groups, kh, kw) into NCHW y (n, o, oh, ow), as implicit GEMMs that read the NCHW
// arrays in place (no layout change, no im2col buffer). oh, ow are the usual
// (h + 2 ph - dh (kh - 1) - 1) / sh + 1; the caller checks the geometry (csrc/common.h) and
// that tg_cuda_conv2d_fits says yes. Outputs overlap nothing.
typedef struct {
  int64_t n, c, h, w, o, kh, kw, oh, ow, sh, sw, ph, pw, dh, dw, groups;
} TgConv2dGeom;

// 1 when every size fits the kernels' 32-bit in-image index arithmetic (each field at most
// 2^28, an image plane and a kernel window at most 2^31 - 1 elements, at most 2^31 - 1 blocks
// per launch); the launchers return cudaErrorInvalidValue otherwise.
int tg_cuda_conv2d_fits(const TgConv2dGeom* g);
// y = act(conv(x, w) + bias): the Conv2d layer's bias and ReLU applied as y is stored (epilogue.cuh).
// bias: null or o floats, one per output channel, not overlapping y; act: TG_EPILOGUE_NONE or
// _RELU (anything else returns cudaErrorInvalidValue). An empty sum (c, kh or kw 0) writes act(bias).
int tg_cuda_conv2d(const float* x, const float* w, const float* bias, float* y, const TgConv2dGeom* g, int act,
                   void* stream);
// gx (n, c, h, w): the input gradient for output gradient gy; every element written.
int tg_cuda_conv2d_backward_input(const float* gy, const float* w, float* gx, const TgConv2dGeom* g,
                                  void* stream);
// gw (o, c / groups, kh, kw): the weight gradient, summed over all images and output pixels.
// workspace: null, or tg_cuda_conv2d_backward_weight_workspace(g) floats, which let the sum be
// split over more blocks (partial sums then added in a fixed order: deterministic either way).
int tg_cuda_conv2d_backward_weight(const float* gy, const float* x, float* gw, float* workspace,
                                   const TgConv2dGeom* g, void* stream);
int64_t tg_cuda_conv2d_backward_weight_workspace(const TgConv2dGeom* g);
// v2 on the tensor cores in TF32 (conv2d_tf32*.cu): the same contracts, inputs rounded to TF32
// (about 1e-3 relative error against |x| * |w| sums); the weight gradient's workspace size is
// its own (tg_cuda_conv2d_backward_weight_workspace_tf32) and it stays deterministic.
int tg_cuda_conv2d_tf32(const float* x, const float* w, const float* bias, float* y, const TgConv2dGeom* g, int act,
                        void* stream);
int tg_cuda_conv2d_backward_input_tf32(const float* gy, const float* w, float* gx, const TgConv2dGeom* g,
                                       void* stream);
int tg_cuda_conv2d_backward_weight_tf32(const float* gy, const float* x, float* gw, float* workspace,
                                        const TgConv2dGeom* g, void* stream);
int64_t tg_cuda_conv2d_backward_weight_workspace_tf32(const TgConv2dGeom* g);

// 2-D pooling (pool2d.cu) over NCHW x (n, c, h, w) into (n, c, oh, ow), with the semantics of
// the reference kernels (backends/reference_nn.py): windows start at o * s - p, cells outside
// the input are -inf (max) or 0 (avg). oh, ow come from the caller (ceil_mode included).
typedef struct {
  int64_t n, c, h, w, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw;
} TgPool2dGeom;

// 1 when every size fits the kernels' 32-bit in-image index arithmetic (as tg_cuda_conv2d_fits).
int tg_cuda_pool2d_fits(const TgPool2dGeom* g);
// y = the maximum of each window, arg = its flat index ih * w + iw in the input plane (the
// first of equal maxima; the last NaN wins over everything, as in PyTorch and the reference).
int tg_cuda_max_pool2d(const float* x, float* y, int64_t* arg, const TgPool2dGeom* g, void* stream);
// gx = gy scattered to the cells arg names, as a gather (each input cell sums its windows in
// window order): deterministic, no atomics. Every element of gx is written.
int tg_cuda_max_pool2d_backward(const float* gy, const int64_t* arg, float* gx, const TgPool2dGeom* g,
                                void* stream);
// Average pooling (dilation 1): y = window sum / divisor, the divisor being divisor_override
// when has_divisor, else the window's cells inside the input (count_include_pad = 0) or inside
// the padded input (1); the ceil-mode overhang never counts.
int tg_cuda_avg_pool2d(const float* x, float* y, const TgPool2dGeom* g, int count_include_pad, int has_divisor,
                       float divisor_override, void* stream);
int tg_cuda_avg_pool2d_backward(const float* gy, float* gx, const TgPool2dGeom* g, int count_include_pad,
                                int has_divisor, float divisor_override, void* stream);

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

// ---- scaled dot-product attention (attention_*.cu) ----------------------------------------
// out[b, l] = softmax_s(scale * q[b, l] . k[b, s] + mask) @ v[b, s] without storing the L x S
// scores: q (B, L, E), k (B, S, E), v (B, S, Ev), out (B, L, Ev), and lse (B, L) float32, the
// natural-log log-sum-exp of each row's masked, scaled scores (what the backward recomputes the
// probabilities from). E, Ev <= TG_SDPA_MAX_HEAD_DIM. is_causal keeps s <= l (PyTorch's
// top-left tril(ones(L, S))). A row with no key allowed gets NaN outputs and lse = -inf, as the
// materialised softmax does; the backward treats its probabilities as 0 (its gq row is 0 and it
// adds nothing to gk / gv).
#define TG_SDPA_MAX_HEAD_DIM 128
enum { TG_MASK_NONE = 0, TG_MASK_BOOL = 1, TG_MASK_ADD = 2 };  // bool: nonzero = may attend; add: float32
enum { TG_DTYPE_F32 = 0, TG_DTYPE_F16 = 1, TG_DTYPE_BF16 = 2 };
typedef struct {
  int64_t batch, q_len, kv_len, head_dim, v_dim;  // B, L, S, E, Ev
  int dtype;                                      // of q, k, v, out, gout, gq, gk, gv
  const void* q;
  const void* k;
  const void* v;
  const void* mask;          // null for TG_MASK_NONE
  int mask_kind;
  int64_t mask_stride_b, mask_stride_l, mask_stride_s;  // in elements; 0 broadcasts that dim
  int is_causal;
  float scale;
  void* out;                 // forward outputs; backward inputs
  float* lse;
  const void* gout;          // backward only: gradient of out, (B, L, Ev)
  float* delta;              // backward scratch (B, L): rowsum(gout * out)
  void* gq;                  // backward outputs (B, L, E), (B, S, E), (B, S, Ev)
  void* gk;
  void* gv;
} TgSdpa;
// float32: version 1 the simple kernels (a warp per row), 2 the tiled ones. float16 / bfloat16
// (q, k, v, out, gout, gq, gk, gv as raw 16-bit values, 4-byte aligned; lse, delta float32):
// version 3, on the tensor cores (sm_80+), E == Ev == 64 or 128; its backward is deterministic
// (no atomics). Anything else returns cudaErrorInvalidValue.
int tg_cuda_sdpa_forward(const TgSdpa* a, int version, void* stream);
int tg_cuda_sdpa_backward(const TgSdpa* a, int version, void* stream);

// ---- cross-entropy with class-index targets (cross_entropy.cu) ----------------------------
// logits (rows, classes) float32, target (rows) int64, weight (classes) or null. Per row, with
// p = log_softmax(logits[r]), t = target[r], w = weight (all ones when null), e = smoothing:
//   loss[r] = (1 - e) * (-w[t] * p[t]) + (e / classes) * (-sum_c w[c] * p[c])  (e == 0: the first term)
// and 0 where t == ignore_index; lse[r] = logsumexp(logits[r]). A target outside [0, classes)
// that is not ignore_index gives a NaN loss and sets *error to 1 (error: one int32, zeroed by
// the caller; the logits are never read out of bounds).
int tg_cuda_cross_entropy(const float* logits, const int64_t* target, const float* weight, float* loss,
                          float* lse, int* error, int64_t rows, int64_t classes, int64_t ignore_index,
                          float label_smoothing, void* stream);
// glogits = grow[r] * d loss[r] / d logits[r]: with q = softmax(logits[r]), W = sum_c w[c],
//   (1 - e) * w[t] * (q - onehot(t)) + (e / classes) * (W * q - w)
// 0 for ignored rows, NaN for rows whose target is out of range.
int tg_cuda_cross_entropy_backward(const float* logits, const float* lse, const int64_t* target,
                                   const float* weight, const float* grow, float* glogits, int64_t rows,
                                   int64_t classes, int64_t ignore_index, float label_smoothing,
                                   void* stream);

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
