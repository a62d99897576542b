// Shared by the pybind11 modules: shape formatting, the shape rules of each
// op (conv2d and pooling geometry included), and overlap tests. Throws pybind11
// exceptions with messages that name the function ("tilegrad._cpu.matmul: ...").
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <initializer_list>
#include <string>
#include <utility>
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

// ---- convolution and pooling geometry ------------------------------------------------

using IntPair = std::pair<int64_t, int64_t>;

// Image and window sizes, strides, paddings and dilations below 2^31 keep the output-size
// arithmetic below (products of two of them) far from int64 overflow.
inline void check_spatial_range(const char* fn, std::initializer_list<int64_t> values) {
  for (int64_t v : values) {
    if (v > INT32_MAX) {
      throw py::value_error(std::string(fn) + ": image sizes, kernel sizes, strides, paddings and dilations "
                            "must be below 2^31, got " + std::to_string(v));
    }
  }
}

// A checked 2-D convolution: input (n, c, h, w), weight (o, c / groups, kh, kw), output
// (n, o, oh, ow); stride (sh, sw), padding (ph, pw), dilation (dh, dw). The field order is
// that of tg::cpu::Conv2dGeom and of TgConv2dGeom (tg_cuda.h).
struct Conv2dDims {
  int64_t n, c, h, w, o, kh, kw, oh, ow, sh, sw, ph, pw, dh, dw, groups;
};

// xs: the input's shape, ws: the weight's; stride / dilation >= 1 and padding >= 0 are
// already checked. Throws ValueError for bad ranks, groupings, or a kernel that does not fit.
inline Conv2dDims conv2d_dims(const char* fn, const Shape& xs, const Shape& ws, IntPair stride, IntPair padding,
                              IntPair dilation, int64_t groups) {
  const std::string got = " got input " + shape_str(xs) + ", weight " + shape_str(ws);
  if (xs.size() != 4 || ws.size() != 4) {
    throw py::value_error(std::string(fn) + ": expected input (N, C, H, W) and weight (O, C / groups, KH, KW);" + got);
  }
  if (groups < 1 || xs[1] % groups != 0 || ws[0] % groups != 0 || ws[1] * groups != xs[1]) {
    throw py::value_error(std::string(fn) + ": groups=" + std::to_string(groups) +
                          " must divide C and O, with weight.shape[1] * groups == C;" + got);
  }
  check_spatial_range(fn, {xs[2], xs[3], ws[2], ws[3], stride.first, stride.second, padding.first, padding.second,
                           dilation.first, dilation.second});
  Conv2dDims g{xs[0], xs[1], xs[2], xs[3], ws[0], ws[2], ws[3], 0, 0, stride.first, stride.second,
               padding.first, padding.second, dilation.first, dilation.second, groups};
  const int64_t span_h = g.h + 2 * g.ph - g.dh * (g.kh - 1) - 1;
  const int64_t span_w = g.w + 2 * g.pw - g.dw * (g.kw - 1) - 1;
  if (span_h < 0 || span_w < 0) {
    throw py::value_error(std::string(fn) + ": the (dilated) kernel is larger than the padded input;" + got);
  }
  g.oh = span_h / g.sh + 1;
  g.ow = span_w / g.sw + 1;
  return g;
}

inline Shape conv2d_out_shape(const Conv2dDims& g) { return Shape{g.n, g.o, g.oh, g.ow}; }

// Python's floor division (the pooling sizes below may divide negative spans).
inline int64_t floor_div(int64_t a, int64_t b) {
  const int64_t q = a / b;
  return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

// Output size of one pooled dim, as the reference kernels' conv_out_size: with ceil_mode the
// last window may hang over the padding, but must start inside the input or its left padding.
inline int64_t pool_out_size(int64_t size, int64_t k, int64_t stride, int64_t padding, int64_t dilation,
                             bool ceil_mode) {
  const int64_t span = size + 2 * padding - dilation * (k - 1) - 1;
  if (!ceil_mode) return floor_div(span, stride) + 1;
  int64_t out = -floor_div(-span, stride) + 1;
  if ((out - 1) * stride >= size + padding) --out;
  return out;
}

// A checked 2-D pooling: input (n, c, h, w), output (n, c, oh, ow), window (kh, kw) with
// stride, padding and dilation (avg pooling: dilation 1).
struct Pool2dDims {
  int64_t n, c, h, w, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw;
};

// kernel / stride / dilation >= 1 and padding >= 0 are already checked.
inline Pool2dDims pool2d_dims(const char* fn, const Shape& xs, IntPair kernel, IntPair stride, IntPair padding,
                              IntPair dilation, bool ceil_mode) {
  if (xs.size() != 4) {
    throw py::value_error(std::string(fn) + ": expected input (N, C, H, W), got " + shape_str(xs));
  }
  check_spatial_range(fn, {xs[2], xs[3], kernel.first, kernel.second, stride.first, stride.second, padding.first,
                           padding.second, dilation.first, dilation.second});
  Pool2dDims g{xs[0], xs[1], xs[2], xs[3], 0, 0, kernel.first, kernel.second, stride.first, stride.second,
               padding.first, padding.second, dilation.first, dilation.second};
  g.oh = pool_out_size(g.h, g.kh, g.sh, g.ph, g.dh, ceil_mode);
  g.ow = pool_out_size(g.w, g.kw, g.sw, g.pw, g.dw, ceil_mode);
  if (g.oh < 1 || g.ow < 1) {
    throw py::value_error(std::string(fn) + ": the (dilated) kernel is larger than the padded input; got input " +
                          shape_str(xs) + ", kernel (" + std::to_string(g.kh) + ", " + std::to_string(g.kw) + ")");
  }
  return g;
}

inline Shape pool2d_out_shape(const Pool2dDims& g) { return Shape{g.n, g.c, g.oh, g.ow}; }

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

// ---- scalar arguments (shared by both modules) ------------------------------------------

inline std::string type_name(const py::handle& obj) {
  return py::str(py::type::of(obj).attr("__name__"));
}

// Python int (or an object with __index__, e.g. numpy.int64), but not bool.
inline bool as_pylong(const py::handle& obj, py::object* out) {
  if (PyBool_Check(obj.ptr())) return false;
  PyObject* idx = PyNumber_Index(obj.ptr());
  if (idx == nullptr) {
    PyErr_Clear();
    return false;
  }
  *out = py::reinterpret_steal<py::object>(idx);
  return true;
}

// An int that fits int64 into *out; false for anything else (overflow included).
inline bool to_int64(const py::handle& obj, int64_t* out) {
  py::object v;
  if (!as_pylong(obj, &v)) return false;
  int overflow = 0;
  long long x = PyLong_AsLongLongAndOverflow(v.ptr(), &overflow);
  if (overflow != 0 || (x == -1 && PyErr_Occurred())) {
    PyErr_Clear();
    return false;
  }
  *out = x;
  return true;
}

// Arrays (NumPy or CUDA, which may have __index__ / __float__) are never scalars here.
inline bool is_array(const py::handle& obj) {
  return py::isinstance<py::array>(obj) || py::hasattr(obj, "__cuda_array_interface__");
}

inline int64_t check_int(const char* fn, const char* name, const py::object& obj) {
  int64_t v = 0;
  if (PyBool_Check(obj.ptr()) || is_array(obj) || !to_int64(obj, &v)) {
    throw py::type_error(std::string(fn) + ": argument '" + name + "' must be an int (fitting int64), got " +
                         type_name(obj));
  }
  return v;
}

inline double check_real(const char* fn, const char* name, const py::object& obj) {
  PyObject* o = obj.ptr();
  const bool number = !is_array(obj) && !PyComplex_Check(o) &&
                      (PyFloat_Check(o) || PyIndex_Check(o) || PyObject_HasAttrString(o, "__float__"));
  if (PyBool_Check(o) || !number) {
    throw py::type_error(std::string(fn) + ": argument '" + name + "' must be a real number, got " +
                         type_name(obj));
  }
  return py::float_(obj).cast<double>();
}

inline bool check_bool(const char* fn, const char* name, const py::object& obj) {
  if (!PyBool_Check(obj.ptr())) {
    throw py::type_error(std::string(fn) + ": argument '" + name + "' must be a bool, got " + type_name(obj));
  }
  return obj.ptr() == Py_True;
}

// A (tuple or list) pair of ints, each >= min: stride, padding, dilation, kernel size.
inline std::pair<int64_t, int64_t> check_pair(const char* fn, const char* name, const py::object& obj, int64_t min) {
  if (!(py::isinstance<py::tuple>(obj) || py::isinstance<py::list>(obj)) || py::len(obj) != 2) {
    throw py::type_error(std::string(fn) + ": argument '" + name + "' must be a pair of ints, got " +
                         std::string(py::repr(obj)));
  }
  auto seq = py::reinterpret_borrow<py::sequence>(obj);
  const int64_t a = check_int(fn, name, seq[0]);
  const int64_t b = check_int(fn, name, seq[1]);
  if (a < min || b < min) {
    throw py::value_error(std::string(fn) + ": argument '" + name + "' must be >= " + std::to_string(min) +
                          ", got (" + std::to_string(a) + ", " + std::to_string(b) + ")");
  }
  return {a, b};
}

}  // namespace glue
}  // namespace tg

