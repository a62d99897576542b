// Internal interface between the attention driver (attention.cpp: OpenMP, scratch, masks)
// and the per-ISA attention bodies (attention_body.h compiled in attention_generic.cpp,
// attention_avx2.cpp, attention_avx512.cpp).
#pragma once

#include <cstddef>
#include <cstdint>

namespace tg {
namespace cpu {

// One attention problem as the bodies see it: row-major float32 arrays, batch after batch,
// and the mask (if any) already additive.
struct AttnProblem {
  int64_t batch, l, s, e, ev;
  const float* q;
  const float* k;
  const float* v;
  const float* mask;  // (mask_batch, mask_rows, s) added to the scaled scores, or null
  int64_t mask_batch, mask_rows;  // 1 or batch; 1 or l
  bool causal;
  float scale;
};

// What the backward reads besides the problem, and the key-side gradients it writes.
struct AttnGrads {
  const float* out;   // (batch, l, ev)
  const float* lse;   // (batch, l)
  const float* gout;  // (batch, l, ev)
  float* gk;          // (batch, s, e)
  float* gv;          // (batch, s, ev)
};

struct AttnKernels {
  // Floats of scratch one task needs (the caller gives each thread its own).
  size_t (*forward_work)(const AttnProblem& p);
  // Rows of batch b in query tiles chunk, chunk + chunks, ...: out and lse for those rows.
  void (*forward_task)(const AttnProblem& p, int64_t b, int64_t chunk, int64_t chunks, float* out,
                       float* lse, float* work);
  size_t (*backward_work)(const AttnProblem& p);
  // Key tiles chunk, chunk + chunks, ... of batch b: their rows of gk and gv, and their part
  // of gq for every query, written to gq_part (l x e, overwritten).
  void (*backward_task)(const AttnProblem& p, const AttnGrads& g, int64_t b, int64_t chunk, int64_t chunks,
                        float* gq_part, float* work);
  int64_t q_tile;  // queries per forward tile
  int64_t k_tile;  // keys per tile
};

AttnKernels attn_kernels_generic();
AttnKernels attn_kernels_avx2();
AttnKernels attn_kernels_avx512();

}  // namespace cpu
}  // namespace tg
