// float16 / bfloat16 matmul on Hopper's warpgroup MMA (wgmma.mma_async, sm_90a only): the same
// product, arguments and rounding as matmul_f16.cu (tg_cuda.h, TgMatmul16), for the shapes the
// cp.async path there takes (K and every stored row length multiples of 8, a and b 16-byte
// aligned); tg_cuda_matmul_half (matmul_half.cu) picks between the two kernels.
//
// A 128 x 256 block of C per 256 threads = 2 warpgroups, warpgroup w owning rows 64 w .. 64 w + 63
// as one m64n256k16 accumulator (128 floats per thread, wgmma.cuh documents the fragment). K goes
// in 64-deep slices: the 128 x 64 slice of A (16 KiB) and the 64 x 256 slice of B (32 KiB) are
// copied by cp.async (all 256 threads) into shared memory in the 128-byte swizzled canonical
// layouts that wgmma reads (wgmma.cuh), a 4-stage ring (192 KiB); each slice is four k16 steps of
// m64n256k16 per warpgroup, both operands read straight from shared memory by descriptors.
//
// Operands are read in their stored layout: a (M, K) and b transposed (N, K) are "K-major" tiles
// (rows of 64 K elements, 128 bytes); a transposed (K, M) and b (K, N) are "MN-major" tiles (64 rows
// along K of 64 M / N elements, one such 8 KiB block per 64 columns) read with wgmma's transpose
// bit. Every transpose combination takes this kernel. Ragged M, N, K edges are zero-filled by the
// copies; the epilogue (bias, ReLU, rounding) is matmul_f16's.
//
// The pipeline (S = 4 stages; the CPU emulation runs each wgmma at issue, so it cannot check
// this ordering — the argument is here):
//   prologue  slices 0 .. S - 3 issued, one cp.async group each.
//   slice kt  1. cp.async.wait_group S - 3: this thread's copies of slice kt have landed.
//             2. fence.proxy.async: those generic-proxy writes become visible to the async proxy
//                wgmma reads through (cp.async writes are not ordered with wgmma otherwise).
//             3. __syncthreads: every thread's copies of slice kt are landed and fenced; every
//                thread has also passed step 6 of slice kt - 1, so the wgmma of slice kt - 2 have
//                completed in both warpgroups and its stage, (kt - 2) % S, is free.
//             4. wgmma.fence, 4 x wgmma on stage kt % S, commit_group.
//             5. cp.async of slice kt + S - 2 into stage (kt + S - 2) % S == (kt - 2) % S (free by 3),
//                one commit group (empty past the end, so the count in 1 stays exact).
//             6. wgmma.wait_group 1: the wgmma of slice kt - 1 are complete (those of kt may still
//                run while the next slice's wait and barrier proceed).
//   Stages in use during slice kt: kt - 1 (maybe still read), kt (read), kt + 1 (landing),
//   kt + 2 (being written): four distinct stages. After the loop wait_group 0 precedes the
//   epilogue's reads of the accumulators.
// The accumulators are only touched by wgmma between the zero fill and wait_group 0.
//
// Built for any target other than sm_90a the kernel body is empty; tg_cuda_matmul_f16_wgmma
// launches it only on a device of compute capability 9.0, and setup.py compiles this file for
// sm_90a alone, so no other image exists to be picked.
#include <cuda_runtime.h>
#include <stdint.h>

#include "async_copy.cuh"
#include "epilogue.cuh"
#include "mma16.cuh"
#include "tg_cuda.h"
#include "wgmma.cuh"

#if defined(__CUDA_ARCH_FEAT_SM90_ALL) || defined(TG_CUDA_EMULATION)
#define TG_WGMMA_BODY 1
#endif

namespace {

namespace wg = tg::cuda::wgmma;
namespace mma16 = tg::cuda::mma16;
using tg::cuda::cp_async16;

constexpr int kBm = 128;        // block tile rows (M): 2 warpgroups x 64
constexpr int kBn = 256;        // block tile columns (N): one m64n256 per warpgroup
constexpr int kBk = 64;         // K slice per stage: one 128-byte swizzle row of 16-bit values
constexpr int kStages = 4;
constexpr int kThreads = 256;
constexpr int kGroupM = 8;      // tile rows per L2 group
constexpr int kATileBytes = kBm * kBk * 2;
constexpr int kBTileBytes = kBn * kBk * 2;
constexpr int kStageBytes = kATileBytes + kBTileBytes;
constexpr int kMnBlockBytes = kBk * 128;           // MN-major: 64 K rows of 64 M/N elements
constexpr int kSmemBytes = kStages * kStageBytes + 1024;  // + the slack to align the ring to 1024
constexpr int64_t kMaxBlocks = 2147483647;
static_assert(kBk * 2 == 128, "a K-major tile row is one 128-byte swizzle row");
static_assert(kATileBytes % 1024 == 0 && kStageBytes % 1024 == 0, "swizzle atoms stay 1024-byte aligned");

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

// Copies one operand's kRows x kBk tile (rows along M/N) of one K slice into shared memory with
// cp.async (16-byte chunks, zero-filled outside the operand). Thread tid owns chunks tid + 256 i:
// all in one chunk column of the stored rows, so their swizzle differs only by whole atoms.
template <bool kMnMajor, int kRows>
struct TileLoader {
  static constexpr int kRowChunks = kMnMajor ? kRows / 8 : kBk / 8;  // chunks per stored tile row
  static constexpr int kRowStep = kThreads / kRowChunks;              // tile rows between my chunks
  static constexpr int kPer = kRows * kBk / 8 / kThreads;
  static_assert(kPer * kThreads * 8 == kRows * kBk && kThreads % kRowChunks == 0, "chunks divide evenly");

  const uint16_t* src;  // my first chunk of the current slice
  int64_t ld;           // elements between stored rows
  int row, chunk;       // my first chunk: stored tile row (K-major: M/N; MN-major: K) and column
  int64_t mn_left;      // elements of M/N from the tile's start to the operand's end
  int64_t k_left;       // K left from the current slice's start

  // The operand stored K-major as (MN, K) rows of length ld = K, or MN-major as (K, MN), ld = MN;
  // the tile starts at mn0.
  __device__ __forceinline__ TileLoader(const uint16_t* op, int64_t ld_, int64_t mn0, int64_t mn, int64_t k,
                                        int tid) {
    ld = ld_;
    row = tid / kRowChunks;
    chunk = tid % kRowChunks;
    mn_left = mn - mn0;
    k_left = k;
    src = kMnMajor ? op + row * ld + mn0 + chunk * 8 : op + (mn0 + row) * ld + chunk * 8;
  }

  __device__ __forceinline__ void load(uint8_t* tile) const {
    const uint32_t off = wg::tile_offset<kMnMajor, kBk>(row, chunk);
#pragma unroll
    for (int i = 0; i < kPer; ++i) {
      const int r = row + i * kRowStep;
      const bool ok = kMnMajor ? r < k_left && chunk * 8 < mn_left : r < mn_left && chunk * 8 < k_left;
      // Rows r and row differ by a multiple of 8: the same swizzle, i * kRowStep rows further.
      cp_async16(tile + off + i * kRowStep * 128, ok ? src + i * kRowStep * ld : src, ok);
    }
  }

  __device__ __forceinline__ void advance() {
    src += kMnMajor ? kBk * ld : kBk;
    k_left -= kBk;
  }
};

template <int kBf16, bool kTransA, bool kTransB>
__global__ void __launch_bounds__(kThreads, 1) wgmma_kernel(Params p, int64_t block0) {
#ifdef TG_WGMMA_BODY
  extern __shared__ uint8_t smem_raw[];
  // The swizzle atoms must be 1024-byte aligned in the shared window.
  const uint32_t raw = wg::smem_address(smem_raw);
  const uint32_t pad = (1024 - (raw & 1023)) & 1023;
  uint8_t* ring = smem_raw + pad;
  const uint32_t ring_addr = raw + pad;

  // Block -> (batch, tile row, tile column); tile rows in groups of kGroupM (as matmul_f16).
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
  const int tid = threadIdx.x, group = tid / 128;

  // a: (M, K), or transposed (K, M); b: (K, N), or transposed (N, K).
  TileLoader<kTransA, kBm> load_a(p.a + batch * M * K, kTransA ? M : K, m0, M, K, tid);
  TileLoader<!kTransB, kBn> load_b(p.b + batch * K * N, kTransB ? K : N, n0, N, K, tid);

  float acc[128];
#pragma unroll
  for (int i = 0; i < 128; ++i) acc[i] = 0.0f;

  const int ktiles = static_cast<int>((K + kBk - 1) / kBk);
#pragma unroll
  for (int s = 0; s < kStages - 2; ++s) {
    if (s < ktiles) {
      load_a.load(ring + s * kStageBytes);
      load_b.load(ring + s * kStageBytes + kATileBytes);
      load_a.advance();
      load_b.advance();
    }
    tg::cuda::cp_async_commit();
  }
  // This warpgroup's 64 rows of the A tile: rows 64 w.. of a K-major tile, or the w-th
  // 64-column block of an MN-major one; both kMnBlockBytes = 8 KiB into the tile.
  const uint32_t a_rows = group * kMnBlockBytes;
  static_assert(64 * kBk * 2 == kMnBlockBytes, "64 K-major rows take one MN-major block's bytes");

  for (int kt = 0; kt < ktiles; ++kt) {
    tg::cuda::cp_async_wait<kStages - 3>();
    wg::fence_proxy_async();
    __syncthreads();
    const uint32_t stage = ring_addr + (kt % kStages) * kStageBytes;
    wg::fence_operands(acc);
    wg::fence();
#pragma unroll
    for (int j = 0; j < kBk / 16; ++j) {
      wg::mma_m64n256k16<kBf16, kTransA, !kTransB>(acc, wg::tile_desc<kTransA, kBk>(stage + a_rows, j),
                                                    wg::tile_desc<!kTransB, kBk>(stage + kATileBytes, j));
    }
    wg::commit_group();
    if (kt + kStages - 2 < ktiles) {
      uint8_t* dst = ring + ((kt + kStages - 2) % kStages) * kStageBytes;
      load_a.load(dst);
      load_b.load(dst + kATileBytes);
      load_a.advance();
      load_b.advance();
    }
    tg::cuda::cp_async_commit();
    wg::wait_group<1>();
    wg::fence_operands(acc);
  }
  wg::wait_group<0>();
  wg::fence_operands(acc);
  tg::cuda::cp_async_wait<0>();

  // Epilogue: d[4 i + e] is row 16 (warp in group) + g (+ 8 for e >= 2), column 8 i + 2 q (+ 1
  // for odd e) of this warpgroup's 64 x 256 tile.
  const int lane = tid % 32, g = lane / 4, q = lane % 4;
  const int64_t row0 = m0 + group * 64 + ((tid % 128) / 32) * 16 + g;
  uint16_t* out = p.out + batch * M * N;
#pragma unroll
  for (int i = 0; i < kBn / 8; ++i) {
    const int64_t col = n0 + i * 8 + 2 * q;
    if (col >= N) continue;
    const bool has_hi = col + 1 < N;
    float b0 = 0.0f, b1 = 0.0f;
    if (p.bias != nullptr) {
      b0 = mma16::to_float<kBf16>(p.bias[col]);
      if (has_hi) b1 = mma16::to_float<kBf16>(p.bias[col + 1]);
    }
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int64_t row = row0 + h * 8;
      if (row >= M) continue;
      const float v0 = tg::cuda::epilogue::apply(acc[4 * i + 2 * h], b0, p.act);
      const float v1 = tg::cuda::epilogue::apply(acc[4 * i + 2 * h + 1], b1, p.act);
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
#endif  // TG_WGMMA_BODY
}

template <int kBf16, bool kTransA, bool kTransB>
int launch(const Params& p, int64_t blocks, cudaStream_t s) {
  auto kernel = wgmma_kernel<kBf16, kTransA, kTransB>;
  cudaError_t err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmemBytes);
  if (err != cudaSuccess) return static_cast<int>(err);
  for (int64_t b0 = 0; b0 < blocks; b0 += kMaxBlocks) {
    const int64_t nb = blocks - b0 < kMaxBlocks ? blocks - b0 : kMaxBlocks;
    wgmma_kernel<kBf16, kTransA, kTransB><<<static_cast<unsigned int>(nb), kThreads, kSmemBytes, s>>>(p, b0);
    err = cudaGetLastError();
    if (err != cudaSuccess) return static_cast<int>(err);
  }
  return 0;
}

template <int kBf16>
int launch_trans(const Params& p, bool ta, bool tb, int64_t blocks, cudaStream_t s) {
  if (ta) return tb ? launch<kBf16, true, true>(p, blocks, s) : launch<kBf16, true, false>(p, blocks, s);
  return tb ? launch<kBf16, false, true>(p, blocks, s) : launch<kBf16, false, false>(p, blocks, s);
}

bool aligned16(const void* ptr) { return reinterpret_cast<uintptr_t>(ptr) % 16 == 0; }

}  // namespace

extern "C" int tg_cuda_has_wgmma(void) {
#ifdef TG_CUDA_EMULATION
  return 1;  // the CPU emulation runs wgmma (wgmma.cuh)
#else
  // sm_90a code runs on compute capability 9.0 exactly (H100 / H200), not on later GPUs.
  int dev = 0, major = 0, minor = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) return 0;
  if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess) return 0;
  if (cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev) != cudaSuccess) return 0;
  return major == 9 && minor == 0;
#endif
}

extern "C" int tg_cuda_matmul_f16_wgmma_takes(const TgMatmul16* args) {
  const TgMatmul16& a = *args;
  return a.k % 8 == 0 && (a.trans_a ? a.m : a.k) % 8 == 0 && (a.trans_b ? a.k : a.n) % 8 == 0 && aligned16(a.a) &&
         aligned16(a.b);
}

extern "C" int tg_cuda_matmul_f16_wgmma(const TgMatmul16* args, void* stream) {
  const TgMatmul16& a = *args;
  if ((a.dtype != TG_DTYPE_F16 && a.dtype != TG_DTYPE_BF16) ||
      (a.activation != TG_EPILOGUE_NONE && a.activation != TG_EPILOGUE_RELU) || a.batch < 0 || a.m < 0 || a.n < 0 ||
      a.k < 0 || a.m > INT32_MAX / 2 || a.n > INT32_MAX / 2 || !tg_cuda_matmul_f16_wgmma_takes(args)) {
    return static_cast<int>(cudaErrorInvalidValue);
  }
#ifndef TG_CUDA_EMULATION  // (the emulation runs wgmma everywhere)
  if (!tg_cuda_has_wgmma()) return static_cast<int>(cudaErrorNoKernelImageForDevice);
#endif
  if (a.batch == 0 || a.m == 0 || a.n == 0) return 0;
  Params p;
  p.a = static_cast<const uint16_t*>(a.a);
  p.b = static_cast<const uint16_t*>(a.b);
  p.bias = static_cast<const uint16_t*>(a.bias);
  p.out = static_cast<uint16_t*>(a.out);
  p.m = a.m;
  p.n = a.n;
  p.k = a.k;
  p.tiles_m = static_cast<int>((a.m + kBm - 1) / kBm);
  p.tiles_n = static_cast<int>((a.n + kBn - 1) / kBn);
  p.act = a.activation;
  p.pair_store = a.n % 2 == 0 && reinterpret_cast<uintptr_t>(a.out) % 4 == 0;
  const int64_t tiles = static_cast<int64_t>(p.tiles_m) * p.tiles_n;
  if (tiles * kGroupM > INT32_MAX) return static_cast<int>(cudaErrorInvalidValue);  // int tile arithmetic
  const int64_t blocks = tiles * a.batch;
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  const bool ta = a.trans_a != 0, tb = a.trans_b != 0;
  return a.dtype == TG_DTYPE_BF16 ? launch_trans<1>(p, ta, tb, blocks, s) : launch_trans<0>(p, ta, tb, blocks, s);
}
