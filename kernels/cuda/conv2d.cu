// 2-D convolution forward, input gradient and weight gradient as implicit GEMMs, float32
// (v1: tiled SIMT, the version every later one is checked against).
//
// Layout: none of our own. x and y stay NCHW, w stays OIHW; each GEMM operand is gathered
// from them on the fly, one 16-deep slice at a time, into shared-memory tiles (no im2col
// buffer, no transposed copies). Per group g of `groups` (og = o / groups output and
// cg = c / groups input channels per group):
//
//   forward          y[n, o, p]  = sum_k w[o, k] * X[k, (n, p)]     rows o < og, columns (n, oh, ow),
//                                                                    k = (c, r, s) < cg*kh*kw,
//                    X[(c, r, s), (n, oh, ow)] = x[n, c, oh*sh - ph + r*dh, ow*sw - pw + s*dw] (0 outside)
//   backward input   gx[n, c, q] = sum_k w[o, c, r, s] * G[k, (n, q)] rows c < cg, columns (n, ih, iw),
//                                                                    k = (o, r, s) < og*kh*kw,
//                    G[(o, r, s), (n, ih, iw)] = gy[n, o, (ih + ph - r*dh) / sh, (iw + pw - s*dw) / sw]
//                    where both divisions are exact and land inside gy, else 0: a gather per
//                    input pixel, so every gx element is written once (no atomics, no zeroing).
//                    With stride s only about 1 in sh*sw taps reaches an output pixel; v1
//                    multiplies the zeros of the others rather than splitting by stride phase.
//   backward weight  gw[o, j]    = sum_p gy[o, p] * X[j, p]         rows o < og, columns j = (c, r, s),
//                                                                    summed over p = (n, oh, ow)
//
// The weight gradient sums over all N*OH*OW output pixels while it has few output tiles, so
// with a workspace the sum is split into chunks whose partial results a second kernel adds
// in chunk order; results are bit-identical run to run either way.
//
// Tiles: 64 x 64 outputs per 256-thread block, 4 x 4 per thread at rows ty + 16 i and columns
// tx + 16 j (so a warp's shared reads are 16 consecutive words plus a broadcast), 16-deep
// slices. Both operand tiles are stored k-major ([k][row] and [k][column]) with rows padded
// by 2 words: loads that run along k (16 threads on 16 k of one row, then the next row) hit
// banks 2 k + row, all distinct in a warp; loads that run along columns are conflict-free
// anyway. The (c, r, s) or (n, oh, ow) decomposition of k is carried from slice to slice by
// mixed-radix counters (no divisions in the loop).
//
// In-image arithmetic is 32-bit (tg_cuda_conv2d_fits bounds every size); offsets into the
// arrays are 64-bit.
#include <cuda_runtime.h>
#include <stdint.h>

#include <initializer_list>

#include "tg_cuda.h"
#include "tg_cuda_device.h"

namespace {

constexpr int kBm = 64;                    // GEMM rows per block
constexpr int kBn = 64;                    // GEMM columns per block
constexpr int kBk = 16;                    // depth of one shared-memory slice
constexpr int kTm = 4;                     // rows per thread
constexpr int kTn = 4;                     // columns per thread
constexpr int kRowThreads = kBm / kTm;     // 16: a thread's rows are ty + 16 i
constexpr int kColThreads = kBn / kTn;     // 16: a thread's columns are tx + 16 j
constexpr int kThreads = kRowThreads * kColThreads;  // 256
constexpr int kLd = kBn + 2;               // padded row of a shared tile (bank analysis above)
// Two ways of filling a 16 x 64 tile with 256 threads, 4 passes each:
constexpr int kKRows = kThreads / kBk;     // along k: 16 k x 16 rows (or columns) per pass
constexpr int kKPasses = kBm / kKRows;     //   4 passes, rows r + 16 l
constexpr int kColK = kThreads / kBn;      // along columns: 64 columns x 4 k per pass
constexpr int kColPasses = kBk / kColK;    //   4 passes, k + 4 l

static_assert(kBm == kBn, "one padded row length (and one load pattern) serves both tiles");
static_assert(kKPasses * kKRows == kBm && kColPasses * kColK == kBk, "loads cover the tiles exactly");

// Weight-gradient split: aim for this many blocks in all (a few waves on current GPUs; the GPU
// is never probed), with chunks of at least kMinChunk pixels and a bounded workspace.
constexpr int64_t kTargetBlocks = 1024;
constexpr int64_t kMinChunk = 512;
constexpr int64_t kMaxChunks = 256;
constexpr int64_t kMaxWorkspace = int64_t(1) << 26;  // floats (256 MiB)

constexpr int64_t kMaxField = int64_t(1) << 28;
constexpr int64_t kMaxGrid = 2147483647;  // gridDim.x

// The geometry in 32-bit ints (every field fits: tg_cuda_conv2d_fits), with per-group counts.
struct Geom {
  int n, c, h, w, o, kh, kw, oh, ow, sh, sw, ph, pw, dh, dw, groups;
  int cg, og;  // channels per group: input, output
};

struct Tiles {
  float a[kBk][kLd];  // a[k][row]
  float b[kBk][kLd];  // b[k][column]
};

// k = (hi * mid_n + mid) * lo_n + lo with mid < mid_n and lo < lo_n, moved on by a fixed
// step with one carry per digit (the step's own digits are below mid_n and lo_n).
struct Radix {
  int mid_n, lo_n, step_hi, step_mid, step_lo;
};
struct Digits {
  int hi, mid, lo;
};

__device__ __forceinline__ Radix make_radix(int mid_n, int lo_n, int step) {
  Radix r;
  r.mid_n = mid_n;
  r.lo_n = lo_n;
  r.step_lo = step % lo_n;
  const int t = step / lo_n;
  r.step_mid = t % mid_n;
  r.step_hi = t / mid_n;
  return r;
}

__device__ __forceinline__ Digits digits_of(int64_t k, const Radix& r) {
  Digits d;
  d.lo = static_cast<int>(k % r.lo_n);
  const int64_t t = k / r.lo_n;
  d.mid = static_cast<int>(t % r.mid_n);
  d.hi = static_cast<int>(t / r.mid_n);
  return d;
}

__device__ __forceinline__ void advance(Digits& d, const Radix& r) {
  d.lo += r.step_lo;
  if (d.lo >= r.lo_n) {
    d.lo -= r.lo_n;
    ++d.mid;
  }
  d.mid += r.step_mid;
  if (d.mid >= r.mid_n) {
    d.mid -= r.mid_n;
    ++d.hi;
  }
  d.hi += r.step_hi;
}

// Which output tile a block computes: blockIdx.x = (outer * row_tiles + row tile) * col_tiles
// + column tile, outer being the group (and, for the weight gradient, the chunk).
struct BlockTile {
  int64_t col0;
  int row0;
  int64_t outer;
};

__device__ __forceinline__ BlockTile block_tile(int64_t col_tiles, int row_tiles) {
  const int64_t b = blockIdx.x;
  BlockTile t;
  t.col0 = (b % col_tiles) * kBn;
  const int64_t rest = b / col_tiles;
  t.row0 = static_cast<int>(rest % row_tiles) * kBm;
  t.outer = rest / row_tiles;
  return t;
}

__device__ __forceinline__ void zero(float (&acc)[kTm][kTn]) {
#pragma unroll
  for (int i = 0; i < kTm; ++i)
#pragma unroll
    for (int j = 0; j < kTn; ++j) acc[i][j] = 0.0f;
}

// acc[i][j] += sum_kk a[kk][ty + 16 i] * b[kk][tx + 16 j] over one slice.
__device__ __forceinline__ void multiply_slice(const Tiles& t, float (&acc)[kTm][kTn], int tx, int ty) {
#pragma unroll
  for (int kk = 0; kk < kBk; ++kk) {
    float av[kTm];
    float bv[kTn];
#pragma unroll
    for (int i = 0; i < kTm; ++i) av[i] = t.a[kk][ty + i * kRowThreads];
#pragma unroll
    for (int j = 0; j < kTn; ++j) bv[j] = t.b[kk][tx + j * kColThreads];
#pragma unroll
    for (int i = 0; i < kTm; ++i)
#pragma unroll
      for (int j = 0; j < kTn; ++j) acc[i][j] = fmaf(av[i], bv[j], acc[i][j]);
  }
}

__device__ __forceinline__ bool inside(int v, int n) { return v >= 0 && v < n; }

// ---- forward: y = w @ X ---------------------------------------------------------------

__global__ void __launch_bounds__(kThreads)
conv2d_forward_v1(const float* __restrict__ x, const float* __restrict__ w, float* __restrict__ y, Geom g,
                  int64_t col_tiles, int row_tiles) {
  __shared__ Tiles tile;
  const int tid = threadIdx.x;
  const int tx = tid % kColThreads;
  const int ty = tid / kColThreads;
  const BlockTile bt = block_tile(col_tiles, row_tiles);
  const int grp = static_cast<int>(bt.outer);
  const int hw = g.h * g.w;
  const int ohw = g.oh * g.ow;
  const int64_t depth = static_cast<int64_t>(g.cg) * g.kh * g.kw;
  const int64_t pixels = static_cast<int64_t>(g.n) * ohw;

  // A = this group's weights, rows contiguous in k: the thread loads k0 + a_k of rows a_r + 16 l.
  const int a_k = tid % kBk;
  const int a_r = tid / kBk;  // < kKRows
  const float* w_rows = w + (static_cast<int64_t>(grp) * g.og + bt.row0) * depth;

  // B = X: the thread loads column b_c (one output pixel) at k0 + b_k + 4 l.
  const int b_c = tid % kBn;
  const int b_k = tid / kBn;  // < kColK
  const int64_t p = bt.col0 + b_c;
  const bool p_ok = p < pixels;
  int ih0 = 0, iw0 = 0;
  const float* x_img = x;
  if (p_ok) {
    const int64_t n = p / ohw;
    const int q = static_cast<int>(p - n * ohw);
    const int oh = q / g.ow;
    const int ow = q - oh * g.ow;
    ih0 = oh * g.sh - g.ph;
    iw0 = ow * g.sw - g.pw;
    x_img = x + (n * g.c + static_cast<int64_t>(grp) * g.cg) * hw;
  }
  const Radix kr = make_radix(g.kh, g.kw, kBk);
  Digits kd[kColPasses];  // (c, r, s) of k = k0 + b_k + 4 l
#pragma unroll
  for (int l = 0; l < kColPasses; ++l) kd[l] = digits_of(b_k + l * kColK, kr);

  float acc[kTm][kTn];
  zero(acc);
  for (int64_t k0 = 0; k0 < depth; k0 += kBk) {
    const int64_t k = k0 + a_k;
#pragma unroll
    for (int l = 0; l < kKPasses; ++l) {
      const int row = a_r + l * kKRows;
      tile.a[a_k][row] = (bt.row0 + row < g.og && k < depth) ? w_rows[row * depth + k] : 0.0f;
    }
#pragma unroll
    for (int l = 0; l < kColPasses; ++l) {
      const Digits& d = kd[l];
      const int ih = ih0 + d.mid * g.dh;
      const int iw = iw0 + d.lo * g.dw;
      const bool ok = p_ok && d.hi < g.cg && inside(ih, g.h) && inside(iw, g.w);
      tile.b[b_k + l * kColK][b_c] = ok ? x_img[static_cast<int64_t>(d.hi) * hw + ih * g.w + iw] : 0.0f;
      advance(kd[l], kr);
    }
    __syncthreads();
    multiply_slice(tile, acc, tx, ty);
    __syncthreads();  // the next slice's loads overwrite the tiles
  }

#pragma unroll
  for (int j = 0; j < kTn; ++j) {
    const int64_t col = bt.col0 + tx + j * kColThreads;
    if (col >= pixels) continue;
    const int64_t n = col / ohw;
    const int64_t q = col - n * ohw;
    float* out = y + (n * g.o + static_cast<int64_t>(grp) * g.og + bt.row0) * ohw + q;
#pragma unroll
    for (int i = 0; i < kTm; ++i) {
      const int row = ty + i * kRowThreads;
      if (bt.row0 + row < g.og) out[static_cast<int64_t>(row) * ohw] = acc[i][j];
    }
  }
}

// ---- backward input: gx = w^T @ G --------------------------------------------------------

__global__ void __launch_bounds__(kThreads)
conv2d_backward_input_v1(const float* __restrict__ gy, const float* __restrict__ w, float* __restrict__ gx,
                         Geom g, int64_t col_tiles, int row_tiles) {
  __shared__ Tiles tile;
  const int tid = threadIdx.x;
  const int tx = tid % kColThreads;
  const int ty = tid / kColThreads;
  const BlockTile bt = block_tile(col_tiles, row_tiles);
  const int grp = static_cast<int>(bt.outer);
  const int hw = g.h * g.w;
  const int ohw = g.oh * g.ow;
  const int khw = g.kh * g.kw;
  const int64_t depth = static_cast<int64_t>(g.og) * khw;
  const int64_t pixels = static_cast<int64_t>(g.n) * hw;
  const Radix kr = make_radix(g.kh, g.kw, kBk);  // k = (o, r, s)

  // A[c, (o, r, s)] = w[grp * og + o, c, r, s]: the thread loads k0 + a_k of rows (input
  // channels) a_r + 16 l, tracking (o, r, s) of its k.
  const int a_k = tid % kBk;
  const int a_r = tid / kBk;
  const float* w_grp = w + static_cast<int64_t>(grp) * g.og * g.cg * khw;
  Digits ad = digits_of(a_k, kr);

  // B = G: the thread loads column b_c (one input pixel) at k0 + b_k + 4 l.
  const int b_c = tid % kBn;
  const int b_k = tid / kBn;
  const int64_t p = bt.col0 + b_c;
  const bool p_ok = p < pixels;
  int th0 = 0, tw0 = 0;
  const float* gy_img = gy;
  if (p_ok) {
    const int64_t n = p / hw;
    const int q = static_cast<int>(p - n * hw);
    const int ih = q / g.w;
    const int iw = q - ih * g.w;
    th0 = ih + g.ph;
    tw0 = iw + g.pw;
    gy_img = gy + (n * g.o + static_cast<int64_t>(grp) * g.og) * ohw;
  }
  Digits kd[kColPasses];  // (o, r, s) of k = k0 + b_k + 4 l
#pragma unroll
  for (int l = 0; l < kColPasses; ++l) kd[l] = digits_of(b_k + l * kColK, kr);

  float acc[kTm][kTn];
  zero(acc);
  for (int64_t k0 = 0; k0 < depth; k0 += kBk) {
    const bool ak_ok = ad.hi < g.og;  // k0 + a_k < depth
    const int64_t w_off = (static_cast<int64_t>(ad.hi) * g.cg + bt.row0) * khw + ad.mid * g.kw + ad.lo;
#pragma unroll
    for (int l = 0; l < kKPasses; ++l) {
      const int row = a_r + l * kKRows;
      tile.a[a_k][row] = (ak_ok && bt.row0 + row < g.cg) ? w_grp[w_off + static_cast<int64_t>(row) * khw] : 0.0f;
    }
    advance(ad, kr);
#pragma unroll
    for (int l = 0; l < kColPasses; ++l) {
      const Digits& d = kd[l];
      const int th = th0 - d.mid * g.dh;  // = oh * sh when this (r, s) reaches an output pixel
      const int tw = tw0 - d.lo * g.dw;
      bool ok = p_ok && d.hi < g.og && th >= 0 && tw >= 0;
      int oh = 0, ow = 0;
      if (ok) {
        oh = th / g.sh;
        ow = tw / g.sw;
        ok = oh * g.sh == th && ow * g.sw == tw && oh < g.oh && ow < g.ow;
      }
      tile.b[b_k + l * kColK][b_c] = ok ? gy_img[static_cast<int64_t>(d.hi) * ohw + oh * g.ow + ow] : 0.0f;
      advance(kd[l], kr);
    }
    __syncthreads();
    multiply_slice(tile, acc, tx, ty);
    __syncthreads();
  }

#pragma unroll
  for (int j = 0; j < kTn; ++j) {
    const int64_t col = bt.col0 + tx + j * kColThreads;
    if (col >= pixels) continue;
    const int64_t n = col / hw;
    const int64_t q = col - n * hw;
    float* out = gx + (n * g.c + static_cast<int64_t>(grp) * g.cg + bt.row0) * hw + q;
#pragma unroll
    for (int i = 0; i < kTm; ++i) {
      const int row = ty + i * kRowThreads;
      if (bt.row0 + row < g.cg) out[static_cast<int64_t>(row) * hw] = acc[i][j];
    }
  }
}

// ---- backward weight: gw = gy @ X^T, over pixel chunks --------------------------------------

// Block outer index = chunk * groups + group. Chunk `chunk` sums pixels
// [chunk * chunk_len, min((chunk + 1) * chunk_len, n * oh * ow)) into out + chunk * chunk_stride.
__global__ void __launch_bounds__(kThreads)
conv2d_backward_weight_v1(const float* __restrict__ gy, const float* __restrict__ x, float* __restrict__ out,
                          Geom g, int64_t col_tiles, int row_tiles, int64_t chunk_len, int64_t chunk_stride) {
  __shared__ Tiles tile;
  const int tid = threadIdx.x;
  const int tx = tid % kColThreads;
  const int ty = tid / kColThreads;
  const BlockTile bt = block_tile(col_tiles, row_tiles);
  const int grp = static_cast<int>(bt.outer % g.groups);
  const int64_t chunk = bt.outer / g.groups;
  const int hw = g.h * g.w;
  const int ohw = g.oh * g.ow;
  const int khw = g.kh * g.kw;
  const int64_t cols = static_cast<int64_t>(g.cg) * khw;  // gw columns j = (c, r, s)
  const int64_t pixels = static_cast<int64_t>(g.n) * ohw;
  const int64_t p0 = chunk * chunk_len;
  const int64_t p1 = p0 + chunk_len < pixels ? p0 + chunk_len : pixels;

  // Both tiles are loaded along k (the pixel): the thread reads pixel p0 + k0 + kf (tracked as
  // (n, oh, ow)) for A rows (output channels) lr + 16 l and B columns lr + 16 l.
  const int kf = tid % kBk;
  const int lr = tid / kBk;  // < kKRows
  const Radix pr = make_radix(g.oh, g.ow, kBk);
  Digits pd = digits_of(p0 + kf, pr);

  // The thread's four B columns j = (c, r, s): channel and window offsets, found once.
  int bc[kKPasses], bro[kKPasses], bso[kKPasses];
  bool bok[kKPasses];
#pragma unroll
  for (int l = 0; l < kKPasses; ++l) {
    const int64_t j = bt.col0 + lr + l * kKRows;
    bok[l] = j < cols;
    const int jj = bok[l] ? static_cast<int>(j) : 0;
    const int c = jj / khw;
    const int rs = jj - c * khw;
    const int r = rs / g.kw;
    const int s = rs - r * g.kw;
    bc[l] = c;
    bro[l] = r * g.dh - g.ph;
    bso[l] = s * g.dw - g.pw;
  }
  const int64_t gy_grp = static_cast<int64_t>(grp) * g.og + bt.row0;  // first output channel of the tile
  const int64_t x_grp = static_cast<int64_t>(grp) * g.cg;             // first input channel of the group

  float acc[kTm][kTn];
  zero(acc);
  for (int64_t k0 = p0; k0 < p1; k0 += kBk) {
    const bool pix_ok = k0 + kf < p1;
    const int64_t n = pd.hi;
    const int q = pd.mid * g.ow + pd.lo;
    const float* gy_pix = gy + (n * g.o + gy_grp) * ohw + q;
#pragma unroll
    for (int l = 0; l < kKPasses; ++l) {
      const int row = lr + l * kKRows;
      tile.a[kf][row] = (pix_ok && bt.row0 + row < g.og) ? gy_pix[static_cast<int64_t>(row) * ohw] : 0.0f;
    }
    const float* x_img = x + (n * g.c + x_grp) * hw;
    const int ih0 = pd.mid * g.sh;
    const int iw0 = pd.lo * g.sw;
#pragma unroll
    for (int l = 0; l < kKPasses; ++l) {
      const int ih = ih0 + bro[l];
      const int iw = iw0 + bso[l];
      const bool ok = pix_ok && bok[l] && inside(ih, g.h) && inside(iw, g.w);
      tile.b[kf][lr + l * kKRows] = ok ? x_img[static_cast<int64_t>(bc[l]) * hw + ih * g.w + iw] : 0.0f;
    }
    advance(pd, pr);
    __syncthreads();
    multiply_slice(tile, acc, tx, ty);
    __syncthreads();
  }

  float* out_chunk = out + chunk * chunk_stride;
#pragma unroll
  for (int i = 0; i < kTm; ++i) {
    const int row = ty + i * kRowThreads;
    if (bt.row0 + row >= g.og) continue;
    float* out_row = out_chunk + (gy_grp + row) * cols;
#pragma unroll
    for (int j = 0; j < kTn; ++j) {
      const int64_t col = bt.col0 + tx + j * kColThreads;
      if (col < cols) out_row[col] = acc[i][j];
    }
  }
}

// gw[i] = sum over chunks, in chunk order, of ws[chunk * total + i].
__global__ void sum_chunks(const float* __restrict__ ws, float* __restrict__ gw, int64_t chunks, int64_t total) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += stride) {
    float acc = 0.0f;
    for (int64_t c = 0; c < chunks; ++c) acc += ws[c * total + i];
    gw[i] = acc;
  }
}

// ---- host side ------------------------------------------------------------------------------

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// a * b <= limit, for a, b >= 0, without overflowing.
bool product_at_most(int64_t a, int64_t b, int64_t limit) { return a == 0 || b <= limit / a; }

struct WeightPlan {
  int64_t chunks, chunk_len;
};

// How the weight gradient's pixel sum is split (chunks > 1 needs the workspace).
WeightPlan weight_plan(const TgConv2dGeom& g) {
  const int64_t pixels = g.n * g.oh * g.ow;
  const int64_t og = g.o / g.groups;
  const int64_t cols = (g.c / g.groups) * g.kh * g.kw;
  const int64_t total = g.o * cols;
  if (pixels == 0 || total == 0) return {1, pixels};
  const int64_t tiles = g.groups * ceil_div(og, kBm) * ceil_div(cols, kBn);
  int64_t chunks = tiles >= kTargetBlocks ? 1 : ceil_div(kTargetBlocks, tiles);
  chunks = chunks < ceil_div(pixels, kMinChunk) ? chunks : ceil_div(pixels, kMinChunk);
  chunks = chunks < kMaxChunks ? chunks : kMaxChunks;
  chunks = chunks < kMaxWorkspace / total ? chunks : kMaxWorkspace / total;
  if (chunks <= 1) return {1, pixels};
  const int64_t chunk_len = ceil_div(ceil_div(pixels, chunks), kBk) * kBk;
  return {ceil_div(pixels, chunk_len), chunk_len};
}

// The product of `factors` (each >= 0) is at most `limit`, computed without overflowing.
bool count_at_most(std::initializer_list<int64_t> factors, int64_t limit) {
  int64_t total = 1;
  for (int64_t f : factors) {
    if (f == 0) return true;
  }
  for (int64_t f : factors) {
    if (!product_at_most(total, f, limit)) return false;
    total *= f;
  }
  return true;
}

bool fits(const TgConv2dGeom& g) {
  const int64_t fields[] = {g.n, g.c, g.h, g.w, g.o, g.kh, g.kw, g.oh, g.ow,
                            g.sh, g.sw, g.ph, g.pw, g.dh, g.dw, g.groups};
  for (int64_t v : fields) {
    if (v < 0 || v > kMaxField) return false;
  }
  if (g.sh < 1 || g.sw < 1 || g.dh < 1 || g.dw < 1 || g.groups < 1) return false;
  if (g.c % g.groups != 0 || g.o % g.groups != 0) return false;
  // The output size is the one the geometry gives, so every window offset oh * sh + r * dh
  // lies within the padded image (below 3 * 2^28).
  const int64_t span_h = g.h + 2 * g.ph - g.dh * (g.kh - 1) - 1;
  const int64_t span_w = g.w + 2 * g.pw - g.dw * (g.kw - 1) - 1;
  if (span_h < 0 || span_w < 0 || g.oh != span_h / g.sh + 1 || g.ow != span_w / g.sw + 1) return false;
  if (g.h * g.w > INT32_MAX || g.oh * g.ow > INT32_MAX || g.kh * g.kw > INT32_MAX) return false;
  const int64_t cg = g.c / g.groups;
  const int64_t og = g.o / g.groups;
  constexpr int64_t kMaxElems = int64_t(1) << 61;  // any array the bindings accept
  if (!count_at_most({g.n, g.c, g.h * g.w}, kMaxElems) || !count_at_most({g.n, g.o, g.oh * g.ow}, kMaxElems) ||
      !count_at_most({g.o, cg, g.kh * g.kw}, kMaxElems)) {
    return false;
  }
  // Blocks per launch: forward (og, n*oh*ow) tiles per group, backward input (cg, n*h*w),
  // backward weight (og, cg*kh*kw) per group and chunk.
  const int64_t fwd = ceil_div(og, kBm) * g.groups;
  const int64_t bwd = ceil_div(cg, kBm) * g.groups;
  const int64_t wgt = ceil_div(og, kBm) * g.groups * weight_plan(g).chunks;
  return product_at_most(fwd, ceil_div(g.n * g.oh * g.ow, kBn), kMaxGrid) &&
         product_at_most(bwd, ceil_div(g.n * g.h * g.w, kBn), kMaxGrid) &&
         product_at_most(wgt, ceil_div(cg * g.kh * g.kw, kBn), kMaxGrid);
}

Geom narrow(const TgConv2dGeom& g) {
  Geom d;
  d.n = static_cast<int>(g.n);
  d.c = static_cast<int>(g.c);
  d.h = static_cast<int>(g.h);
  d.w = static_cast<int>(g.w);
  d.o = static_cast<int>(g.o);
  d.kh = static_cast<int>(g.kh);
  d.kw = static_cast<int>(g.kw);
  d.oh = static_cast<int>(g.oh);
  d.ow = static_cast<int>(g.ow);
  d.sh = static_cast<int>(g.sh);
  d.sw = static_cast<int>(g.sw);
  d.ph = static_cast<int>(g.ph);
  d.pw = static_cast<int>(g.pw);
  d.dh = static_cast<int>(g.dh);
  d.dw = static_cast<int>(g.dw);
  d.groups = static_cast<int>(g.groups);
  d.cg = static_cast<int>(g.c / g.groups);
  d.og = static_cast<int>(g.o / g.groups);
  return d;
}

int zero_fill(float* p, int64_t n, cudaStream_t s) {
  return static_cast<int>(cudaMemsetAsync(p, 0, static_cast<size_t>(n) * sizeof(float), s));
}

}  // namespace

extern "C" int tg_cuda_conv2d_fits(const TgConv2dGeom* g) { return g != nullptr && fits(*g) ? 1 : 0; }

extern "C" int tg_cuda_conv2d(const float* x, const float* w, float* y, const TgConv2dGeom* gp, void* stream) {
  if (gp == nullptr || !fits(*gp)) return static_cast<int>(cudaErrorInvalidValue);
  const TgConv2dGeom& g = *gp;
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  const int64_t y_size = g.n * g.o * g.oh * g.ow;
  if (y_size == 0) return 0;
  if (g.c == 0 || g.kh == 0 || g.kw == 0) return zero_fill(y, y_size, s);  // empty sums
  const Geom d = narrow(g);
  const int64_t col_tiles = ceil_div(g.n * g.oh * g.ow, kBn);
  const int row_tiles = static_cast<int>(ceil_div(d.og, kBm));
  const int64_t blocks = col_tiles * row_tiles * g.groups;
  conv2d_forward_v1<<<static_cast<unsigned int>(blocks), kThreads, 0, s>>>(x, w, y, d, col_tiles, row_tiles);
  return static_cast<int>(cudaGetLastError());
}

extern "C" int tg_cuda_conv2d_backward_input(const float* gy, const float* w, float* gx, const TgConv2dGeom* gp,
                                             void* stream) {
  if (gp == nullptr || !fits(*gp)) return static_cast<int>(cudaErrorInvalidValue);
  const TgConv2dGeom& g = *gp;
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  const int64_t gx_size = g.n * g.c * g.h * g.w;
  if (gx_size == 0) return 0;
  if (g.o == 0 || g.kh == 0 || g.kw == 0) return zero_fill(gx, gx_size, s);
  const Geom d = narrow(g);
  const int64_t col_tiles = ceil_div(g.n * g.h * g.w, kBn);
  const int row_tiles = static_cast<int>(ceil_div(d.cg, kBm));
  const int64_t blocks = col_tiles * row_tiles * g.groups;
  conv2d_backward_input_v1<<<static_cast<unsigned int>(blocks), kThreads, 0, s>>>(gy, w, gx, d, col_tiles,
                                                                                  row_tiles);
  return static_cast<int>(cudaGetLastError());
}

extern "C" int64_t tg_cuda_conv2d_backward_weight_workspace(const TgConv2dGeom* gp) {
  if (gp == nullptr || !fits(*gp)) return 0;
  const TgConv2dGeom& g = *gp;
  const WeightPlan plan = weight_plan(g);
  return plan.chunks > 1 ? plan.chunks * g.o * (g.c / g.groups) * g.kh * g.kw : 0;
}

extern "C" int tg_cuda_conv2d_backward_weight(const float* gy, const float* x, float* gw, float* workspace,
                                              const TgConv2dGeom* gp, void* stream) {
  if (gp == nullptr || !fits(*gp)) return static_cast<int>(cudaErrorInvalidValue);
  const TgConv2dGeom& g = *gp;
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  const int64_t cols = (g.c / g.groups) * g.kh * g.kw;
  const int64_t gw_size = g.o * cols;
  if (gw_size == 0) return 0;
  const int64_t pixels = g.n * g.oh * g.ow;
  if (pixels == 0) return zero_fill(gw, gw_size, s);  // no images: the sum is empty
  const Geom d = narrow(g);
  const WeightPlan plan = workspace != nullptr ? weight_plan(g) : WeightPlan{1, pixels};
  const bool split = plan.chunks > 1;
  const int64_t col_tiles = ceil_div(cols, kBn);
  const int row_tiles = static_cast<int>(ceil_div(d.og, kBm));
  const int64_t blocks = col_tiles * row_tiles * g.groups * plan.chunks;
  conv2d_backward_weight_v1<<<static_cast<unsigned int>(blocks), kThreads, 0, s>>>(
      gy, x, split ? workspace : gw, d, col_tiles, row_tiles, plan.chunk_len, split ? gw_size : 0);
  cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess || !split) return static_cast<int>(err);
  sum_chunks<<<tg::cuda::grid_for(gw_size, 256), 256, 0, s>>>(workspace, gw, plan.chunks, gw_size);
  return static_cast<int>(cudaGetLastError());
}
