// One warpgroup's wgmma (kernels/cuda/wgmma.cuh) for tests/native/test_cuda_emu_wgmma.py: A (64 x
// 64) and B (64 x 256) copied by cp.async into the 128-byte swizzled tiles matmul_wgmma.cu uses
// (K-major or MN-major each), multiplied by four k16 steps of m64n256k16 through descriptors, D
// stored through the documented accumulator layout. The emulated wgmma reads the tiles through
// the PTX layouts independently of the writers, so a product that matches NumPy's checks the
// tile writers, the descriptors, the swizzle and the fragment layout together.
#include <cuda_runtime.h>
#include <stdint.h>

#include "async_copy.cuh"
#include "wgmma.cuh"

using namespace tg::cuda;

namespace {

constexpr int kDepth = 64;
constexpr int kATile = 64 * kDepth * 2, kBTile = 256 * kDepth * 2;
constexpr int kSmem = kATile + kBTile + 1024;

// Copies a kRows x kDepth operand tile, stored (kRows, kDepth) when K-major or (kDepth, kRows)
// when MN-major, row-major in global memory.
template <bool kMnMajor, int kRows>
__device__ void load_tile(uint8_t* tile, const uint16_t* src) {
  constexpr int kRowChunks = (kMnMajor ? kRows : kDepth) / 8;
  constexpr int kChunks = kRows * kDepth / 8;
  for (int c = threadIdx.x; c < kChunks; c += 128) {
    const int row = c / kRowChunks, chunk = c % kRowChunks;
    cp_async16(tile + wgmma::tile_offset<kMnMajor, kDepth>(row, chunk), src + row * kRowChunks * 8 + chunk * 8, true);
  }
}

template <int kBf16, bool kMnA, bool kMnB>
__global__ void wgmma_kernel(const uint16_t* a, const uint16_t* b, float* d_out) {
  extern __shared__ uint8_t smem_raw[];
  const uint32_t raw = wgmma::smem_address(smem_raw);
  const uint32_t pad = (1024 - (raw & 1023)) & 1023;
  uint8_t* tiles = smem_raw + pad;
  load_tile<kMnA, 64>(tiles, a);
  load_tile<kMnB, 256>(tiles + kATile, b);
  cp_async_commit();
  cp_async_wait<0>();
  wgmma::fence_proxy_async();
  __syncthreads();
  float d[128];
  for (int i = 0; i < 128; ++i) d[i] = 0.0f;
  wgmma::fence_operands(d);
  wgmma::fence();
  for (int j = 0; j < kDepth / 16; ++j) {
    wgmma::mma_m64n256k16<kBf16, kMnA, kMnB>(d, wgmma::tile_desc<kMnA, kDepth>(raw + pad, j),
                                              wgmma::tile_desc<kMnB, kDepth>(raw + pad + kATile, j));
  }
  wgmma::commit_group();
  wgmma::wait_group<0>();
  wgmma::fence_operands(d);
  const int t = threadIdx.x, w = t / 32, g = (t % 32) / 4, q = t % 4;
  for (int i = 0; i < 32; ++i) {
    for (int e = 0; e < 4; ++e) d_out[(16 * w + g + 8 * (e / 2)) * 256 + 8 * i + 2 * q + e % 2] = d[4 * i + e];
  }
}

template <int kBf16, bool kMnA>
void launch_b(bool mn_b, const uint16_t* a, const uint16_t* b, float* d) {
  if (mn_b) {
    wgmma_kernel<kBf16, kMnA, true><<<1, 128, kSmem>>>(a, b, d);
  } else {
    wgmma_kernel<kBf16, kMnA, false><<<1, 128, kSmem>>>(a, b, d);
  }
}

}  // namespace

// a: A stored (64, 64) [m][k], or [k][m] when mn_a; b: B stored [n][k] (256, 64), or [k][n] (64,
// 256) when mn_b; d: D (64, 256) float32.
extern "C" int emu_wgmma(const uint16_t* a, const uint16_t* b, int mn_a, int mn_b, int bf16, float* d) {
  if (bf16) {
    mn_a ? launch_b<1, true>(mn_b, a, b, d) : launch_b<1, false>(mn_b, a, b, d);
  } else {
    mn_a ? launch_b<0, true>(mn_b, a, b, d) : launch_b<0, false>(mn_b, a, b, d);
  }
  return 0;
}

// The descriptor fields for a check of the bit layout: start address, LBO, SBO as given.
extern "C" uint64_t emu_wgmma_desc(uint32_t addr, uint32_t lbo, uint32_t sbo) { return wgmma::make_desc(addr, lbo, sbo); }
