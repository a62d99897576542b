// float32 GEMM, GotoBLAS/BLIS style: B is packed into NR-wide slivers of a
// KC x NC panel shared by all threads, each thread packs an MC x KC block of A
// into MR-tall slivers and runs the ISA's register-tiled micro-kernel over it.
// Ragged edges are zero-padded in the packed buffers; the micro-kernel writes
// only the valid corner of an edge tile.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>

#include <omp.h>

#include "cpu_internal.h"
#include "tg_cpu.h"

namespace tg {
namespace cpu {

namespace {

constexpr int64_t kKc = 256;   // depth of a packed panel: a KC x NR B sliver is 16 KiB (L1)
constexpr int64_t kMcTarget = 144;  // rows of A per block: MC x KC floats ~ 144 KiB (L2)
constexpr int64_t kNc = 2048;  // columns of B per panel: KC x NC floats = 2 MiB (L3)
constexpr int64_t kParallelMinWork = 1 << 22;  // M*N*K below this (~0.1 ms of work) runs on one
// thread: a fork/join costs microseconds on an idle machine but can stall a whole scheduler slice
// (4-8 ms) on a busy one, as recurrent models with many small products show.

// A growable, 64-byte aligned scratch buffer, one per calling thread, so
// repeated calls reuse memory instead of faulting in fresh pages. Only the
// calling thread allocates (outside parallel regions), so std::bad_alloc
// propagates to the caller instead of escaping an OpenMP region.
class Scratch {
 public:
  ~Scratch() { std::free(data_); }
  float* get(size_t floats) {
    if (floats > size_) {
      std::free(data_);
      data_ = nullptr;
      size_ = 0;
      const size_t bytes = ((floats * sizeof(float) + 63) / 64) * 64;
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

// Generic micro-kernel: plain C++ the compiler vectorizes for the baseline ISA.
constexpr int kGenMr = 4;
constexpr int kGenNr = 8;

void gemm_generic_4x8(int64_t kc, const float* ap, const float* bp, float* c, int64_t ldc,
                      int m, int n, bool accumulate) {
  float acc[kGenMr][kGenNr] = {};
  for (int64_t k = 0; k < kc; ++k) {
    for (int i = 0; i < kGenMr; ++i) {
      const float a = ap[i];
      for (int j = 0; j < kGenNr; ++j) acc[i][j] += a * bp[j];
    }
    ap += kGenMr;
    bp += kGenNr;
  }
  store_tile(&acc[0][0], kGenNr, c, ldc, m, n, accumulate);
}

GemmKernel select_kernel() {
  switch (active_isa()) {
    case Isa::avx512: return gemm_kernel_avx512();
    case Isa::avx2: return gemm_kernel_avx2();
    default: return gemm_kernel_generic();
  }
}

// Packs A[0:mc, 0:kc] (element (i, k) at a[i * rs + k * cs]) into MR-tall
// slivers, zero-padded. cs == 1 is a row-major A, rs == 1 a transposed one.
void pack_a(const float* a, int64_t rs, int64_t cs, int64_t mc, int64_t kc, int mr, float* dst) {
  for (int64_t i0 = 0; i0 < mc; i0 += mr) {
    const int64_t rows = std::min<int64_t>(mr, mc - i0);
    if (rs == 1) {  // transposed A: the MR values of one k are contiguous
      for (int64_t k = 0; k < kc; ++k) {
        std::memcpy(dst, a + i0 + k * cs, static_cast<size_t>(rows) * sizeof(float));
        for (int64_t i = rows; i < mr; ++i) dst[i] = 0.0f;
        dst += mr;
      }
      continue;
    }
    for (int64_t k = 0; k < kc; ++k) {
      for (int64_t i = 0; i < rows; ++i) dst[i] = a[(i0 + i) * rs + k * cs];
      for (int64_t i = rows; i < mr; ++i) dst[i] = 0.0f;
      dst += mr;
    }
  }
}

// Packs one NR-wide sliver B[0:kc, 0:cols] (element (k, j) at b[k * rs + j * cs]),
// zero-padded. cs == 1 is a row-major B, rs == 1 a transposed one.
void pack_b_sliver(const float* b, int64_t rs, int64_t cs, int64_t kc, int64_t cols, int nr, float* dst) {
  for (int64_t k = 0; k < kc; ++k) {
    const float* row = b + k * rs;
    if (cs == 1) {
      std::memcpy(dst, row, static_cast<size_t>(cols) * sizeof(float));
    } else {
      for (int64_t j = 0; j < cols; ++j) dst[j] = row[j * cs];
    }
    for (int64_t j = cols; j < nr; ++j) dst[j] = 0.0f;
    dst += nr;
  }
}

// Packs B[0:kc, 0:cols] (element (k, j) at b[k * rs + j * cs]) into NR-wide
// slivers, zero-padded: row by row for a row-major B (each row of the strip is
// one contiguous run), sliver by sliver for a transposed one.
void pack_b_strip(const float* b, int64_t rs, int64_t cs, int64_t kc, int64_t cols, int nr, float* dst) {
  if (cs != 1) {
    for (int64_t j0 = 0; j0 < cols; j0 += nr) {
      pack_b_sliver(b + j0 * cs, rs, cs, kc, std::min<int64_t>(nr, cols - j0), nr, dst + j0 * kc);
    }
    return;
  }
  const int64_t full = cols / nr;
  const int64_t rest = cols - full * nr;
  for (int64_t k = 0; k < kc; ++k) {
    const float* row = b + k * rs;
    float* d = dst + k * nr;
    for (int64_t s = 0; s < full; ++s) {
      std::memcpy(d + s * nr * kc, row + s * nr, static_cast<size_t>(nr) * sizeof(float));
    }
    if (rest > 0) {
      float* e = d + full * nr * kc;
      std::memcpy(e, row + full * nr, static_cast<size_t>(rest) * sizeof(float));
      for (int64_t j = rest; j < nr; ++j) e[j] = 0.0f;
    }
  }
}

// Where the elements of one operand live: (row, col) at p[row * rs + col * cs].
struct Operand {
  const float* p;
  int64_t rs, cs;
};

int64_t round_up(int64_t x, int64_t to) { return (x + to - 1) / to * to; }

// Blocking of one GEMM and the scratch it needs: one shared B panel plus one
// A block per thread.
struct Plan {
  int64_t mc, nc_max, kc_max;
  int threads;
  size_t b_floats() const { return static_cast<size_t>(kc_max * nc_max); }
  size_t a_floats() const { return static_cast<size_t>(mc * kc_max); }
  size_t floats() const { return b_floats() + static_cast<size_t>(threads) * a_floats(); }
};

Plan make_plan(const GemmKernel& kern, int64_t n, int64_t k, int threads) {
  Plan p;
  p.mc = std::max<int64_t>(kern.mr, kMcTarget / kern.mr * kern.mr);
  p.nc_max = round_up(std::min(kNc, n), kern.nr);
  p.kc_max = std::min(kKc, k);
  p.threads = threads;
  return p;
}

// One GEMM, C = A @ B (k >= 1), with plan.threads OpenMP threads (1: runs on
// the calling thread, used when the batch loop is the parallel one).
void gemm(const GemmKernel& kern, const Plan& plan, float* work, Operand a, Operand b, float* c,
          int64_t m, int64_t n, int64_t k) {
  const int mr = kern.mr;
  const int nr = kern.nr;
  const int64_t mc = plan.mc;
  const int threads = plan.threads;
  float* bpack = work;
  const int64_t m_blocks = (m + mc - 1) / mc;

#pragma omp parallel num_threads(threads) if (threads > 1)
  {
    const int tid = threads > 1 ? omp_get_thread_num() : 0;
    float* apack = work + plan.b_floats() + static_cast<size_t>(tid) * plan.a_floats();
    for (int64_t jc = 0; jc < n; jc += kNc) {
      const int64_t nc = std::min(kNc, n - jc);
      const int64_t slivers = (nc + nr - 1) / nr;
      // Split the panel's columns into several tasks when there are too few
      // row blocks to keep every thread busy (each task packs its A block).
      const int64_t n_split = std::max<int64_t>(
          1, std::min<int64_t>(slivers, (2 * threads + m_blocks - 1) / m_blocks));
      const int64_t slivers_per_task = (slivers + n_split - 1) / n_split;
      for (int64_t pc = 0; pc < k; pc += kKc) {
        const int64_t kc = std::min(kKc, k - pc);
#pragma omp for schedule(static)
        for (int64_t s = 0; s < slivers; ++s) {
          const int64_t j0 = s * nr;
          pack_b_sliver(b.p + pc * b.rs + (jc + j0) * b.cs, b.rs, b.cs, kc,
                        std::min<int64_t>(nr, nc - j0), nr, bpack + s * nr * kc);
        }
        // (implicit barrier: the panel is packed)
#pragma omp for schedule(dynamic, 1) collapse(2)
        for (int64_t ib = 0; ib < m_blocks; ++ib) {
          for (int64_t t = 0; t < n_split; ++t) {
            const int64_t s_begin = t * slivers_per_task;
            const int64_t s_end = std::min(slivers, s_begin + slivers_per_task);
            if (s_begin >= s_end) continue;
            const int64_t i0 = ib * mc;
            const int64_t rows = std::min(mc, m - i0);
            pack_a(a.p + i0 * a.rs + pc * a.cs, a.rs, a.cs, rows, kc, mr, apack);
            for (int64_t s = s_begin; s < s_end; ++s) {
              const int64_t j0 = s * nr;
              const int cols = static_cast<int>(std::min<int64_t>(nr, nc - j0));
              const float* bp = bpack + s * nr * kc;
              for (int64_t ir = 0; ir < rows; ir += mr) {
                const int r = static_cast<int>(std::min<int64_t>(mr, rows - ir));
                kern.fn(kc, apack + ir * kc, bp, c + (i0 + ir) * n + jc + j0, n, r, cols,
                        pc > 0);
              }
            }
          }
        }
        // (implicit barrier: nobody reads the panel when it is repacked)
      }
    }
  }
}

// v2: independent (row group x column strip) tasks, each packing its own B
// strip and A blocks for every K panel and finishing its C tile alone. No
// barrier between tasks, and dynamic scheduling: on a shared machine a
// preempted thread delays only its current task (v1's per-panel barriers
// stall every thread for the scheduler's timeslice). The price is repacking:
// B once per row group, A once per strip, so groups and strips stay as large
// as the thread count allows.
struct TaskPlan {
  int64_t mc, kc, strip, group_blocks;  // group_blocks: MC row blocks per task
  int threads;
  size_t a_floats() const { return static_cast<size_t>(mc * kc); }
  size_t per_thread() const { return a_floats() + static_cast<size_t>(kc * strip); }
};

constexpr int64_t kStrip = 512;  // columns per task: a KC x 512 B strip is 512 KiB (L2)

TaskPlan make_task_plan(const GemmKernel& kern, int64_t m, int64_t n, int64_t k, int threads) {
  TaskPlan p;
  p.mc = std::max<int64_t>(kern.mr, kMcTarget / kern.mr * kern.mr);
  p.kc = std::min(kKc, k);
  p.strip = round_up(std::min(kStrip, n), kern.nr);
  p.threads = threads;
  const int64_t m_blocks = (m + p.mc - 1) / p.mc;
  int64_t groups = 1;
  const int64_t want = 4 * threads;  // enough tasks that a late one is a small share
  auto strips = [&] { return (n + p.strip - 1) / p.strip; };
  while (groups * strips() < want && groups < m_blocks) groups = std::min(m_blocks, groups * 2);
  while (groups * strips() < want && p.strip > 4 * kern.nr) p.strip = round_up(p.strip / 2, kern.nr);
  p.group_blocks = (m_blocks + groups - 1) / groups;
  return p;
}

void gemm_tasks(const GemmKernel& kern, const TaskPlan& plan, float* work, Operand a, Operand b,
                float* c, int64_t m, int64_t n, int64_t k) {
  const int mr = kern.mr;
  const int nr = kern.nr;
  const int64_t group_rows = plan.group_blocks * plan.mc;
  const int64_t groups = (m + group_rows - 1) / group_rows;
  const int64_t n_strips = (n + plan.strip - 1) / plan.strip;
#pragma omp parallel for schedule(dynamic, 1) num_threads(plan.threads) if (plan.threads > 1)
  for (int64_t t = 0; t < groups * n_strips; ++t) {
    const int tid = plan.threads > 1 ? omp_get_thread_num() : 0;
    float* apack = work + static_cast<size_t>(tid) * plan.per_thread();
    float* bpack = apack + plan.a_floats();
    const int64_t g0 = (t / n_strips) * group_rows;
    const int64_t g1 = std::min(m, g0 + group_rows);
    const int64_t j0 = (t % n_strips) * plan.strip;
    const int64_t cols = std::min(plan.strip, n - j0);
    const int64_t slivers = (cols + nr - 1) / nr;
    for (int64_t pc = 0; pc < k; pc += plan.kc) {
      const int64_t kc = std::min(plan.kc, k - pc);
      pack_b_strip(b.p + pc * b.rs + j0 * b.cs, b.rs, b.cs, kc, cols, nr, bpack);
      for (int64_t i0 = g0; i0 < g1; i0 += plan.mc) {
        const int64_t rows = std::min(plan.mc, g1 - i0);
        pack_a(a.p + i0 * a.rs + pc * a.cs, a.rs, a.cs, rows, kc, mr, apack);
        for (int64_t s = 0; s < slivers; ++s) {
          const int w = static_cast<int>(std::min<int64_t>(nr, cols - s * nr));
          const float* bp = bpack + s * nr * kc;
          for (int64_t ir = 0; ir < rows; ir += mr) {
            const int r = static_cast<int>(std::min<int64_t>(mr, rows - ir));
            kern.fn(kc, apack + ir * kc, bp, c + (i0 + ir) * n + j0 + s * nr, n, r, w, pc > 0);
          }
        }
      }
    }
  }
}

}  // namespace

GemmKernel gemm_kernel_generic() { return GemmKernel{kGenMr, kGenNr, gemm_generic_4x8}; }

void matmul_single_thread(const float* a, const float* b, float* c, int64_t m, int64_t n, int64_t k) {
  if (m <= 0 || n <= 0) return;
  if (k <= 0) {
    std::memset(c, 0, static_cast<size_t>(m * n) * sizeof(float));
    return;
  }
  const GemmKernel kern = select_kernel();
  const Plan plan = make_plan(kern, n, k, 1);
  gemm(kern, plan, scratch().get(plan.floats()), Operand{a, k, 1}, Operand{b, n, 1}, c, m, n, k);
}

void matmul(const float* a, const float* b, float* c, int64_t batch, int64_t m, int64_t n,
            int64_t k, bool trans_a, bool trans_b) {
  if (batch <= 0 || m <= 0 || n <= 0) return;
  if (k <= 0) {
    std::memset(c, 0, static_cast<size_t>(batch * m * n) * sizeof(float));
    return;
  }
  // Transposed operands are read in place through their strides by the packing
  // routines (which copy every operand anyway), never copied first.
  auto a_of = [&](int64_t i) {
    return trans_a ? Operand{a + i * m * k, 1, m} : Operand{a + i * m * k, k, 1};
  };
  auto b_of = [&](int64_t i) {
    return trans_b ? Operand{b + i * k * n, 1, k} : Operand{b + i * k * n, n, 1};
  };
  const GemmKernel kern = select_kernel();
  const int64_t work = m * n * k;
  const int threads = omp_get_max_threads();
  if (batch > 1 && threads > 1 && (batch >= 4 * threads || work < kParallelMinWork)) {
    // Many small problems: one thread per matrix, each with its own scratch.
    const Plan plan = make_plan(kern, n, k, 1);
    const size_t per_thread = plan.floats();
    float* scratch_all = scratch().get(per_thread * static_cast<size_t>(threads));
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
    for (int64_t i = 0; i < batch; ++i) {
      float* mine = scratch_all + per_thread * static_cast<size_t>(omp_get_thread_num());
      gemm(kern, plan, mine, a_of(i), b_of(i), c + i * m * n, m, n, k);
    }
    return;
  }
  if (work < kParallelMinWork) {  // small: v1 on one thread
    const Plan plan = make_plan(kern, n, k, 1);
    float* ws = scratch().get(plan.floats());
    for (int64_t i = 0; i < batch; ++i) {
      gemm(kern, plan, ws, a_of(i), b_of(i), c + i * m * n, m, n, k);
    }
    return;
  }
  const TaskPlan plan = make_task_plan(kern, m, n, k, threads);
  float* ws = scratch().get(plan.per_thread() * static_cast<size_t>(threads));
  for (int64_t i = 0; i < batch; ++i) {
    gemm_tasks(kern, plan, ws, a_of(i), b_of(i), c + i * m * n, m, n, k);
  }
}

}  // namespace cpu
}  // namespace tg
