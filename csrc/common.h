// Shared by the pybind11 modules: shape formatting, the shape rules of each
// op, and overlap tests. Throws pybind11 exceptions with messages that name
// the function ("tilegrad._cpu.matmul: ...").
#pragma once

#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>
#include <vector>

namespace tg {
namespace glue {

namespace py = pybind11;
using Shape = std::vector<int64_t>;

inline std::string shape_str(const Shape& s) {
  std::string out = "(";
  for (size_t i = 0; i < s.size(); ++i) {
    if (i) out += ", ";
    out += std::to_string(s[i]);
  }
  if (s.size() == 1) out += ",";
  return out + ")";
}

inline int64_t numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

// Elementwise ops: every argument has exactly the shape of the first.
inline void check_same_shapes(const char* fn, const std::vector<const char*>& names,
                              const std::vector<Shape>& shapes) {
  for (size_t i = 1; i < shapes.size(); ++i) {
    if (shapes[i] != shapes[0]) {
      std::string msg = std::string(fn) + ": shapes must be identical, got";
      for (size_t j = 0; j < shapes.size(); ++j) {
        msg += std::string(j ? ", " : " ") + names[j] + " " + shape_str(shapes[j]);
      }
      throw py::value_error(msg);
    }
  }
}

struct MatmulDims {
  int64_t batch, m, n, k;
};

// a (M, K) @ b (K, N) -> out (M, N), or batched (B, M, K) @ (B, K, N) -> (B, M, N).
inline MatmulDims matmul_dims(const char* fn, const Shape& a, const Shape& b, const Shape& out) {
  const std::string got = std::string(" got a ") + shape_str(a) + ", b " + shape_str(b) +
                          ", out " + shape_str(out);
  const size_t nd = a.size();
  if ((nd != 2 && nd != 3) || b.size() != nd || out.size() != nd) {
    throw py::value_error(std::string(fn) +
                          ": expected a (M, K), b (K, N), out (M, N) or batched a (B, M, K), "
                          "b (B, K, N), out (B, M, N);" + got);
  }
  const size_t o = nd - 2;
  MatmulDims d{nd == 3 ? a[0] : 1, a[o], b[o + 1], a[o + 1]};
  const bool batch_ok = nd == 2 || (b[0] == a[0] && out[0] == a[0]);
  if (!batch_ok || b[o] != d.k || out[o] != d.m || out[o + 1] != d.n) {
    throw py::value_error(std::string(fn) + ": mismatched sizes;" + got +
                          " (need a (..., M, K), b (..., K, N), out (..., M, N) with equal batch)");
  }
  return d;
}

// Softmax along `dim` of shape s, seen as (outer, n, inner) with n = s[dim].
struct SoftmaxDims {
  int64_t outer, n, inner;
};

inline SoftmaxDims softmax_dims(const char* fn, const Shape& s, int64_t dim) {
  const int64_t nd = static_cast<int64_t>(s.size());
  if (nd == 0 || dim < -nd || dim >= nd) {
    throw py::value_error(std::string(fn) + ": dim " + std::to_string(dim) +
                          " is out of range for shape " + shape_str(s) +
                          (nd == 0 ? " (a 0-d array has no dim)" : ""));
  }
  const int64_t d = dim < 0 ? dim + nd : dim;
  SoftmaxDims r{1, s[d], 1};
  for (int64_t i = 0; i < d; ++i) r.outer *= s[i];
  for (int64_t i = d + 1; i < nd; ++i) r.inner *= s[i];
  return r;
}

// Layer norm over the last n_dims dims of x: (rows, n) and the shapes of the
// per-row statistics (x's leading dims, then n_dims ones) and of weight/bias.
struct NormDims {
  int64_t rows, n;
  Shape stat_shape, param_shape;
};

inline NormDims norm_dims(const char* fn, const Shape& x, int64_t n_dims) {
  const int64_t nd = static_cast<int64_t>(x.size());
  if (n_dims < 1 || n_dims > nd) {
    throw py::value_error(std::string(fn) + ": n_dims must be in [1, x.ndim], got " +
                          std::to_string(n_dims) + " for x " + shape_str(x));
  }
  NormDims r{1, 1, Shape(x.begin(), x.end() - n_dims), Shape(x.end() - n_dims, x.end())};
  for (int64_t d : r.stat_shape) r.rows *= d;
  for (int64_t d : r.param_shape) r.n *= d;
  r.stat_shape.resize(x.size(), 1);
  return r;
}

// True when the byte ranges [p, p + pn) and [q, q + qn) share a byte.
inline bool overlaps(const void* p, int64_t pn, const void* q, int64_t qn) {
  if (pn <= 0 || qn <= 0) return false;
  const auto a = reinterpret_cast<uintptr_t>(p);
  const auto b = reinterpret_cast<uintptr_t>(q);
  return a < b + static_cast<uintptr_t>(qn) && b < a + static_cast<uintptr_t>(pn);
}

// Elementwise output may be exactly an input (in place) but not partly overlap it.
inline void check_inplace_ok(const char* fn, const char* in_name, const void* in, const void* out,
                             int64_t bytes) {
  if (in != out && overlaps(in, bytes, out, bytes)) {
    throw py::value_error(std::string(fn) + ": out partially overlaps " + in_name +
                          " (it may be the very same array, or not overlap it at all)");
  }
}

}  // namespace glue
}  // namespace tg
