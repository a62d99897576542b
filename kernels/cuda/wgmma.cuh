// Hopper warpgroup MMA (wgmma.mma_async, sm_90a only) for float16 / bfloat16 with float32
// accumulation, both operands read from shared memory through matrix descriptors; the fences
// that order it; the 128-byte swizzle it reads. CUDA code: include only from .cu files compiled
// for sm_90a (the instructions are guarded by __CUDA_ARCH_FEAT_SM90_ALL and compile to nothing
// for other targets, which must never run them). PTX ISA, "Asynchronous Warpgroup Level Matrix
// Multiply-Accumulate" (wgmma), sections on the matrix descriptor, the shared-memory layouts and
// swizzling modes, and the register fragments of D.
//
// A warpgroup is 4 consecutive warps (128 threads, the first warp's index a multiple of 4). Every
// thread of it executes each wrapper below with the same arguments (descriptors included).
//
//   fence()              wgmma.fence: orders this thread's earlier register accesses (the
//                        accumulators) and shared-memory writes before the next wgmma's reads.
//   commit_group()       closes the group of wgmma issued since the last commit.
//   wait_group<N>()      waits until at most N of this warpgroup's groups are pending: then
//                        the accumulators of the others may be read and their shared-memory
//                        operands overwritten.
//   fence_proxy_async()  fence.proxy.async.shared::cta: makes this thread's generic-proxy writes
//                        to shared memory (plain stores, cp.async) visible to the async proxy
//                        that wgmma reads through; needed between writing a tile and the
//                        barrier after which any thread issues a wgmma on it.
//   mma_m64n256k16<kBf16, kTransA, kTransB>(d, desc_a, desc_b)
//                        D (64 x 256, float) += A (64 x 16) * B (16 x 256), both from shared
//                        memory; kTransA / kTransB: the operand is stored MN-major (rows along M /
//                        N) instead of K-major (rows along K). Issued asynchronously: d must not
//                        be read or written before a wait_group that covers it.
//
// Accumulator fragment of m64nNk16 (N = 256 here: 128 floats per thread). Thread t of the
// warpgroup, warp w = t / 32, lane l = t % 32, g = l / 4, q = l % 4; for i in [0, N / 8):
//   d[4 i + 0], d[4 i + 1] = D[16 w + g    ][8 i + 2 q], D[16 w + g    ][8 i + 2 q + 1]
//   d[4 i + 2], d[4 i + 3] = D[16 w + g + 8][8 i + 2 q], D[16 w + g + 8][8 i + 2 q + 1]
// i.e. warp w owns rows 16 w .. 16 w + 15, laid out as N / 8 mma.sync m16n8 accumulators.
//
// Matrix descriptor (64 bits): bits 0-13 start address >> 4 (shared window), 16-29 leading
// dimension byte offset >> 4 (LBO), 32-45 stride dimension byte offset >> 4 (SBO), 49-51 base
// offset (0: every swizzle atom here is 1024-byte aligned), 62-63 swizzle mode (1 = 128-byte).
//
// The 128-byte swizzle works on shared addresses: a 16-byte chunk at address x is stored at
// x ^ (((x >> 7) & 7) << 4), i.e. within each 1024-byte atom of eight 128-byte rows, chunk c of
// row r sits at chunk c ^ r. wgmma computes the unswizzled address of each element from the
// descriptor, then applies that XOR, so a start address may step inside an atom (along K by 32
// bytes per k16 for K-major tiles) as long as the atoms themselves are 1024-byte aligned.
// Canonical layouts with 128-byte swizzle, 16-bit elements (byte offsets before the XOR):
//   K-major  (rows along M/N, 64 elements of K per 128-byte row):
//            element (mn, k) at start + (mn / 8) * SBO + (mn % 8) * 128 + 2 k     (k < 16; LBO unused)
//   MN-major (rows along K, 64 elements of M/N per 128-byte row):
//            element (mn, k) at start + (mn / 64) * LBO + (k / 8) * SBO + (k % 8) * 128 + 2 (mn % 64)
// (CUTLASS cute's canonical GMMA layouts, Swizzle<3,4,3>, read the same way.)
//
// Built for the CPU test emulation (TG_CUDA_EMULATION, tests/native/cuda_emu) the fences,
// commit and wait are no-ops and mma_m64n256k16 runs synchronously at issue: each thread decodes
// the descriptors, reads its rows of A and columns of B from the emulated shared memory through
// the layouts and swizzle above, and accumulates its own fragment (SS operands need no exchange
// between threads; a warp-wide gather checks that the lanes agree on the descriptors). Shared
// addresses are offsets from the block's dynamic shared memory. Because it runs at issue, the
// emulation cannot show a missing wait_group or fence: the kernels argue those in comments.
#pragma once

#include <stdint.h>

#ifdef TG_CUDA_EMULATION
#include <cstdio>
#include <cstdlib>
#include <cstring>
#endif

namespace tg {
namespace cuda {
namespace wgmma {

constexpr int kSwizzle128 = 1;  // descriptor bits 62-63

// The descriptor of an operand tile at shared address `addr` (1024-byte aligned atoms; addr
// itself 16-byte aligned) with the given byte offsets, 128-byte swizzle.
__host__ __device__ __forceinline__ uint64_t make_desc(uint32_t addr, uint32_t lbo, uint32_t sbo) {
  return static_cast<uint64_t>((addr & 0x3FFFF) >> 4) | (static_cast<uint64_t>((lbo & 0x3FFFF) >> 4) << 16) |
         (static_cast<uint64_t>((sbo & 0x3FFFF) >> 4) << 32) | (static_cast<uint64_t>(kSwizzle128) << 62);
}

// The byte offset, from a 1024-byte aligned atom start, where a 128-byte swizzled tile keeps the
// 16-byte chunk `chunk` (0-7) of its 128-byte row `row`: what writers of the tiles use.
__host__ __device__ __forceinline__ uint32_t swizzle128(uint32_t row, uint32_t chunk) {
  return row * 128 + ((chunk ^ (row & 7)) << 4);
}

// Operand tiles as this project stores them: kRows rows along M / N, kDepth (a multiple of 16,
// at most 64) along K, 16-bit elements, the tile 1024-byte aligned.
//   K-major  (from a stored (MN, K) operand): tile row mn is one 128-byte row, 64 elements of K.
//   MN-major (from a stored (K, MN) operand): blocks of 64 columns, each kDepth 128-byte rows
//            along K; block b holds columns 64 b .. 64 b + 63.
// tile_offset: the byte offset of 16-byte chunk `chunk` of stored row `row` (K-major: row along
// M/N, chunk along K; MN-major: row along K, chunk along M/N).
template <bool kMnMajor, int kDepth>
__host__ __device__ __forceinline__ uint32_t tile_offset(int row, int chunk) {
  if (kMnMajor) return (chunk / 8) * (kDepth * 128) + swizzle128(row, chunk % 8);
  return swizzle128(row, chunk);
}

// The descriptor of k16 step j of such a tile at shared address `addr`. K-major: the step is 32
// bytes along each 128-byte row (the hardware swizzles the sum), 8-row groups 1024 bytes apart
// (SBO), LBO unused with this swizzle (16, as CUTLASS sets it). MN-major: the step is 16 rows
// along K (2048 bytes), 8-row groups 1024 bytes apart (SBO), 64-column blocks kDepth * 128 apart
// (LBO).
template <bool kMnMajor, int kDepth>
__host__ __device__ __forceinline__ uint64_t tile_desc(uint32_t addr, int j) {
  static_assert(kDepth % 16 == 0 && kDepth <= 64, "K depth: k16 steps inside one 128-byte row");
  if (kMnMajor) return make_desc(addr + j * 2048, kDepth * 128, 1024);
  return make_desc(addr + j * 32, 16, 1024);
}

#ifndef TG_CUDA_EMULATION

// The shared-window address of a pointer into shared memory.
__device__ __forceinline__ uint32_t smem_address(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

__device__ __forceinline__ void fence() {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
#endif
}

__device__ __forceinline__ void commit_group() {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
#endif
}

template <int N>
__device__ __forceinline__ void wait_group() {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
#endif
}

__device__ __forceinline__ void fence_proxy_async() {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
#endif
}

// Keeps the compiler from moving accesses of the accumulators across the asynchronous wgmma
// (it sees the asm operands only at issue): an empty asm that "reads and writes" each of them.
template <int kN>
__device__ __forceinline__ void fence_operands(float (&d)[kN]) {
#pragma unroll
  for (int i = 0; i < kN; ++i) asm volatile("" : "+f"(d[i])::"memory");
}

#define TG_WGMMA_D128 \
  "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, " \
  "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, " \
  "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, " \
  "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, " \
  "%64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, " \
  "%80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95, " \
  "%96, %97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, %110, %111, " \
  "%112, %113, %114, %115, %116, %117, %118, %119, %120, %121, %122, %123, %124, %125, %126, %127" \

#define TG_WGMMA_D128_OPERANDS(d) \
      "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), \
      "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), \
      "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), \
      "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), \
      "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), \
      "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), \
      "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), \
      "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]), \
      "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]), \
      "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79]), \
      "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83]), "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87]), \
      "+f"(d[88]), "+f"(d[89]), "+f"(d[90]), "+f"(d[91]), "+f"(d[92]), "+f"(d[93]), "+f"(d[94]), "+f"(d[95]), \
      "+f"(d[96]), "+f"(d[97]), "+f"(d[98]), "+f"(d[99]), "+f"(d[100]), "+f"(d[101]), "+f"(d[102]), "+f"(d[103]), \
      "+f"(d[104]), "+f"(d[105]), "+f"(d[106]), "+f"(d[107]), "+f"(d[108]), "+f"(d[109]), "+f"(d[110]), "+f"(d[111]), \
      "+f"(d[112]), "+f"(d[113]), "+f"(d[114]), "+f"(d[115]), "+f"(d[116]), "+f"(d[117]), "+f"(d[118]), "+f"(d[119]), \
      "+f"(d[120]), "+f"(d[121]), "+f"(d[122]), "+f"(d[123]), "+f"(d[124]), "+f"(d[125]), "+f"(d[126]), "+f"(d[127])

template <int kBf16, int kTransA, int kTransB>
__device__ __forceinline__ void mma_m64n256k16(float (&d)[128], uint64_t desc_a, uint64_t desc_b) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  if (kBf16) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %130, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n256k16.f32.bf16.bf16 {" TG_WGMMA_D128
        "}, %128, %129, p, 1, 1, %131, %132;\n}\n"
        : TG_WGMMA_D128_OPERANDS(d)
        : "l"(desc_a), "l"(desc_b), "r"(1), "n"(kTransA), "n"(kTransB));
  } else {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %130, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n256k16.f32.f16.f16 {" TG_WGMMA_D128
        "}, %128, %129, p, 1, 1, %131, %132;\n}\n"
        : TG_WGMMA_D128_OPERANDS(d)
        : "l"(desc_a), "l"(desc_b), "r"(1), "n"(kTransA), "n"(kTransB));
  }
#endif
}

#undef TG_WGMMA_D128
#undef TG_WGMMA_D128_OPERANDS

#else  // TG_CUDA_EMULATION

inline uint32_t smem_address(const void* p) {
  return static_cast<uint32_t>(static_cast<const char*>(p) - static_cast<const char*>(emu::g_dyn_smem));
}

inline void fence() {}
inline void commit_group() {}
template <int N>
inline void wait_group() {}
inline void fence_proxy_async() {}
template <int kN>
inline void fence_operands(float (&)[kN]) {}

struct Desc {
  uint32_t start, lbo, sbo, swizzle;
};

inline Desc decode(uint64_t desc) {
  Desc d;
  d.start = static_cast<uint32_t>(desc & 0x3FFF) << 4;
  d.lbo = static_cast<uint32_t>((desc >> 16) & 0x3FFF) << 4;
  d.sbo = static_cast<uint32_t>((desc >> 32) & 0x3FFF) << 4;
  d.swizzle = static_cast<uint32_t>(desc >> 62);
  return d;
}

// Element (mn, k) of an operand described by `desc` (k < 16), stored K-major or MN-major, read
// from the block's dynamic shared memory as the hardware addresses it: the canonical offset,
// then the 128-byte swizzle of the resulting shared address.
template <int kBf16>
inline float read_operand(const Desc& d, bool mn_major, int mn, int k) {
  uint32_t x = mn_major ? d.start + (mn / 64) * d.lbo + (k / 8) * d.sbo + (k % 8) * 128 + 2 * (mn % 64)
                        : d.start + (mn / 8) * d.sbo + (mn % 8) * 128 + 2 * k;
  x ^= ((x >> 7) & 7) << 4;
  uint16_t bits;
  std::memcpy(&bits, static_cast<const char*>(emu::g_dyn_smem) + x, 2);
  if (kBf16) {
    const uint32_t w = static_cast<uint32_t>(bits) << 16;
    float f;
    std::memcpy(&f, &w, 4);
    return f;
  }
  _Float16 h;
  std::memcpy(&h, &bits, 2);
  return static_cast<float>(h);
}

template <int kBf16, int kTransA, int kTransB>
inline void mma_m64n256k16(float (&d)[128], uint64_t desc_a, uint64_t desc_b) {
  // Every lane of the warp must pass the same descriptors (.sync.aligned).
  const uint64_t mine[2] = {desc_a, desc_b};
  uint64_t all[32][2];
  emu::warp_all_gather(mine, all);
  for (int i = 0; i < 32; ++i) {
    if (all[i][0] != desc_a || all[i][1] != desc_b) {
      std::fprintf(stderr, "wgmma emulation: lanes of one warp disagree on the descriptors\n");
      std::abort();
    }
  }
  const Desc a = decode(desc_a), b = decode(desc_b);
  if (a.swizzle != kSwizzle128 || b.swizzle != kSwizzle128) {
    std::fprintf(stderr, "wgmma emulation: only the 128-byte swizzle is emulated\n");
    std::abort();
  }
  const int t = emu::t_linear % 128, w = t / 32, g = (t % 32) / 4, q = t % 4;
  float ar[2][16], br[64][16];
  for (int h = 0; h < 2; ++h)
    for (int k = 0; k < 16; ++k) ar[h][k] = read_operand<kBf16>(a, kTransA, 16 * w + g + 8 * h, k);
  for (int c = 0; c < 64; ++c)
    for (int k = 0; k < 16; ++k) br[c][k] = read_operand<kBf16>(b, kTransB, 8 * (c / 2) + 2 * q + c % 2, k);
  for (int i = 0; i < 32; ++i) {
    for (int e = 0; e < 4; ++e) {
      const float* ra = ar[e / 2];
      const float* cb = br[2 * i + e % 2];
      float s = 0.0f;
      for (int k = 0; k < 16; ++k) s += ra[k] * cb[k];
      d[4 * i + e] += s;
    }
  }
}

#endif  // TG_CUDA_EMULATION

}  // namespace wgmma
}  // namespace cuda
}  // namespace tg
