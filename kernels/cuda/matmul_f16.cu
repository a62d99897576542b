// float16 / bfloat16 matmul on the tensor cores (sm_80+): out[b] = act(op(a[b]) @ op(b[b]) + bias),
// float32 accumulation, the result rounded to the input type (nearest even). tg_cuda.h documents
// the arguments (TgMatmul16).
//
// The Ampere recipe: a 128 x 256 block of C per 256 threads (8 warps as 2 x 4, each a 64 x 64
// tile of 4 x 8 mma.sync.m16n8k16 fragments, 128 float accumulators per thread), 32-deep K slices
// of both operands staged in shared memory by a 4-stage cp.async pipeline (the loads of slice
// k + 3 are in flight while slice k is multiplied), fragments read with ldmatrix, the next
// 16-deep step's fragments loaded before the current step's mma (registers double-buffered).
//
// Operands are read in their stored layout, never copied: a tile whose rows run along K (a as
// (M, K), b transposed as (N, K)) is "K-contiguous" in shared memory and read with ldmatrix; one
// whose rows run along M or N (a transposed as (K, M), b as (K, N)) is "MN-contiguous" and read
// with ldmatrix.trans, which hands out the same fragments. Both layouts XOR-swizzle their
// 16-byte chunks so that the eight rows of every 8 x 8 ldmatrix matrix fall in distinct banks.
//
// The cp.async path needs 16-byte aligned 8-element chunks: K and the row length of each stored
// operand multiples of 8, a and b 16-byte aligned. Anything else takes the same kernel with
// guarded scalar loads (kAligned = false): slower, correct for any size. Ragged M, N, K edges
// are zero-filled. Blocks are numbered along one grid dimension and mapped to tiles in groups
// of 8 tile rows, so blocks running together share their a and b tiles in L2.
#include <cuda_runtime.h>
#include <stdint.h>

#include "async_copy.cuh"
#include "epilogue.cuh"
#include "mma16.cuh"
#include "tg_cuda.h"

namespace {

namespace mma16 = tg::cuda::mma16;
using tg::cuda::cp_async16;

constexpr int kBm = 128;        // block tile rows (M)
constexpr int kBk = 32;         // K slice per pipeline stage
constexpr int kStages = 4;
constexpr int kThreads = 256;
constexpr int kWarpsN = 4;      // warps along N (2 along M)
constexpr int kWm = 64;         // warp tile rows
constexpr int kFm = kWm / 16;   // m16 fragments per warp
constexpr int kGroupM = 8;      // tile rows per L2 group
constexpr int kATile = kBm * kBk;  // 16-bit elements per stage
constexpr int64_t kMaxBlocks = 2147483647;

// The block tile's width: 256 columns for the cp.async path (warp tiles 64 x 64), 128 for the
// guarded-load path, whose extra registers would not fit next to 64 x 64 accumulators.
template <int kBn>
struct Tile {
  static constexpr int kWn = kBn / kWarpsN;  // warp tile columns
  static constexpr int kFn = kWn / 8;        // n8 fragments per warp
  static constexpr int kBTile = kBn * kBk;
  static constexpr int kStageElems = kATile + kBTile;
  static constexpr int kSmemBytes = kStages * kStageElems * 2;  // 96 KiB for 256, 64 KiB for 128
  static_assert((kBm / kWm) * kWarpsN * 32 == kThreads, "8 warps cover the block tile");
  static_assert(kFn % 2 == 0, "B fragments are loaded in pairs");
};

static_assert(kBk == 32, "the K-contiguous swizzle pairs two 64-byte rows into one 128-byte line");

// K-contiguous tile: rows of 32 elements (four 16-byte chunks). Rows 2l and 2l + 1 form the
// 128-byte line l of eight chunks, whose chunk index is XORed with l % 8: ldmatrix reads chunk c
// of 8 consecutive rows (4 lines), which land in 8 distinct chunks, i.e. all 32 banks.
__device__ __forceinline__ int kcontig_offset(int row, int chunk) {
  const int line = row >> 1;
  return line * 64 + ((((row & 1) << 2) | chunk) ^ (line & 7)) * 8;
}

// MN-contiguous tile: 32 rows (k) of `kCols` elements; chunk c of row k is stored at chunk
// c ^ (k % 8) within its group of 8 chunks, so 8 consecutive rows hit 8 distinct chunks.
template <int kCols>
__device__ __forceinline__ int mncontig_offset(int k, int chunk) {
  return k * kCols + ((chunk & ~7) | ((chunk ^ k) & 7)) * 8;
}

struct Params {
  const uint16_t* a;
  const uint16_t* b;
  const uint16_t* bias;  // null or N elements of the input type
  uint16_t* out;
  int64_t m, n, k;
  int tiles_m, tiles_n;
  int act;
  bool pair_store;       // N even and out 4-byte aligned: two columns per 32-bit store
};

// Copies one operand's tile for one K slice into shared memory. kKContig: the tile's rows are
// the operand's `kRows` rows along M (or N), each kBk elements of K; otherwise kBk rows along K,
// each kRows elements. Each thread owns kPer chunks of 8 elements, all in one chunk column, so
// their validity along the contiguous dim is one test per slice.
template <bool kKContig, int kRows, bool kAligned>
struct TileLoader {
  static constexpr int kRowChunks = kKContig ? kBk / 8 : kRows / 8;
  static constexpr int kPer = kRows * kBk / 8 / kThreads;
  static constexpr int kRowStep = kThreads / kRowChunks;  // tile rows between a thread's chunks
  static_assert(kPer * kThreads * 8 == kRows * kBk && kThreads % kRowChunks == 0, "chunks divide evenly");

  const uint16_t* base;      // the operand (any valid address for the zero-filled copies)
  const uint16_t* src[kPer];
  bool row_ok[kPer];         // K-contiguous: the chunk's row is inside the operand
  int chunk8;                // first element of this thread's chunk along the contiguous dim
  int64_t mn_left;           // MN-contiguous: elements of the row left from the tile's start
  int64_t k_left;            // K left from the current slice's start
  int64_t k_step;            // elements between two slices
  int smem;                  // offset of chunk 0 in the tile

  // op (rows x K for kKContig, K x rows otherwise) starts at `mn0` along M or N: element (r, k)
  // of the tile is base[(mn0 + r) * ld + k] (kKContig) or base[k * ld + mn0 + r].
  __device__ __forceinline__ TileLoader(const uint16_t* op, int64_t ld, int64_t mn0, int64_t mn, int64_t k,
                                        int tid) {
    base = op;
    const int row = tid / kRowChunks, chunk = tid % kRowChunks;
    chunk8 = chunk * 8;
    k_left = k;
    mn_left = mn - mn0;
#pragma unroll
    for (int i = 0; i < kPer; ++i) {
      const int r = row + i * kRowStep;
      if (kKContig) {
        row_ok[i] = mn0 + r < mn;
        src[i] = op + (mn0 + r) * ld + chunk8;
      } else {
        row_ok[i] = true;
        src[i] = op + r * ld + mn0 + chunk8;
      }
    }
    k_step = kKContig ? kBk : kBk * ld;
    // Row r + i * kRowStep keeps r's swizzle (kRowStep is a multiple of 16 rows, of 8 k rows).
    smem = kKContig ? kcontig_offset(row, chunk) : mncontig_offset<kRows>(row, chunk);
  }

  __device__ __forceinline__ static constexpr int row_offset(int i) { return kKContig ? i * kRowStep * kBk : i * kRowStep * kRows; }

  __device__ __forceinline__ void load(uint16_t* tile) {
#pragma unroll
    for (int i = 0; i < kPer; ++i) {
      const int r = threadIdx.x / kRowChunks + i * kRowStep;  // tile row (k row if !kKContig)
      uint16_t* dst = tile + smem + row_offset(i);
      if (kAligned) {
        const bool ok = kKContig ? row_ok[i] && chunk8 < k_left : r < k_left && chunk8 < mn_left;
        cp_async16(dst, ok ? src[i] : base, ok);
      } else {
        // Any alignment, any size: element by element, zeros outside the operand.
        uint16_t v[8];
#pragma unroll
        for (int e = 0; e < 8; ++e) {
          const bool ok = kKContig ? row_ok[i] && chunk8 + e < k_left : r < k_left && chunk8 + e < mn_left;
          v[e] = ok ? src[i][e] : 0;
        }
        uint32_t* d = reinterpret_cast<uint32_t*>(dst);
#pragma unroll
        for (int e = 0; e < 4; ++e) d[e] = static_cast<uint32_t>(v[2 * e]) | (static_cast<uint32_t>(v[2 * e + 1]) << 16);
      }
    }
  }

  __device__ __forceinline__ void advance() {
#pragma unroll
    for (int i = 0; i < kPer; ++i) src[i] += k_step;
    k_left -= kBk;
  }
};

// The per-lane shared-memory offsets of one warp's fragments for the 16-deep step `kk` (0 or
// 16) of a slice. A: kFm ldmatrix_x4 (one m16 x k16 fragment each); B: kFn / 2 ldmatrix_x4 (two
// k16 x n8 fragments each). Matrix j of an x4 is given by lanes 8 j .. 8 j + 7, one row each.
template <bool kTransA>
__device__ __forceinline__ int a_frag_offset(int lane, int wm, int i, int kk) {
  const int j = lane / 8, r = lane % 8;
  if (!kTransA) {  // [m][k]: matrices (m 0-7, k 0-7), (m 8-15, k 0-7), (m 0-7, k 8-15), (m 8-15, k 8-15)
    return kcontig_offset(wm + i * 16 + r + (j % 2) * 8, kk / 8 + j / 2);
  }
  // [k][m], transposed on load: the same four matrices, rows along k.
  return mncontig_offset<kBm>(kk + r + (j / 2) * 8, (wm + i * 16) / 8 + j % 2);
}

template <int kBn, bool kTransB>
__device__ __forceinline__ int b_frag_offset(int lane, int wn, int jn, int kk) {
  const int j = lane / 8, r = lane % 8;
  if (kTransB) {  // [n][k]: matrices (n jn, k 0-7), (n jn, k 8-15), (n jn+1, k 0-7), (n jn+1, k 8-15)
    return kcontig_offset(wn + jn * 8 + r + (j / 2) * 8, kk / 8 + j % 2);
  }
  // [k][n], transposed on load: the same four matrices, rows along k.
  return mncontig_offset<kBn>(kk + r + (j % 2) * 8, (wn + jn * 8) / 8 + j / 2);
}

template <int kBn, bool kTransA, bool kTransB, int kFn = Tile<kBn>::kFn>
__device__ __forceinline__ void load_fragments(uint32_t (&af)[kFm][4], uint32_t (&bf)[kFn][2], const uint16_t* as,
                                               const uint16_t* bs, int lane, int wm, int wn, int kk) {
#pragma unroll
  for (int i = 0; i < kFm; ++i) {
    const uint16_t* p = as + a_frag_offset<kTransA>(lane, wm, i, kk);
    if (kTransA) {
      mma16::ldmatrix_x4_trans(af[i], p);
    } else {
      mma16::ldmatrix_x4(af[i], p);
    }
  }
#pragma unroll
  for (int jn = 0; jn < kFn; jn += 2) {
    uint32_t r[4];
    const uint16_t* p = bs + b_frag_offset<kBn, kTransB>(lane, wn, jn, kk);
    if (kTransB) {
      mma16::ldmatrix_x4(r, p);
    } else {
      mma16::ldmatrix_x4_trans(r, p);
    }
    bf[jn][0] = r[0];
    bf[jn][1] = r[1];
    bf[jn + 1][0] = r[2];
    bf[jn + 1][1] = r[3];
  }
}

template <int kBf16, bool kTransA, bool kTransB, bool kAligned, int kBn>
__global__ void __launch_bounds__(kThreads, 1) matmul16_kernel(Params p, int64_t block0) {
  extern __shared__ uint16_t smem[];
  constexpr int kWn = Tile<kBn>::kWn, kFn = Tile<kBn>::kFn, kStageElems = Tile<kBn>::kStageElems;

  // Block -> (batch, tile row, tile column); tile rows in groups of kGroupM.
  const int64_t tiles = static_cast<int64_t>(p.tiles_m) * p.tiles_n;
  const int64_t bid = block0 + blockIdx.x;
  const int64_t batch = bid / tiles;
  const int tile = static_cast<int>(bid - batch * tiles);
  const int per_group = kGroupM * p.tiles_n;
  const int first_m = (tile / per_group) * kGroupM;
  const int group_rows = p.tiles_m - first_m < kGroupM ? p.tiles_m - first_m : kGroupM;
  const int tm = first_m + (tile % per_group) % group_rows;
  const int tn = (tile % per_group) / group_rows;
  const int64_t m0 = static_cast<int64_t>(tm) * kBm, n0 = static_cast<int64_t>(tn) * kBn;
  const int64_t M = p.m, N = p.n, K = p.k;

  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  const int wm = (warp / kWarpsN) * kWm, wn = (warp % kWarpsN) * kWn;

  // a: (M, K), ld K, or transposed (K, M), ld M; b: (K, N), ld N, or transposed (N, K), ld K.
  TileLoader<!kTransA, kBm, kAligned> load_a(p.a + batch * M * K, kTransA ? M : K, m0, M, K, tid);
  TileLoader<kTransB, kBn, kAligned> load_b(p.b + batch * K * N, kTransB ? K : N, n0, N, K, tid);

  float acc[kFm][kFn][4];
#pragma unroll
  for (int i = 0; i < kFm; ++i)
#pragma unroll
    for (int j = 0; j < kFn; ++j)
#pragma unroll
      for (int q = 0; q < 4; ++q) acc[i][j][q] = 0.0f;

  const int ktiles = static_cast<int>((K + kBk - 1) / kBk);
  // Prologue: slices 0 .. kStages - 2 in flight, one commit group each (empty past the end,
  // so that "slice t landed" is always "at most kStages - 2 groups pending").
#pragma unroll
  for (int s = 0; s < kStages - 1; ++s) {
    if (s < ktiles) {
      load_a.load(smem + s * kStageElems);
      load_b.load(smem + s * kStageElems + kATile);
      load_a.advance();
      load_b.advance();
    }
    tg::cuda::cp_async_commit();
  }
  tg::cuda::cp_async_wait<kStages - 2>();
  __syncthreads();

  uint32_t af[2][kFm][4], bf[2][kFn][2];
  int read_stage = 0, write_stage = kStages - 1;
  if (ktiles > 0) {
    load_fragments<kBn, kTransA, kTransB>(af[0], bf[0], smem, smem + kATile, lane, wm, wn, 0);
  }
  for (int kt = 0; kt < ktiles; ++kt) {
#pragma unroll
    for (int step = 0; step < kBk / 16; ++step) {
      const int next = (step + 1) % 2;
      if (step == kBk / 16 - 1) {
        // The next slice must have landed (and everyone be done reading the stage that the
        // loads below overwrite) before its first fragments are read.
        tg::cuda::cp_async_wait<kStages - 2>();
        __syncthreads();
        read_stage = (read_stage + 1) % kStages;
        if (kt + 1 < ktiles) {
          const uint16_t* s = smem + read_stage * kStageElems;
          load_fragments<kBn, kTransA, kTransB>(af[next], bf[next], s, s + kATile, lane, wm, wn, 0);
        }
      } else {
        const uint16_t* s = smem + read_stage * kStageElems;
        load_fragments<kBn, kTransA, kTransB>(af[next], bf[next], s, s + kATile, lane, wm, wn, (step + 1) * 16);
      }
      if (step == 0) {
        // Slice kt + kStages - 1 goes to the stage slice kt - 1 used: every thread finished
        // reading it before the barrier of slice kt - 1's last step.
        if (kt + kStages - 1 < ktiles) {
          load_a.load(smem + write_stage * kStageElems);
          load_b.load(smem + write_stage * kStageElems + kATile);
          load_a.advance();
          load_b.advance();
        }
        tg::cuda::cp_async_commit();
        write_stage = (write_stage + 1) % kStages;
      }
      const int cur = step % 2;
#pragma unroll
      for (int i = 0; i < kFm; ++i)
#pragma unroll
        for (int j = 0; j < kFn; ++j) mma16::mma<kBf16>(acc[i][j], af[cur][i], bf[cur][j]);
    }
  }
  tg::cuda::cp_async_wait<0>();

  // Epilogue: accumulator q of fragment (i, j) is row g (+8 for q >= 2), column 2t (+1 for odd q).
  const int g = lane / 4, t = lane % 4;
  uint16_t* out = p.out + batch * M * N;
#pragma unroll
  for (int j = 0; j < kFn; ++j) {
    const int64_t col = n0 + wn + j * 8 + 2 * t;
    if (col >= N) continue;
    const bool has_hi = col + 1 < N;
    float b0 = 0.0f, b1 = 0.0f;
    if (p.bias != nullptr) {
      b0 = mma16::to_float<kBf16>(p.bias[col]);
      if (has_hi) b1 = mma16::to_float<kBf16>(p.bias[col + 1]);
    }
#pragma unroll
    for (int i = 0; i < kFm; ++i) {
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int64_t row = m0 + wm + i * 16 + g + h * 8;
        if (row >= M) continue;
        const float v0 = tg::cuda::epilogue::apply(acc[i][j][2 * h], b0, p.act);
        const float v1 = tg::cuda::epilogue::apply(acc[i][j][2 * h + 1], b1, p.act);
        const uint32_t packed = mma16::pack2<kBf16>(v0, v1);
        uint16_t* dst = out + row * N + col;
        if (p.pair_store && has_hi) {
          *reinterpret_cast<uint32_t*>(dst) = packed;
        } else {
          dst[0] = static_cast<uint16_t>(packed & 0xffffu);
          if (has_hi) dst[1] = static_cast<uint16_t>(packed >> 16);
        }
      }
    }
  }
}

template <int kBf16, bool kTransA, bool kTransB, bool kAligned>
int launch(const Params& p, int64_t blocks, cudaStream_t s) {
  constexpr int kBn = kAligned ? 256 : 128;
  constexpr int kSmemBytes = Tile<kBn>::kSmemBytes;
  auto kernel = matmul16_kernel<kBf16, kTransA, kTransB, kAligned, kBn>;
  cudaError_t err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmemBytes);
  if (err != cudaSuccess) return static_cast<int>(err);
  for (int64_t b0 = 0; b0 < blocks; b0 += kMaxBlocks) {
    const int64_t nb = blocks - b0 < kMaxBlocks ? blocks - b0 : kMaxBlocks;
    kernel<<<static_cast<unsigned int>(nb), kThreads, kSmemBytes, s>>>(p, b0);
    err = cudaGetLastError();
    if (err != cudaSuccess) return static_cast<int>(err);
  }
  return 0;
}

template <int kBf16, bool kAligned>
int launch_trans(const Params& p, bool ta, bool tb, int64_t blocks, cudaStream_t s) {
  if (ta) return tb ? launch<kBf16, true, true, kAligned>(p, blocks, s) : launch<kBf16, true, false, kAligned>(p, blocks, s);
  return tb ? launch<kBf16, false, true, kAligned>(p, blocks, s) : launch<kBf16, false, false, kAligned>(p, blocks, s);
}

bool aligned16(const void* ptr) { return reinterpret_cast<uintptr_t>(ptr) % 16 == 0; }

}  // namespace

extern "C" int tg_cuda_matmul_f16(const TgMatmul16* args, void* stream) {
  const TgMatmul16& a = *args;
  if ((a.dtype != TG_DTYPE_F16 && a.dtype != TG_DTYPE_BF16) ||
      (a.activation != TG_EPILOGUE_NONE && a.activation != TG_EPILOGUE_RELU) || a.batch < 0 || a.m < 0 || a.n < 0 ||
      a.k < 0 || a.m > INT32_MAX / 2 || a.n > INT32_MAX / 2) {
    return static_cast<int>(cudaErrorInvalidValue);
  }
  if (a.batch == 0 || a.m == 0 || a.n == 0) return 0;
  // The cp.async path copies 16-byte chunks of 8 elements along each stored row.
  const bool aligned = a.k % 8 == 0 && (a.trans_a ? a.m : a.k) % 8 == 0 && (a.trans_b ? a.k : a.n) % 8 == 0 &&
                       aligned16(a.a) && aligned16(a.b);
  const int bn = aligned ? 256 : 128;  // launch()'s kBn
  Params p;
  p.a = static_cast<const uint16_t*>(a.a);
  p.b = static_cast<const uint16_t*>(a.b);
  p.bias = static_cast<const uint16_t*>(a.bias);
  p.out = static_cast<uint16_t*>(a.out);
  p.m = a.m;
  p.n = a.n;
  p.k = a.k;
  p.tiles_m = static_cast<int>((a.m + kBm - 1) / kBm);
  p.tiles_n = static_cast<int>((a.n + bn - 1) / bn);
  p.act = a.activation;
  p.pair_store = a.n % 2 == 0 && reinterpret_cast<uintptr_t>(a.out) % 4 == 0;
  const int64_t tiles = static_cast<int64_t>(p.tiles_m) * p.tiles_n;
  if (tiles * kGroupM > INT32_MAX) return static_cast<int>(cudaErrorInvalidValue);  // int tile arithmetic
  const int64_t blocks = tiles * a.batch;
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  const bool ta = a.trans_a != 0, tb = a.trans_b != 0;
  if (a.dtype == TG_DTYPE_BF16) {
    return aligned ? launch_trans<1, true>(p, ta, tb, blocks, s) : launch_trans<1, false>(p, ta, tb, blocks, s);
  }
  return aligned ? launch_trans<0, true>(p, ta, tb, blocks, s) : launch_trans<0, false>(p, ta, tb, blocks, s);
}
