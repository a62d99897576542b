// Fused multi-tensor optimizer steps (AdamW / Adam, SGD with momentum), float32.
//
// One launch updates up to kTgOptMaxTensors tensors: their pointers and sizes
// travel by value in the kernel's parameters (a __grid_constant__ struct of
// about 15 KB; sm_70+ with CUDA 12.1+ allow 32 KB), so no device-side table has
// to be allocated or copied. Each tensor is cut into chunks of kChunk elements;
// a block takes chunks (grid-stride over all chunks of all tensors), finds the
// chunk's tensor by binary search over the chunks' prefix sums, and updates it
// elementwise with coalesced loads. More tensors take more launches.
#include <cuda_runtime.h>
#include <math.h>

#include "tg_cuda.h"
#include "tg_cuda_device.h"

namespace {

constexpr int kThreads = 256;
constexpr int64_t kChunk = 8192;
constexpr int kMax = kTgOptMaxTensors;

// p: parameters, g: gradients, s1/s2/s3: optimizer state (exp_avg, exp_avg_sq,
// max_exp_avg_sq for Adam; the momentum buffer in s1 for SGD; unused ones null).
struct TensorList {
  float* p[kMax];
  const float* g[kMax];
  float* s1[kMax];
  float* s2[kMax];
  float* s3[kMax];
  int64_t n[kMax];
  int64_t chunk0[kMax + 1];  // first chunk of tensor t; chunk0[count] = all chunks
  int count;
};

struct ChunkRange {
  int t;
  int64_t begin, end;
};

__device__ __forceinline__ ChunkRange find_chunk(const TensorList& L, int64_t c) {
  int lo = 0, hi = L.count - 1;  // the last t with chunk0[t] <= c (chunk0 strictly increases)
  while (lo < hi) {
    const int mid = (lo + hi + 1) / 2;
    if (L.chunk0[mid] <= c) {
      lo = mid;
    } else {
      hi = mid - 1;
    }
  }
  ChunkRange r;
  r.t = lo;
  r.begin = (c - L.chunk0[lo]) * kChunk;
  r.end = r.begin + kChunk < L.n[lo] ? r.begin + kChunk : L.n[lo];
  return r;
}

__device__ __forceinline__ float nan_max(float a, float b) { return (isnan(a) || isnan(b)) ? NAN : fmaxf(a, b); }

__global__ void __launch_bounds__(kThreads) adam_kernel(const __grid_constant__ TensorList L, const TgAdamHyper h) {
  const int64_t total = L.chunk0[L.count];
  for (int64_t c = blockIdx.x; c < total; c += gridDim.x) {
    const ChunkRange r = find_chunk(L, c);
    float* P = L.p[r.t];
    const float* G = L.g[r.t];
    float* M = L.s1[r.t];
    float* V = L.s2[r.t];
    float* VM = L.s3[r.t];
    for (int64_t i = r.begin + threadIdx.x; i < r.end; i += blockDim.x) {
      float p = P[i];
      float g = G[i];
      if (h.maximize) g = -g;
      if (h.decoupled) {
        p = p * h.decay;  // p * (1 - lr * weight_decay)
      } else if (h.weight_decay != 0.0f) {
        g = g + h.weight_decay * p;
      }
      float m = M[i];
      m = h.lerp_small ? m + h.one_minus_beta1 * (g - m) : g - (g - m) * h.beta1;  // torch's lerp_
      float v = V[i] * h.beta2 + (h.one_minus_beta2 * g) * g;
      M[i] = m;
      V[i] = v;
      if (VM != nullptr) {
        v = nan_max(VM[i], v);
        VM[i] = v;
      }
      const float denom = sqrtf(v) / h.bias_correction2_sqrt + h.eps;
      P[i] = p - h.step_size * (m / denom);
    }
  }
}

__global__ void __launch_bounds__(kThreads) sgd_kernel(const __grid_constant__ TensorList L, const TgSgdHyper h) {
  const int64_t total = L.chunk0[L.count];
  for (int64_t c = blockIdx.x; c < total; c += gridDim.x) {
    const ChunkRange r = find_chunk(L, c);
    float* P = L.p[r.t];
    const float* G = L.g[r.t];
    float* B = L.s1[r.t];
    for (int64_t i = r.begin + threadIdx.x; i < r.end; i += blockDim.x) {
      const float p = P[i];
      float g = G[i];
      if (h.maximize) g = -g;
      if (h.weight_decay != 0.0f) g = g + h.weight_decay * p;
      if (B != nullptr) {
        const float b = h.first_step ? g : B[i] * h.momentum + h.one_minus_dampening * g;
        B[i] = b;
        g = h.nesterov ? g + h.momentum * b : b;
      }
      P[i] = p - h.lr * g;
    }
  }
}

// Fills L with tensors [t0, ...) that are not empty, at most kMax of them;
// returns the index of the first tensor not taken.
int64_t fill(TensorList* L, const TgOptTensors* ts, int64_t t0) {
  L->count = 0;
  L->chunk0[0] = 0;
  int64_t t = t0;
  for (; t < ts->count && L->count < kMax; ++t) {
    const int64_t n = ts->n[t];
    if (n <= 0) continue;
    const int k = L->count++;
    L->p[k] = ts->p[t];
    L->g[k] = ts->g[t];
    L->s1[k] = ts->s1 != nullptr ? ts->s1[t] : nullptr;
    L->s2[k] = ts->s2 != nullptr ? ts->s2[t] : nullptr;
    L->s3[k] = ts->s3 != nullptr ? ts->s3[t] : nullptr;
    L->n[k] = n;
    L->chunk0[k + 1] = L->chunk0[k] + (n + kChunk - 1) / kChunk;
  }
  return t;
}

template <typename Hyper, typename Launch>
int run_lists(const TgOptTensors* ts, const Hyper& h, cudaStream_t s, Launch launch) {
  static_assert(sizeof(TensorList) + sizeof(Hyper) < 32000, "kernel parameters must stay under 32 KB");
  TensorList L;
  for (int64_t t = 0; t < ts->count;) {
    t = fill(&L, ts, t);
    if (L.count == 0) break;
    launch(L, h, tg::cuda::grid_for(L.chunk0[L.count], 1), s);
    cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess) return static_cast<int>(err);
  }
  return 0;
}

}  // namespace

extern "C" int tg_cuda_adam_step(const TgOptTensors* tensors, const TgAdamHyper* hyper, void* stream) {
  return run_lists(tensors, *hyper, static_cast<cudaStream_t>(stream),
                   [](const TensorList& L, const TgAdamHyper& h, unsigned int grid, cudaStream_t s) {
                     adam_kernel<<<grid, kThreads, 0, s>>>(L, h);
                   });
}

extern "C" int tg_cuda_sgd_step(const TgOptTensors* tensors, const TgSgdHyper* hyper, void* stream) {
  return run_lists(tensors, *hyper, static_cast<cudaStream_t>(stream),
                   [](const TensorList& L, const TgSgdHyper& h, unsigned int grid, cudaStream_t s) {
                     sgd_kernel<<<grid, kThreads, 0, s>>>(L, h);
                   });
}

extern "C" int tg_cuda_opt_max_tensors_per_launch(void) { return kMax; }
