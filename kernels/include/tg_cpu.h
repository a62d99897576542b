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
// all row-major and densely packed, batch matrices back to back.
// K == 0 writes zeros. out must not overlap a or b.
void matmul(const float* a, const float* b, float* c, int64_t batch,
            int64_t m, int64_t n, int64_t k);

}  // namespace cpu
}  // namespace tg
