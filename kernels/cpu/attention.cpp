// Driver of the fused attention kernels: picks the ISA table once, turns a bool mask into an
// additive one, gives every thread its own scratch and splits the work into OpenMP tasks.
//
// Forward tasks are (batch, query chunk) and backward tasks (batch, key chunk). With many
// batches (batch x heads) every task is a whole batch, so each packs its keys and values once.
// With fewer batches than threads, a batch splits into interleaved chunks of tiles (chunk c
// takes tiles c, c + chunks, ...: equal work under a causal mask). Backward chunks each write
// their own part of gq, summed afterwards in a fixed order (deterministic results).
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>

#include <omp.h>

#include "attention_internal.h"
#include "tg_cpu.h"

namespace tg {
namespace cpu {

namespace {

// Below this many multiply-adds (about 0.1 ms of work) one thread does it all: a fork/join
// can cost a scheduler timeslice on a busy machine (see matmul.cpp).
constexpr int64_t kParallelMinWork = 1 << 22;
constexpr int64_t kTasksPerThread = 4;  // enough tasks that a late one is a small share
// Backward chunks each keep their own l x e part of gq: fewer of them (interleaved tiles
// already give every chunk the same work).
constexpr int64_t kBackwardTasksPerThread = 2;

const AttnKernels& kernels() {
  static const AttnKernels table = [] {
    switch (active_isa()) {
      case Isa::avx512: return attn_kernels_avx512();
      case Isa::avx2: return attn_kernels_avx2();
      default: return attn_kernels_generic();
    }
  }();
  return table;
}

// A growable, 64-byte aligned buffer of the calling thread, reused across calls (fresh pages
// cost about 1 us per 4 KiB here). Only the calling thread allocates, outside parallel
// regions, so std::bad_alloc reaches the caller.
class Scratch {
 public:
  ~Scratch() { std::free(data_); }
  float* get(size_t floats) {
    if (floats > size_) {
      std::free(data_);
      data_ = nullptr;
      size_ = 0;
      const size_t bytes = ((std::max<size_t>(floats, 1) * sizeof(float) + 63) / 64) * 64;
      data_ = static_cast<float*>(std::aligned_alloc(64, bytes));
      if (data_ == nullptr) throw std::bad_alloc();
      size_ = floats;
    }
    return data_;
  }

 private:
  float* data_ = nullptr;
  size_t size_ = 0;
};

Scratch& scratch() {
  static thread_local Scratch s;
  return s;
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

int threads_for(const AttentionDims& d) {
  const int64_t work = d.batch * d.l * d.s * (d.e + d.ev);
  return work < kParallelMinWork ? 1 : omp_get_max_threads();
}

// Chunks per batch: one when the batches alone make enough tasks, else up to `tiles`.
int64_t chunks_for(int64_t batch, int64_t tiles, int threads, int64_t tasks_per_thread) {
  if (threads <= 1) return 1;
  return std::max<int64_t>(1, std::min(tiles, ceil_div(tasks_per_thread * threads, batch)));
}

AttnProblem make_problem(const float* q, const float* k, const float* v, const AttentionMask& mask, bool causal,
                         float scale, const AttentionDims& d) {
  AttnProblem p{d.batch, d.l, d.s, d.e, d.ev, q, k, v, mask.add, mask.batch, mask.rows, causal, scale};
  if (mask.add == nullptr && mask.keep == nullptr) {
    p.mask_batch = p.mask_rows = 1;
  }
  return p;
}

size_t mask_floats(const AttentionMask& mask, const AttentionDims& d) {
  return mask.keep != nullptr ? static_cast<size_t>(mask.batch * mask.rows * d.s) : 0;
}

// A bool mask becomes additive (0 where kept, -inf where masked) in buf.
void set_additive(AttnProblem* p, const AttentionMask& mask, const AttentionDims& d, float* buf, int threads) {
  if (mask.keep == nullptr) return;
  const int64_t n = mask.batch * mask.rows * d.s;
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
  for (int64_t i = 0; i < n; ++i) buf[i] = mask.keep[i] ? 0.0f : -INFINITY;
  p->mask = buf;
}

}  // namespace

void sdpa_forward(const float* q, const float* k, const float* v, const AttentionMask& mask, bool causal,
                  float scale, const AttentionDims& d, float* out, float* lse) {
  if (d.batch <= 0 || d.l <= 0) return;
  if (d.s <= 0) {  // no keys: every row is fully masked
    std::fill(out, out + d.batch * d.l * d.ev, 0.0f);
    std::fill(lse, lse + d.batch * d.l, -INFINITY);
    return;
  }
  const AttnKernels& kern = kernels();
  AttnProblem p = make_problem(q, k, v, mask, causal, scale, d);
  const int threads = threads_for(d);
  const int64_t chunks = chunks_for(d.batch, ceil_div(d.l, kern.q_tile), threads, kTasksPerThread);
  const size_t per_thread = kern.forward_work(p);
  const size_t mask_n = mask_floats(mask, d);
  float* buf = scratch().get(mask_n + per_thread * static_cast<size_t>(threads));
  set_additive(&p, mask, d, buf, threads);
  float* work = buf + mask_n;
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads) if (threads > 1)
  for (int64_t t = 0; t < d.batch * chunks; ++t) {
    const int tid = threads > 1 ? omp_get_thread_num() : 0;
    kern.forward_task(p, t / chunks, t % chunks, chunks, out, lse, work + per_thread * static_cast<size_t>(tid));
  }
}

void sdpa_backward(const float* q, const float* k, const float* v, const AttentionMask& mask, bool causal,
                   float scale, const AttentionDims& d, const float* out, const float* lse, const float* gout,
                   float* gq, float* gk, float* gv) {
  if (d.batch <= 0) return;
  if (d.s <= 0 || d.l <= 0) {  // no scores: nothing reaches q (and k, v are empty or unseen)
    std::fill(gq, gq + d.batch * d.l * d.e, 0.0f);
    std::fill(gk, gk + d.batch * d.s * d.e, 0.0f);
    std::fill(gv, gv + d.batch * d.s * d.ev, 0.0f);
    return;
  }
  const AttnKernels& kern = kernels();
  AttnProblem p = make_problem(q, k, v, mask, causal, scale, d);
  const AttnGrads g{out, lse, gout, gk, gv};
  const int threads = threads_for(d);
  const int64_t chunks = chunks_for(d.batch, ceil_div(d.s, kern.k_tile), threads, kBackwardTasksPerThread);
  const size_t per_thread = kern.backward_work(p);
  const size_t mask_n = mask_floats(mask, d);
  const size_t part = static_cast<size_t>(d.l * d.e);  // one chunk's share of gq (for one batch)
  const size_t parts_n = chunks > 1 ? static_cast<size_t>(d.batch * chunks) * part : 0;
  float* buf = scratch().get(mask_n + parts_n + per_thread * static_cast<size_t>(threads));
  set_additive(&p, mask, d, buf, threads);
  float* parts = buf + mask_n;
  float* work = parts + parts_n;
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads) if (threads > 1)
  for (int64_t t = 0; t < d.batch * chunks; ++t) {
    const int tid = threads > 1 ? omp_get_thread_num() : 0;
    const int64_t b = t / chunks;
    float* gq_part = chunks > 1 ? parts + static_cast<size_t>(t) * part : gq + static_cast<size_t>(b) * part;
    kern.backward_task(p, g, b, t % chunks, chunks, gq_part, work + per_thread * static_cast<size_t>(tid));
  }
  if (chunks == 1) return;
#pragma omp parallel for schedule(static) num_threads(threads)
  for (int64_t b = 0; b < d.batch; ++b) {
    float* dst = gq + static_cast<size_t>(b) * part;
    const float* src = parts + static_cast<size_t>(b * chunks) * part;
    std::memcpy(dst, src, part * sizeof(float));
    for (int64_t c = 1; c < chunks; ++c) {
      const float* add = src + static_cast<size_t>(c) * part;
      for (size_t i = 0; i < part; ++i) dst[i] += add[i];
    }
  }
}

}  // namespace cpu
}  // namespace tg
