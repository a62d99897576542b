// tilegrad CPU kernels: pure compute on raw pointers, no Python headers.
//
// Every kernel requires C-contiguous float32 buffers and trusts its caller
// (csrc/) to have checked dtypes, shapes, contiguity and aliasing.
#pragma once

#include <cstdint>

namespace tg {
namespace cpu {

// Instruction-set paths, ordered from least to most capable.
enum class Isa : int { generic = 0, avx2 = 1, avx512 = 2 };

const char* isa_name(Isa isa);

// The best path this CPU (and OS) can execute: avx512 needs AVX-512F,
// avx2 needs AVX2 and FMA.
Isa detected_isa();

// Parses a TILEGRAD_CPU_ISA value ("generic", "avx2", "avx512").
// Returns false (and leaves *out alone) for anything else.
bool parse_isa(const char* text, Isa* out);

// The path the kernels run: detected_isa(), capped by the TILEGRAD_CPU_ISA
// environment variable when it names a valid ISA. Read once per process.
Isa active_isa();

// Worker threads OpenMP will use (honours OMP_NUM_THREADS).
int num_threads();

// out[i] = x[i] > 0 ? x[i] : 0 (NaN propagates, like numpy.maximum(x, 0)).
// out may be x itself.
void relu(const float* x, float* out, int64_t n);

// out[i] = x[i] > 0 ? gy[i] : 0. out may be x or gy itself.
void relu_backward(const float* x, const float* gy, float* out, int64_t n);

// C[b] = A[b] @ B[b] for b in [0, batch): A is (M, K), B is (K, N), C is (M, N),
// all row-major and densely packed, batch matrices back to back. trans_a: a
// holds A^T, i.e. (K, M) matrices; trans_b: b holds B^T, (N, K) matrices.
// K == 0 writes zeros. out must not overlap a or b.
void matmul(const float* a, const float* b, float* c, int64_t batch,
            int64_t m, int64_t n, int64_t k, bool trans_a = false, bool trans_b = false);

// ---- softmax, activations, layer norm (kernels/cpu/nn*.cpp) ---------------------------
// x viewed as (outer, n, inner) with the softmax dim of size n: inner == 1 is a
// contiguous row, inner > 1 a strided column (no transposing copy).

// y = softmax(x) (log: log_softmax) along the middle axis. y may be x itself.
void softmax(const float* x, float* y, int64_t outer, int64_t n, int64_t inner, bool log);

// softmax: gx = y * (gy - sum(gy * y)); log: gx = gy - exp(y) * sum(gy).
// gx may be y or gy itself.
void softmax_backward(const float* y, const float* gy, float* gx, int64_t outer, int64_t n,
                      int64_t inner, bool log);

// Elementwise activations. gelu is the exact (erf) form, gelu_tanh PyTorch's
// approximate="tanh"; param is leaky_relu's negative slope (ignored otherwise).
enum class Act : int { sigmoid = 0, tanh = 1, gelu = 2, gelu_tanh = 3, silu = 4, leaky_relu = 5 };

// out = act(x); out may be x itself.
void activation(Act act, const float* x, float* out, int64_t n, float param);

// The epilogue of a Linear or Conv2d: y = act(y + bias) in place, with y seen as
// (outer, channels, inner) and bias[c] added along the channel axis (Linear: inner
// == 1; NCHW conv: inner == H * W). bias may be null (activation only).
enum class Epilogue : int { none = 0, relu = 1, act = 2 };  // act: `act` with `param`
void bias_act(float* y, const float* bias, int64_t outer, int64_t channels, int64_t inner,
              Epilogue epilogue, Act act, float param);

// out = gy * act'(.): `a` is the forward output y for sigmoid and tanh, the
// input x for the others. out may be a or gy itself.
void activation_backward(Act act, const float* a, const float* gy, float* out, int64_t n,
                         float param);

// Layer norm over rows of n: y = (x - mean) * rstd [* w] [+ b], with mean and
// rstd (one per row) written out. w, b may be null. Outputs overlap nothing.
void layer_norm(const float* x, const float* w, const float* b, float* y, float* mean, float* rstd,
                int64_t rows, int64_t n, float eps);

// gx (rows x n), and gw, gb (n): sums over rows of gy * xhat and gy. w may be
// null (gw, gb are still computed). Outputs overlap nothing.
void layer_norm_backward(const float* x, const float* w, const float* mean, const float* rstd,
                         const float* gy, float* gx, float* gw, float* gb, int64_t rows, int64_t n);

// ---- 2-D convolution (kernels/cpu/conv.cpp) --------------------------------------------

// NCHW input (n, c, h, w), OIHW weight (o, c / groups, kh, kw), output (n, o, oh, ow) with
// oh = (h + 2 ph - dh (kh - 1) - 1) / sh + 1 (likewise ow). The caller checks the geometry.
struct Conv2dGeom {
  int64_t n, c, h, w, o, kh, kw, oh, ow, sh, sw, ph, pw, dh, dw, groups;
};

// Cross-correlation, im2col into a reused workspace + matmul. y overlaps nothing.
void conv2d(const float* x, const float* w, float* y, const Conv2dGeom& g);

// gx (n, c, h, w) = the gradient of conv2d's input for output gradient gy (n, o, oh, ow):
// w^T @ gy per image and group, then col2im. gx overlaps nothing.
void conv2d_backward_input(const float* gy, const float* w, float* gx, const Conv2dGeom& g);

// gw (o, c / groups, kh, kw) = the gradient of conv2d's weight: gy @ im2col(x)^T summed
// over the images (deterministic order). gw overlaps nothing.
void conv2d_backward_weight(const float* gy, const float* x, float* gw, const Conv2dGeom& g);

// ---- optimizer steps (kernels/cpu/optim.cpp) --------------------------------------------
// One parameter of n floats updated in place with exactly the float32 operations of
// tilegrad.optim's array code (see there for the algorithms). Scalars arrive as the Python
// doubles and are rounded to float32 where the array code rounds them.
struct AdamStep {
  double lerp_weight;   // 1 - beta1
  double decay;         // 1 - lr * weight_decay, applied when decoupled (AdamW)
  double weight_decay;  // added to the gradient when not decoupled (Adam); 0: none
  double beta2, bias2_sqrt, eps, step_size;  // sqrt(1 - beta2^t), lr / (1 - beta1^t)
  bool decoupled, maximize;
};
// v_max: nullptr unless amsgrad. p, grad, m, v, v_max do not overlap.
void adam_step(float* p, const float* grad, float* m, float* v, float* v_max, int64_t n,
               const AdamStep& h);

struct SgdStep {
  double lr, momentum, dampening, weight_decay;
  bool nesterov, maximize, first_step;  // first_step: buf = g (PyTorch's first momentum step)
};
// buf: nullptr when momentum == 0. p, grad, buf do not overlap.
void sgd_step(float* p, const float* grad, float* buf, int64_t n, const SgdStep& h);
// ---- 2-D pooling (kernels/cpu/pool*.cpp) -----------------------------------------------

// NCHW input (n, c, h, w) pooled into (n, c, oh, ow): window (oh, ow) reads rows
// oh*sh - ph + i*dh (i < kh) and columns ow*sw - pw + j*dw (j < kw); taps outside the
// image are padding. The caller computes oh, ow (floor or ceil mode) and checks that every
// max-pooling window has at least one tap inside the image. Average pooling has dh = dw = 1.
struct Pool2dGeom {
  int64_t n, c, h, w, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw;
};

// y = the maximum of each window; arg = its flat index ih * w + iw in the input plane
// (PyTorch's return_indices). The first maximum in window order wins; a NaN wins over
// everything (the last NaN, as in PyTorch). Outputs overlap nothing.
void max_pool2d(const float* x, float* y, int64_t* arg, const Pool2dGeom& g);

// gx = 0, then gx[plane][arg] += gy for every output. Returns false (and skips them) when
// some arg lies outside [0, h * w). gx overlaps nothing.
bool max_pool2d_backward(const float* gy, const int64_t* arg, float* gx, const Pool2dGeom& g);

// What an average window divides by: divisor_override when > 0; otherwise the window's
// cells inside the image, plus its padding cells when count_include_pad (never the cells
// that ceil mode adds past the padding) -- PyTorch's rule.
struct AvgPoolDivisor {
  bool count_include_pad;
  int64_t divisor_override;
};

// y = the sum of each window / its divisor. y overlaps nothing.
void avg_pool2d(const float* x, float* y, const Pool2dGeom& g, AvgPoolDivisor d);

// gx = the input gradient of avg_pool2d: each gy / divisor added to its window's cells.
// gx overlaps nothing.
void avg_pool2d_backward(const float* gy, float* gx, const Pool2dGeom& g, AvgPoolDivisor d);

// ---- cross-entropy of logits and class indices (kernels/cpu/loss*.cpp) ------------------

// Rows of logits x (rows, c) against targets t (rows): every t[r] is either ignore_index or
// in [0, c) (the caller checks). w (c) may be null (all ones); eps is label_smoothing.
// lse[r] = log(sum_c exp(x[r, c])); loss[r] = 0 for an ignored row, else PyTorch's
//   (1 - eps) w[t] (lse - x[t]) + eps / c * sum_c w[c] (lse - x[c]).
// Outputs overlap nothing.
void cross_entropy_forward(const float* x, const int64_t* t, const float* w, float* loss, float* lse,
                           int64_t rows, int64_t c, int64_t ignore_index, float eps);

// gx[r] = grow[r] * d loss[r] / d x[r]: grow[r] * (softmax(x[r]) * ((1 - eps) w[t] + eps / c *
// sum(w)) - (1 - eps) w[t] onehot(t) - eps / c * w), 0 for an ignored row. gx overlaps nothing.
void cross_entropy_backward(const float* x, const float* lse, const int64_t* t, const float* w,
                            const float* grow, float* gx, int64_t rows, int64_t c, int64_t ignore_index,
                            float eps);
// ---- scaled dot-product attention (kernels/cpu/attention*.cpp) --------------------------

// q (batch, l, e), k (batch, s, e), v (batch, s, ev), out (batch, l, ev), lse (batch, l).
struct AttentionDims {
  int64_t batch, l, s, e, ev;
};

// An optional mask of shape (batch, rows, s) broadcast to (dims.batch, l, s): batch is 1 or
// dims.batch, rows is 1 (the same for every query) or l. At most one of `add` (added to the
// scaled scores) and `keep` (nonzero: may attend; zero: masked) is set; neither: no mask.
struct AttentionMask {
  const float* add = nullptr;
  const uint8_t* keep = nullptr;
  int64_t batch = 1, rows = 1;
};

// out = softmax(scale * q k^T + mask) v per batch, flash style (query x key tiles, online
// softmax; the l x s scores are never stored whole), and lse = the log-sum-exp of each row of
// the scaled, masked scores. causal masks key j > query i (top-left aligned). A row with no
// key left gives out 0 and lse -inf. Outputs overlap nothing.
void sdpa_forward(const float* q, const float* k, const float* v, const AttentionMask& mask, bool causal,
                  float scale, const AttentionDims& dims, float* out, float* lse);

// Gradients of sdpa_forward for the output gradient gout, recomputing the probabilities
// tile by tile from lse. Outputs overlap nothing.
void sdpa_backward(const float* q, const float* k, const float* v, const AttentionMask& mask, bool causal,
                   float scale, const AttentionDims& dims, const float* out, const float* lse,
                   const float* gout, float* gq, float* gk, float* gv);

}  // namespace cpu
}  // namespace tg
