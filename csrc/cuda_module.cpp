// tilegrad._cuda: pybind11 bindings of kernels/cuda.
//
// Compiled by the host C++ compiler alone: it talks to the CUDA objects only
// through the plain C functions of tg_cuda.h. Arrays are any objects with a
// __cuda_array_interface__ (CuPy, PyTorch, ...); the dict is parsed and every
// argument checked here before any CUDA call, then the kernel is queued on the
// given stream without synchronising.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

#include "common.h"
#include "tg_cuda.h"

#ifndef TG_CUDA_ARCHS
#define TG_CUDA_ARCHS
#endif
#define TG_STR2(...) #__VA_ARGS__
#define TG_STR(...) TG_STR2(__VA_ARGS__)

namespace py = pybind11;
using tg::glue::Shape;

namespace {

struct DevArray {
  Shape shape;
  int64_t size;
  uintptr_t ptr;
};

std::string type_name(const py::handle& obj) {
  return py::str(py::type::of(obj).attr("__name__"));
}

// Python int (or an object with __index__, e.g. numpy.int64), but not bool.
bool as_pylong(const py::handle& obj, py::object* out) {
  if (PyBool_Check(obj.ptr())) return false;
  PyObject* idx = PyNumber_Index(obj.ptr());
  if (idx == nullptr) {
    PyErr_Clear();
    return false;
  }
  *out = py::reinterpret_steal<py::object>(idx);
  return true;
}

// Reads a non-negative int into a uintptr_t; false when it is not one.
bool to_uintptr(const py::handle& obj, uintptr_t* out) {
  py::object v;
  if (!as_pylong(obj, &v)) return false;
  unsigned long long u = PyLong_AsUnsignedLongLong(v.ptr());
  if (u == static_cast<unsigned long long>(-1) && PyErr_Occurred()) {
    PyErr_Clear();
    return false;
  }
  *out = static_cast<uintptr_t>(u);
  return true;
}

bool to_int64(const py::handle& obj, int64_t* out) {
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

// Parses obj.__cuda_array_interface__: float32 ('<f4'), C-contiguous, no mask,
// non-null data unless empty, writeable when it is an output.
DevArray check_array(const char* fn, const char* name, const py::object& obj, bool is_out) {
  const std::string where = std::string(fn) + ": argument '" + name + "'";
  if (!py::hasattr(obj, "__cuda_array_interface__")) {
    throw py::type_error(where + " must be a CUDA array (an object with __cuda_array_interface__, "
                         "e.g. a cupy.ndarray), got " + type_name(obj));
  }
  py::object cai_obj = obj.attr("__cuda_array_interface__");
  if (!py::isinstance<py::dict>(cai_obj)) {
    throw py::type_error(where + ": __cuda_array_interface__ must be a dict, got " + type_name(cai_obj));
  }
  auto cai = py::reinterpret_borrow<py::dict>(cai_obj);
  for (const char* key : {"shape", "typestr", "data"}) {
    if (!cai.contains(key)) {
      throw py::type_error(where + ": __cuda_array_interface__ has no '" + key + "' entry");
    }
  }

  py::object typestr = cai["typestr"];
  if (!py::isinstance<py::str>(typestr)) {
    throw py::type_error(where + ": __cuda_array_interface__['typestr'] must be a str, got " +
                         type_name(typestr));
  }
  const std::string ts = py::str(typestr);
  if (ts != "<f4") {
    throw py::type_error(where + " must have dtype float32 (typestr '<f4'), got typestr '" + ts + "'");
  }

  DevArray d{{}, 1, 0};
  py::object shape = cai["shape"];
  if (!py::isinstance<py::tuple>(shape)) {
    throw py::type_error(where + ": __cuda_array_interface__['shape'] must be a tuple, got " +
                         type_name(shape));
  }
  for (const py::handle& dim : py::reinterpret_borrow<py::tuple>(shape)) {
    int64_t v = 0;
    if (!to_int64(dim, &v)) {
      throw py::type_error(where + ": __cuda_array_interface__['shape'] must hold ints, got " +
                           std::string(py::repr(shape)));
    }
    if (v < 0) {
      throw py::value_error(where + ": negative dimension in shape " + std::string(py::repr(shape)));
    }
    d.shape.push_back(v);
  }
  d.size = 1;
  for (int64_t v : d.shape) {
    if (v != 0 && d.size > (INT64_MAX / 4) / v) {
      // Keep going only to find a zero dimension, which makes the array empty.
      bool empty = false;
      for (int64_t w : d.shape) empty = empty || w == 0;
      if (empty) { d.size = 0; break; }
      throw py::value_error(where + ": shape " + std::string(py::repr(shape)) + " is too large");
    }
    d.size *= v;
  }

  py::object data = cai["data"];
  if (!py::isinstance<py::tuple>(data) || py::len(data) != 2) {
    throw py::type_error(where + ": __cuda_array_interface__['data'] must be a (pointer, readonly) "
                         "tuple, got " + std::string(py::repr(data)));
  }
  auto data_t = py::reinterpret_borrow<py::tuple>(data);
  if (!to_uintptr(data_t[0], &d.ptr)) {
    throw py::type_error(where + ": __cuda_array_interface__['data'][0] must be a non-negative int "
                         "pointer, got " + std::string(py::repr(data_t[0])));
  }
  if (!py::isinstance<py::bool_>(data_t[1])) {
    throw py::type_error(where + ": __cuda_array_interface__['data'][1] (readonly) must be a bool, got " +
                         std::string(py::repr(data_t[1])));
  }
  const bool readonly = data_t[1].cast<bool>();
  if (d.ptr == 0 && d.size > 0) {
    throw py::value_error(where + " has a null data pointer but " + std::to_string(d.size) + " elements");
  }
  if (d.ptr % 4 != 0) {
    throw py::value_error(where + " data pointer is not aligned to 4 bytes");
  }
  if (is_out && readonly) {
    throw py::value_error(where + " must be writeable, but its __cuda_array_interface__ says readonly");
  }

  if (cai.contains("mask") && !cai["mask"].is_none()) {
    throw py::value_error(where + ": masked arrays are not supported");
  }

  if (cai.contains("strides") && !cai["strides"].is_none()) {
    py::object strides = cai["strides"];
    if (!py::isinstance<py::tuple>(strides) || py::len(strides) != d.shape.size()) {
      throw py::type_error(where + ": __cuda_array_interface__['strides'] must be None or a tuple "
                           "with one int per dimension, got " + std::string(py::repr(strides)));
    }
    auto st = py::reinterpret_borrow<py::tuple>(strides);
    int64_t expect = 4;
    bool contiguous = true;
    for (size_t i = d.shape.size(); i-- > 0;) {
      int64_t s = 0;
      if (!to_int64(st[i], &s)) {
        throw py::type_error(where + ": __cuda_array_interface__['strides'] must hold ints, got " +
                             std::string(py::repr(strides)));
      }
      // Dimensions of size 1 may carry any stride (as numpy's flags allow).
      if (d.shape[i] != 1 && s != expect) contiguous = false;
      expect *= d.shape[i];
    }
    if (!contiguous && d.size > 0) {
      throw py::value_error(where + " must be C-contiguous, got strides " + std::string(py::repr(strides)) +
                            " for shape " + tg::glue::shape_str(d.shape));
    }
  }
  return d;
}

void* to_stream(const char* fn, const py::object& stream) {
  uintptr_t s = 0;
  if (!to_uintptr(stream, &s)) {
    throw py::type_error(std::string(fn) + ": stream must be a non-negative int (a cudaStream_t "
                         "handle, 0 for the legacy default stream), got " + std::string(py::repr(stream)));
  }
  return reinterpret_cast<void*>(s);
}

void check_cuda(const char* fn, int err) {
  if (err != 0) {
    throw std::runtime_error(std::string(fn) + ": CUDA error " + tg_cuda_error_name(err) + ": " +
                             tg_cuda_error_string(err));
  }
}

const float* cptr(const DevArray& d) { return reinterpret_cast<const float*>(d.ptr); }
float* mptr(const DevArray& d) { return reinterpret_cast<float*>(d.ptr); }

void relu(const py::object& x_obj, const py::object& out_obj, const py::object& stream_obj) {
  const char* fn = "tilegrad._cuda.relu";
  DevArray x = check_array(fn, "x", x_obj, false);
  DevArray out = check_array(fn, "out", out_obj, true);
  tg::glue::check_same_shapes(fn, {"x", "out"}, {x.shape, out.shape});
  tg::glue::check_inplace_ok(fn, "x", cptr(x), mptr(out), x.size * 4);
  void* stream = to_stream(fn, stream_obj);
  if (x.size == 0) return;
  int err;
  {
    py::gil_scoped_release nogil;
    err = tg_cuda_relu(cptr(x), mptr(out), x.size, stream);
  }
  check_cuda(fn, err);
}

void relu_backward(const py::object& x_obj, const py::object& gy_obj, const py::object& out_obj,
                   const py::object& stream_obj) {
  const char* fn = "tilegrad._cuda.relu_backward";
  DevArray x = check_array(fn, "x", x_obj, false);
  DevArray gy = check_array(fn, "gy", gy_obj, false);
  DevArray out = check_array(fn, "out", out_obj, true);
  tg::glue::check_same_shapes(fn, {"x", "gy", "out"}, {x.shape, gy.shape, out.shape});
  tg::glue::check_inplace_ok(fn, "x", cptr(x), mptr(out), x.size * 4);
  tg::glue::check_inplace_ok(fn, "gy", cptr(gy), mptr(out), x.size * 4);
  void* stream = to_stream(fn, stream_obj);
  if (x.size == 0) return;
  int err;
  {
    py::gil_scoped_release nogil;
    err = tg_cuda_relu_backward(cptr(x), cptr(gy), mptr(out), x.size, stream);
  }
  check_cuda(fn, err);
}

// The matmul kernel versions (matmul.cu, matmul_v2.cu, matmul_tf32.cu); 0 picks the default, the
// fastest float32-exact one measured. v1 stays the default until v2 has been timed against it on a
// GPU; v3 (TF32) is never the default: it rounds the inputs.
constexpr int kMatmulDefault = 1;
int64_t check_int(const char* fn, const char* name, const py::object& obj);  // below
constexpr int kMatmulVersions = 3;

void matmul(const py::object& a_obj, const py::object& b_obj, const py::object& out_obj,
            const py::object& stream_obj, const py::object& version_obj) {
  const char* fn = "tilegrad._cuda.matmul";
  DevArray a = check_array(fn, "a", a_obj, false);
  DevArray b = check_array(fn, "b", b_obj, false);
  DevArray out = check_array(fn, "out", out_obj, true);
  const auto d = tg::glue::matmul_dims(fn, a.shape, b.shape, out.shape);
  if (tg::glue::overlaps(mptr(out), out.size * 4, cptr(a), a.size * 4) ||
      tg::glue::overlaps(mptr(out), out.size * 4, cptr(b), b.size * 4)) {
    throw py::value_error(std::string(fn) + ": out must not share memory with a or b");
  }
  void* stream = to_stream(fn, stream_obj);
  int64_t version = check_int(fn, "version", version_obj);
  if (version < 0 || version > kMatmulVersions) {
    throw py::value_error(std::string(fn) + ": version must be 0 (the default kernel) or 1.." +
                          std::to_string(kMatmulVersions) + ", got " + std::to_string(version));
  }
  if (version == 0) version = kMatmulDefault;
  if (out.size == 0) return;
  int err;
  {
    py::gil_scoped_release nogil;
    auto launch = version == 3 ? tg_cuda_matmul_tf32 : version == 2 ? tg_cuda_matmul_v2 : tg_cuda_matmul;
    err = launch(cptr(a), cptr(b), mptr(out), d.batch, d.m, d.n, d.k, stream);
  }
  check_cuda(fn, err);
}

// ---- scalar arguments -----------------------------------------------------------------

int64_t check_int(const char* fn, const char* name, const py::object& obj) {
  int64_t v = 0;
  // bools and arrays (which may have __index__) are not ints here
  if (PyBool_Check(obj.ptr()) || py::isinstance<py::array>(obj) ||
      py::hasattr(obj, "__cuda_array_interface__") || !to_int64(obj, &v)) {
    throw py::type_error(std::string(fn) + ": argument '" + name + "' must be an int, got " + type_name(obj));
  }
  return v;
}

double check_real(const char* fn, const char* name, const py::object& obj) {
  PyObject* o = obj.ptr();
  const bool array = py::isinstance<py::array>(obj) || py::hasattr(obj, "__cuda_array_interface__");
  const bool number = !array && !PyComplex_Check(o) &&
                      (PyFloat_Check(o) || PyIndex_Check(o) || PyObject_HasAttrString(o, "__float__"));
  if (PyBool_Check(o) || !number) {
    throw py::type_error(std::string(fn) + ": argument '" + name + "' must be a real number, got " +
                         type_name(obj));
  }
  return py::float_(obj).cast<double>();
}

bool check_bool(const char* fn, const char* name, const py::object& obj) {
  if (!PyBool_Check(obj.ptr())) {
    throw py::type_error(std::string(fn) + ": argument '" + name + "' must be a bool, got " + type_name(obj));
  }
  return obj.ptr() == Py_True;
}

void check_shape(const char* fn, const char* name, const DevArray& a, const Shape& want) {
  if (a.shape != want) {
    throw py::value_error(std::string(fn) + ": '" + name + "' must have shape " + tg::glue::shape_str(want) +
                          ", got " + tg::glue::shape_str(a.shape));
  }
}

// Outputs of the ops that do not work in place overlap no input and no other output.
void check_disjoint(const char* fn, const std::vector<std::pair<const char*, const DevArray*>>& outs,
                    const std::vector<std::pair<const char*, const DevArray*>>& ins) {
  for (size_t i = 0; i < outs.size(); ++i) {
    const DevArray& o = *outs[i].second;
    auto clash = [&](const char* other, const DevArray& a) {
      if (tg::glue::overlaps(cptr(o), o.size * 4, cptr(a), a.size * 4)) {
        throw py::value_error(std::string(fn) + ": out '" + outs[i].first + "' must not share memory with '" +
                              other + "'");
      }
    };
    for (const auto& in : ins) clash(in.first, *in.second);
    for (size_t j = i + 1; j < outs.size(); ++j) clash(outs[j].first, *outs[j].second);
  }
}

// ---- softmax / log_softmax ------------------------------------------------------------

void softmax_impl(const char* fn, bool log, const py::object& x_obj, const py::object& dim_obj,
                  const py::object& out_obj, const py::object& stream_obj) {
  DevArray x = check_array(fn, "x", x_obj, false);
  const int64_t dim = check_int(fn, "dim", dim_obj);
  DevArray out = check_array(fn, "out", out_obj, true);
  tg::glue::check_same_shapes(fn, {"x", "out"}, {x.shape, out.shape});
  const auto d = tg::glue::softmax_dims(fn, x.shape, dim);
  tg::glue::check_inplace_ok(fn, "x", cptr(x), mptr(out), x.size * 4);
  void* stream = to_stream(fn, stream_obj);
  if (x.size == 0) return;
  int err;
  {
    py::gil_scoped_release nogil;
    err = tg_cuda_softmax(cptr(x), mptr(out), d.outer, d.n, d.inner, log ? 1 : 0, stream);
  }
  check_cuda(fn, err);
}

void softmax_backward_impl(const char* fn, bool log, const py::object& y_obj, const py::object& gy_obj,
                           const py::object& dim_obj, const py::object& out_obj, const py::object& stream_obj) {
  DevArray y = check_array(fn, "y", y_obj, false);
  DevArray gy = check_array(fn, "gy", gy_obj, false);
  const int64_t dim = check_int(fn, "dim", dim_obj);
  DevArray out = check_array(fn, "out", out_obj, true);
  tg::glue::check_same_shapes(fn, {"y", "gy", "out"}, {y.shape, gy.shape, out.shape});
  const auto d = tg::glue::softmax_dims(fn, y.shape, dim);
  tg::glue::check_inplace_ok(fn, "y", cptr(y), mptr(out), y.size * 4);
  tg::glue::check_inplace_ok(fn, "gy", cptr(gy), mptr(out), y.size * 4);
  void* stream = to_stream(fn, stream_obj);
  if (y.size == 0) return;
  int err;
  {
    py::gil_scoped_release nogil;
    err = tg_cuda_softmax_backward(cptr(y), cptr(gy), mptr(out), d.outer, d.n, d.inner, log ? 1 : 0, stream);
  }
  check_cuda(fn, err);
}

// ---- activations ----------------------------------------------------------------------

void activation_impl(const char* fn, int act, float param, const py::object& x_obj, const py::object& out_obj,
                     const py::object& stream_obj) {
  DevArray x = check_array(fn, "x", x_obj, false);
  DevArray out = check_array(fn, "out", out_obj, true);
  tg::glue::check_same_shapes(fn, {"x", "out"}, {x.shape, out.shape});
  tg::glue::check_inplace_ok(fn, "x", cptr(x), mptr(out), x.size * 4);
  void* stream = to_stream(fn, stream_obj);
  if (x.size == 0) return;
  int err;
  {
    py::gil_scoped_release nogil;
    err = tg_cuda_activation(act, cptr(x), mptr(out), x.size, param, stream);
  }
  check_cuda(fn, err);
}

void activation_backward_impl(const char* fn, int act, float param, const char* a_name, const py::object& a_obj,
                              const py::object& gy_obj, const py::object& out_obj, const py::object& stream_obj) {
  DevArray a = check_array(fn, a_name, a_obj, false);
  DevArray gy = check_array(fn, "gy", gy_obj, false);
  DevArray out = check_array(fn, "out", out_obj, true);
  tg::glue::check_same_shapes(fn, {a_name, "gy", "out"}, {a.shape, gy.shape, out.shape});
  tg::glue::check_inplace_ok(fn, a_name, cptr(a), mptr(out), a.size * 4);
  tg::glue::check_inplace_ok(fn, "gy", cptr(gy), mptr(out), a.size * 4);
  void* stream = to_stream(fn, stream_obj);
  if (a.size == 0) return;
  int err;
  {
    py::gil_scoped_release nogil;
    err = tg_cuda_activation_backward(act, cptr(a), cptr(gy), mptr(out), a.size, param, stream);
  }
  check_cuda(fn, err);
}

int gelu_kind(const char* fn, const py::object& approximate) {
  if (!py::isinstance<py::str>(approximate)) {
    throw py::type_error(std::string(fn) + ": argument 'approximate' must be a str, got " + type_name(approximate));
  }
  const std::string a = approximate.cast<std::string>();
  if (a == "none") return TG_ACT_GELU;
  if (a == "tanh") return TG_ACT_GELU_TANH;
  throw py::value_error(std::string(fn) + ": approximate must be 'none' or 'tanh', got '" + a + "'");
}

// ---- layer norm -----------------------------------------------------------------------

// weight / bias: None or a float32 CUDA array of the normalised shape.
const DevArray* optional_param(const char* fn, const char* name, const py::object& obj, const Shape& want,
                               DevArray* slot) {
  if (obj.is_none()) return nullptr;
  *slot = check_array(fn, name, obj, false);
  if (slot->shape != want) {
    throw py::value_error(std::string(fn) + ": '" + name + "' must have the normalised shape " +
                          tg::glue::shape_str(want) + ", got " + tg::glue::shape_str(slot->shape));
  }
  return slot;
}

const float* opt_ptr(const DevArray* a) { return a == nullptr ? nullptr : cptr(*a); }

void layer_norm(const py::object& x_obj, const py::object& w_obj, const py::object& b_obj,
                const py::object& n_dims_obj, const py::object& eps_obj, const py::object& y_obj,
                const py::object& mean_obj, const py::object& rstd_obj, const py::object& stream_obj) {
  const char* fn = "tilegrad._cuda.layer_norm";
  DevArray x = check_array(fn, "x", x_obj, false);
  const auto d = tg::glue::norm_dims(fn, x.shape, check_int(fn, "n_dims", n_dims_obj));
  const float eps = static_cast<float>(check_real(fn, "eps", eps_obj));
  DevArray w_slot{}, b_slot{};
  const DevArray* w = optional_param(fn, "weight", w_obj, d.param_shape, &w_slot);
  const DevArray* b = optional_param(fn, "bias", b_obj, d.param_shape, &b_slot);
  DevArray y = check_array(fn, "y", y_obj, true);
  DevArray mean = check_array(fn, "mean", mean_obj, true);
  DevArray rstd = check_array(fn, "rstd", rstd_obj, true);
  check_shape(fn, "y", y, x.shape);
  check_shape(fn, "mean", mean, d.stat_shape);
  check_shape(fn, "rstd", rstd, d.stat_shape);
  std::vector<std::pair<const char*, const DevArray*>> ins{{"x", &x}};
  if (w != nullptr) ins.push_back({"weight", w});
  if (b != nullptr) ins.push_back({"bias", b});
  check_disjoint(fn, {{"y", &y}, {"mean", &mean}, {"rstd", &rstd}}, ins);
  void* stream = to_stream(fn, stream_obj);
  if (d.rows == 0) return;  // nothing to write (rows with n == 0 still get NaN statistics)
  int err;
  {
    py::gil_scoped_release nogil;
    err = tg_cuda_layer_norm(cptr(x), opt_ptr(w), opt_ptr(b), mptr(y), mptr(mean), mptr(rstd), d.rows, d.n, eps,
                             stream);
  }
  check_cuda(fn, err);
}

void layer_norm_backward(const py::object& x_obj, const py::object& w_obj, const py::object& mean_obj,
                         const py::object& rstd_obj, const py::object& gy_obj, const py::object& n_dims_obj,
                         const py::object& gx_obj, const py::object& gw_obj, const py::object& gb_obj,
                         const py::object& stream_obj, const py::object& ws_obj) {
  const char* fn = "tilegrad._cuda.layer_norm_backward";
  DevArray x = check_array(fn, "x", x_obj, false);
  const auto d = tg::glue::norm_dims(fn, x.shape, check_int(fn, "n_dims", n_dims_obj));
  DevArray w_slot{};
  const DevArray* w = optional_param(fn, "weight", w_obj, d.param_shape, &w_slot);
  DevArray mean = check_array(fn, "mean", mean_obj, false);
  DevArray rstd = check_array(fn, "rstd", rstd_obj, false);
  DevArray gy = check_array(fn, "gy", gy_obj, false);
  DevArray gx = check_array(fn, "gx", gx_obj, true);
  DevArray gw = check_array(fn, "gweight", gw_obj, true);
  DevArray gb = check_array(fn, "gbias", gb_obj, true);
  check_shape(fn, "mean", mean, d.stat_shape);
  check_shape(fn, "rstd", rstd, d.stat_shape);
  check_shape(fn, "gy", gy, x.shape);
  check_shape(fn, "gx", gx, x.shape);
  check_shape(fn, "gweight", gw, d.param_shape);
  check_shape(fn, "gbias", gb, d.param_shape);
  std::vector<std::pair<const char*, const DevArray*>> ins{{"x", &x}, {"mean", &mean}, {"rstd", &rstd}, {"gy", &gy}};
  if (w != nullptr) ins.push_back({"weight", w});
  std::vector<std::pair<const char*, const DevArray*>> outs{{"gx", &gx}, {"gweight", &gw}, {"gbias", &gb}};
  DevArray ws{};
  float* ws_ptr = nullptr;
  if (!ws_obj.is_none()) {
    ws = check_array(fn, "workspace", ws_obj, true);
    const int64_t need = tg_cuda_layer_norm_backward_workspace(d.rows, d.n);
    if (ws.size < need) {
      throw py::value_error(std::string(fn) + ": 'workspace' has " + std::to_string(ws.size) +
                            " elements, needs at least " + std::to_string(need) +
                            " (layer_norm_backward_workspace(rows, n))");
    }
    outs.push_back({"workspace", &ws});
    ws_ptr = mptr(ws);
  }
  check_disjoint(fn, outs, ins);
  void* stream = to_stream(fn, stream_obj);
  if (d.n == 0) return;  // every output is empty
  int err;
  {
    py::gil_scoped_release nogil;
    // rows == 0 still launches: gweight and gbias become zeros.
    err = tg_cuda_layer_norm_backward(cptr(x), opt_ptr(w), cptr(mean), cptr(rstd), cptr(gy), mptr(gx), mptr(gw),
                                      mptr(gb), ws_ptr, d.rows, d.n, stream);
  }
  check_cuda(fn, err);
}

// ---- fused optimizer steps ------------------------------------------------------------

// A list of CUDA arrays, one per parameter; element i must have shape shapes[i]
// (the parameters' shapes; empty `shapes` means: this list defines them).
struct ArrayList {
  std::string name;
  std::vector<DevArray> arrays;
  std::vector<void*> ptrs;
};

ArrayList check_array_list(const char* fn, const char* name, const py::object& obj, bool is_out,
                           const std::vector<DevArray>* like) {
  if (!py::isinstance<py::list>(obj) && !py::isinstance<py::tuple>(obj)) {
    throw py::type_error(std::string(fn) + ": argument '" + name + "' must be a list or tuple of CUDA arrays, got " +
                         type_name(obj));
  }
  auto seq = py::reinterpret_borrow<py::sequence>(obj);
  ArrayList out{name, {}, {}};
  if (like != nullptr && py::len(seq) != like->size()) {
    throw py::value_error(std::string(fn) + ": '" + name + "' has " + std::to_string(py::len(seq)) +
                          " arrays, 'params' has " + std::to_string(like->size()));
  }
  out.arrays.reserve(py::len(seq));
  size_t i = 0;
  for (const py::handle& item : seq) {
    const std::string item_name = std::string(name) + "[" + std::to_string(i) + "]";
    out.arrays.push_back(check_array(fn, item_name.c_str(), py::reinterpret_borrow<py::object>(item), is_out));
    const DevArray& a = out.arrays.back();
    if (like != nullptr && a.shape != (*like)[i].shape) {
      throw py::value_error(std::string(fn) + ": '" + item_name + "' must have the shape of 'params[" +
                            std::to_string(i) + "]' " + tg::glue::shape_str((*like)[i].shape) + ", got " +
                            tg::glue::shape_str(a.shape));
    }
    out.ptrs.push_back(reinterpret_cast<void*>(a.ptr));
    ++i;
  }
  return out;
}

// No two arrays of the whole call may share memory (sort by address, compare neighbours).
void check_lists_disjoint(const char* fn, const std::vector<const ArrayList*>& lists) {
  struct Span { uintptr_t begin, end; const ArrayList* list; size_t index; };
  std::vector<Span> spans;
  for (const ArrayList* l : lists) {
    for (size_t i = 0; i < l->arrays.size(); ++i) {
      const DevArray& a = l->arrays[i];
      if (a.size > 0) spans.push_back({a.ptr, a.ptr + static_cast<uintptr_t>(a.size) * 4, l, i});
    }
  }
  std::sort(spans.begin(), spans.end(), [](const Span& p, const Span& q) { return p.begin < q.begin; });
  size_t widest = 0;  // the span reaching furthest so far
  for (size_t k = 1; k < spans.size(); ++k) {
    if (spans[k].begin < spans[widest].end) {
      const Span& a = spans[widest];
      const Span& b = spans[k];
      throw py::value_error(std::string(fn) + ": '" + a.list->name + "[" + std::to_string(a.index) + "]' and '" +
                            b.list->name + "[" + std::to_string(b.index) + "]' share memory (every array "
                            "must be distinct)");
    }
    if (spans[k].end > spans[widest].end) widest = k;
  }
}

float* const* fptrs(const ArrayList& l) { return reinterpret_cast<float* const*>(l.ptrs.data()); }

std::vector<int64_t> sizes_of(const ArrayList& l) {
  std::vector<int64_t> n;
  for (const DevArray& a : l.arrays) n.push_back(a.size);
  return n;
}

double check_beta(const char* fn, const char* name, const py::object& obj) {
  const double b = check_real(fn, name, obj);
  if (!(b >= 0.0 && b < 1.0)) {
    throw py::value_error(std::string(fn) + ": " + name + " must be in [0, 1), got " + std::to_string(b));
  }
  return b;
}

void adamw_step(const py::object& params, const py::object& grads, const py::object& exp_avgs,
                const py::object& exp_avg_sqs, const py::object& lr_obj, const py::object& beta1_obj,
                const py::object& beta2_obj, const py::object& eps_obj, const py::object& wd_obj,
                const py::object& step_obj, const py::object& max_obj, const py::object& decoupled_obj,
                const py::object& maximize_obj, const py::object& stream_obj) {
  const char* fn = "tilegrad._cuda.adamw_step";
  ArrayList p = check_array_list(fn, "params", params, true, nullptr);
  ArrayList g = check_array_list(fn, "grads", grads, false, &p.arrays);
  ArrayList m = check_array_list(fn, "exp_avgs", exp_avgs, true, &p.arrays);
  ArrayList v = check_array_list(fn, "exp_avg_sqs", exp_avg_sqs, true, &p.arrays);
  ArrayList vmax;
  const bool amsgrad = !max_obj.is_none();
  if (amsgrad) vmax = check_array_list(fn, "max_exp_avg_sqs", max_obj, true, &p.arrays);
  std::vector<const ArrayList*> all{&p, &g, &m, &v};
  if (amsgrad) all.push_back(&vmax);
  check_lists_disjoint(fn, all);
  const double lr = check_real(fn, "lr", lr_obj);
  const double beta1 = check_beta(fn, "beta1", beta1_obj);
  const double beta2 = check_beta(fn, "beta2", beta2_obj);
  const double eps = check_real(fn, "eps", eps_obj);
  const double wd = check_real(fn, "weight_decay", wd_obj);
  const int64_t step = check_int(fn, "step", step_obj);
  if (step < 1) {
    throw py::value_error(std::string(fn) + ": step must be >= 1 (the count including this step), got " +
                          std::to_string(step));
  }
  const bool decoupled = check_bool(fn, "decoupled", decoupled_obj);
  const bool maximize = check_bool(fn, "maximize", maximize_obj);
  void* stream = to_stream(fn, stream_obj);

  TgAdamHyper h{};
  h.beta1 = static_cast<float>(beta1);
  h.beta2 = static_cast<float>(beta2);
  h.one_minus_beta1 = static_cast<float>(1.0 - beta1);
  h.one_minus_beta2 = static_cast<float>(1.0 - beta2);
  h.step_size = static_cast<float>(lr / (1.0 - std::pow(beta1, static_cast<double>(step))));
  h.bias_correction2_sqrt = static_cast<float>(std::sqrt(1.0 - std::pow(beta2, static_cast<double>(step))));
  h.eps = static_cast<float>(eps);
  h.weight_decay = static_cast<float>(wd);
  h.decay = static_cast<float>(1.0 - lr * wd);
  h.decoupled = decoupled && wd != 0.0 ? 1 : 0;
  h.maximize = maximize ? 1 : 0;
  h.lerp_small = std::abs(1.0 - beta1) < 0.5 ? 1 : 0;
  // torch's lerp_ with weight w >= 0.5 computes end - (end - a) * (1 - w); 1 - w is beta1 up to rounding
  if (!h.lerp_small) h.beta1 = static_cast<float>(1.0 - (1.0 - beta1));

  const std::vector<int64_t> n = sizes_of(p);
  TgOptTensors t{static_cast<int64_t>(n.size()), fptrs(p), fptrs(g), fptrs(m),
                 fptrs(v), amsgrad ? fptrs(vmax) : nullptr, n.data()};
  int err;
  {
    py::gil_scoped_release nogil;
    err = tg_cuda_adam_step(&t, &h, stream);
  }
  check_cuda(fn, err);
}

void sgd_step(const py::object& params, const py::object& grads, const py::object& bufs_obj,
              const py::object& lr_obj, const py::object& momentum_obj, const py::object& dampening_obj,
              const py::object& wd_obj, const py::object& nesterov_obj, const py::object& maximize_obj,
              const py::object& first_obj, const py::object& stream_obj) {
  const char* fn = "tilegrad._cuda.sgd_step";
  ArrayList p = check_array_list(fn, "params", params, true, nullptr);
  ArrayList g = check_array_list(fn, "grads", grads, false, &p.arrays);
  const double lr = check_real(fn, "lr", lr_obj);
  const double momentum = check_real(fn, "momentum", momentum_obj);
  const double dampening = check_real(fn, "dampening", dampening_obj);
  const double wd = check_real(fn, "weight_decay", wd_obj);
  const bool nesterov = check_bool(fn, "nesterov", nesterov_obj);
  const bool maximize = check_bool(fn, "maximize", maximize_obj);
  const bool first_step = check_bool(fn, "first_step", first_obj);
  ArrayList b;
  const bool has_bufs = !bufs_obj.is_none();
  if (has_bufs) b = check_array_list(fn, "momentum_buffers", bufs_obj, true, &p.arrays);
  if (has_bufs != (momentum != 0.0)) {
    throw py::value_error(std::string(fn) + ": momentum_buffers must be given exactly when momentum != 0 (got "
                          "momentum " + std::to_string(momentum) + (has_bufs ? " and buffers)" : " and None)"));
  }
  std::vector<const ArrayList*> all{&p, &g};
  if (has_bufs) all.push_back(&b);
  check_lists_disjoint(fn, all);
  void* stream = to_stream(fn, stream_obj);

  TgSgdHyper h{};
  h.lr = static_cast<float>(lr);
  h.momentum = static_cast<float>(momentum);
  h.one_minus_dampening = static_cast<float>(1.0 - dampening);
  h.weight_decay = static_cast<float>(wd);
  h.nesterov = nesterov ? 1 : 0;
  h.maximize = maximize ? 1 : 0;
  h.first_step = first_step ? 1 : 0;
  const std::vector<int64_t> n = sizes_of(p);
  TgOptTensors t{static_cast<int64_t>(n.size()), fptrs(p), fptrs(g),
                 has_bufs ? fptrs(b) : nullptr, nullptr, nullptr, n.data()};
  int err;
  {
    py::gil_scoped_release nogil;
    err = tg_cuda_sgd_step(&t, &h, stream);
  }
  check_cuda(fn, err);
}

int device_count() {
  int count = 0;
  int err = tg_cuda_device_count(&count);
  if (err != 0) {
    if (tg_cuda_is_no_device_error(err)) return 0;
    check_cuda("tilegrad._cuda.device_count", err);
  }
  return count;
}

bool is_available() {
  int count = 0;
  return tg_cuda_device_count(&count) == 0 && count > 0;
}

int checked_device(const char* fn, int device) {
  const int count = device_count();
  if (device < 0 || device >= count) {
    throw py::value_error(std::string(fn) + ": device index " + std::to_string(device) +
                          " out of range (" + std::to_string(count) + " CUDA devices)");
  }
  return device;
}

std::string device_name(int device) {
  const char* fn = "tilegrad._cuda.device_name";
  char buf[256];
  check_cuda(fn, tg_cuda_device_name(checked_device(fn, device), buf, sizeof(buf)));
  return buf;
}

py::tuple compute_capability(int device) {
  const char* fn = "tilegrad._cuda.compute_capability";
  int major = 0, minor = 0;
  check_cuda(fn, tg_cuda_compute_capability(checked_device(fn, device), &major, &minor));
  return py::make_tuple(major, minor);
}

int runtime_version() {
  int v = 0;
  check_cuda("tilegrad._cuda.runtime_version", tg_cuda_runtime_version(&v));
  return v;
}

int driver_version() {
  int v = 0;
  if (tg_cuda_driver_version(&v) != 0) return 0;
  return v;
}

std::vector<std::string> compiled_archs() {
  std::vector<std::string> out;
  std::istringstream in(TG_STR(TG_CUDA_ARCHS));
  for (std::string s; in >> s;) out.push_back(s);
  return out;
}

}  // namespace

PYBIND11_MODULE(_cuda, m) {
  m.doc() = "tilegrad CUDA kernels. Arrays are objects with __cuda_array_interface__; "
            "launches are queued on `stream` and not synchronised.";

  m.def("relu", &relu, py::arg("x"), py::arg("out"), py::arg("stream") = 0,
        "out[...] = max(x, 0) on the GPU. float32, C-contiguous, identical shapes; out may be x.");
  m.def("relu_backward", &relu_backward, py::arg("x"), py::arg("gy"), py::arg("out"),
        py::arg("stream") = 0,
        "out[...] = gy where x > 0 else 0 on the GPU. float32, C-contiguous, identical shapes.");
  m.def("matmul", &matmul, py::arg("a"), py::arg("b"), py::arg("out"), py::arg("stream") = 0, py::kw_only(),
        py::arg("version") = 0,
        "out = a @ b on the GPU for (M, K) @ (K, N) -> (M, N) or batched (B, M, K) @ (B, K, N) -> "
        "(B, M, N). float32, C-contiguous; out must not overlap a or b. version: 0 the default kernel, "
        "1 or 2 a specific float32 one (for tests and timing), 3 the TF32 tensor-core kernel (inputs "
        "rounded to TF32: about 1e-3 relative error; opt-in only).");
  m.def("softmax", [](py::object x, py::object dim, py::object out, py::object stream) {
          softmax_impl("tilegrad._cuda.softmax", false, x, dim, out, stream);
        }, py::arg("x"), py::arg("dim"), py::arg("out"), py::arg("stream") = 0,
        "out[...] = softmax(x) along dim on the GPU. float32, C-contiguous, out of x's shape; out may be x.");
  m.def("log_softmax", [](py::object x, py::object dim, py::object out, py::object stream) {
          softmax_impl("tilegrad._cuda.log_softmax", true, x, dim, out, stream);
        }, py::arg("x"), py::arg("dim"), py::arg("out"), py::arg("stream") = 0,
        "out[...] = log_softmax(x) along dim on the GPU. float32, C-contiguous; out may be x.");
  m.def("softmax_backward", [](py::object y, py::object gy, py::object dim, py::object out, py::object stream) {
          softmax_backward_impl("tilegrad._cuda.softmax_backward", false, y, gy, dim, out, stream);
        }, py::arg("y"), py::arg("gy"), py::arg("dim"), py::arg("out"), py::arg("stream") = 0,
        "out = y * (gy - sum(gy * y, dim)) for y = softmax(x, dim).");
  m.def("log_softmax_backward", [](py::object y, py::object gy, py::object dim, py::object out,
                                   py::object stream) {
          softmax_backward_impl("tilegrad._cuda.log_softmax_backward", true, y, gy, dim, out, stream);
        }, py::arg("y"), py::arg("gy"), py::arg("dim"), py::arg("out"), py::arg("stream") = 0,
        "out = gy - exp(y) * sum(gy, dim) for y = log_softmax(x, dim).");

  struct Unary { const char* name; int act; const char* doc; };
  for (const Unary& u : {Unary{"sigmoid", TG_ACT_SIGMOID, "out[...] = 1 / (1 + exp(-x)); out may be x."},
                         Unary{"tanh", TG_ACT_TANH, "out[...] = tanh(x); out may be x."},
                         Unary{"silu", TG_ACT_SILU, "out[...] = x * sigmoid(x); out may be x."}}) {
    const std::string fn = std::string("tilegrad._cuda.") + u.name;
    const int act = u.act;
    m.def(u.name, [fn, act](py::object x, py::object out, py::object stream) {
            activation_impl(fn.c_str(), act, 0.0f, x, out, stream);
          }, py::arg("x"), py::arg("out"), py::arg("stream") = 0, u.doc);
  }
  struct Backward { const char* name; int act; const char* first; const char* doc; };
  for (const Backward& u : {Backward{"sigmoid_backward", TG_ACT_SIGMOID, "y", "out = gy * y * (1 - y)."},
                            Backward{"tanh_backward", TG_ACT_TANH, "y", "out = gy * (1 - y * y)."},
                            Backward{"silu_backward", TG_ACT_SILU, "x", "out = gy * s * (1 + x * (1 - s)), s = sigmoid(x)."}}) {
    const std::string fn = std::string("tilegrad._cuda.") + u.name;
    const int act = u.act;
    const char* first = u.first;
    m.def(u.name, [fn, act, first](py::object a, py::object gy, py::object out, py::object stream) {
            activation_backward_impl(fn.c_str(), act, 0.0f, first, a, gy, out, stream);
          }, py::arg(u.first), py::arg("gy"), py::arg("out"), py::arg("stream") = 0, u.doc);
  }
  m.def("gelu", [](py::object x, py::object approximate, py::object out, py::object stream) {
          const char* fn = "tilegrad._cuda.gelu";
          activation_impl(fn, gelu_kind(fn, approximate), 0.0f, x, out, stream);
        }, py::arg("x"), py::arg("approximate"), py::arg("out"), py::arg("stream") = 0,
        "out[...] = x * Phi(x) (approximate='none') or PyTorch's tanh form ('tanh'); out may be x.");
  m.def("gelu_backward", [](py::object x, py::object gy, py::object approximate, py::object out,
                            py::object stream) {
          const char* fn = "tilegrad._cuda.gelu_backward";
          activation_backward_impl(fn, gelu_kind(fn, approximate), 0.0f, "x", x, gy, out, stream);
        }, py::arg("x"), py::arg("gy"), py::arg("approximate"), py::arg("out"), py::arg("stream") = 0,
        "out = gy * d gelu(x) / dx, exact or tanh form.");
  m.def("leaky_relu", [](py::object x, py::object slope, py::object out, py::object stream) {
          const char* fn = "tilegrad._cuda.leaky_relu";
          const float s = static_cast<float>(check_real(fn, "slope", slope));
          activation_impl(fn, TG_ACT_LEAKY_RELU, s, x, out, stream);
        }, py::arg("x"), py::arg("slope"), py::arg("out"), py::arg("stream") = 0,
        "out[...] = x where x > 0 else slope * x; out may be x.");
  m.def("leaky_relu_backward", [](py::object x, py::object gy, py::object slope, py::object out,
                                  py::object stream) {
          const char* fn = "tilegrad._cuda.leaky_relu_backward";
          const float s = static_cast<float>(check_real(fn, "slope", slope));
          activation_backward_impl(fn, TG_ACT_LEAKY_RELU, s, "x", x, gy, out, stream);
        }, py::arg("x"), py::arg("gy"), py::arg("slope"), py::arg("out"), py::arg("stream") = 0,
        "out = gy where x > 0 else slope * gy.");

  m.def("layer_norm", &layer_norm, py::arg("x"), py::arg("weight"), py::arg("bias"), py::arg("n_dims"),
        py::arg("eps"), py::arg("y"), py::arg("mean"), py::arg("rstd"), py::arg("stream") = 0,
        "Layer norm over x's last n_dims dims on the GPU: y, and mean, rstd shaped "
        "x.shape[:-n_dims] + (1,) * n_dims. weight / bias: None or the normalised shape. Outputs overlap nothing.");
  m.def("layer_norm_backward", &layer_norm_backward, py::arg("x"), py::arg("weight"), py::arg("mean"),
        py::arg("rstd"), py::arg("gy"), py::arg("n_dims"), py::arg("gx"), py::arg("gweight"), py::arg("gbias"),
        py::arg("stream") = 0, py::kw_only(), py::arg("workspace") = py::none(),
        "Gradients of layer_norm: gx (x's shape), gweight and gbias (the normalised shape, summed over rows; "
        "written even when weight is None). workspace: None, or a float32 CUDA array of at least "
        "layer_norm_backward_workspace(rows, n) elements, which lets more blocks sum gweight / gbias.");
  m.def("layer_norm_backward_workspace", [](py::object rows_obj, py::object n_obj) {
          const char* fn = "tilegrad._cuda.layer_norm_backward_workspace";
          const int64_t rows = check_int(fn, "rows", rows_obj);
          const int64_t n = check_int(fn, "n", n_obj);
          if (rows < 0 || n < 0) {
            throw py::value_error(std::string(fn) + ": rows and n must be >= 0, got " + std::to_string(rows) +
                                  ", " + std::to_string(n));
          }
          return tg_cuda_layer_norm_backward_workspace(rows, n);
        }, py::arg("rows"), py::arg("n"),
        "float32 elements of scratch layer_norm_backward can use for rows x n (0: it needs none).");

  m.def("adamw_step", &adamw_step, py::arg("params"), py::arg("grads"), py::arg("exp_avgs"),
        py::arg("exp_avg_sqs"), py::kw_only(), py::arg("lr"), py::arg("beta1"), py::arg("beta2"), py::arg("eps"),
        py::arg("weight_decay"), py::arg("step"), py::arg("max_exp_avg_sqs") = py::none(),
        py::arg("decoupled") = true, py::arg("maximize") = false, py::arg("stream") = 0,
        "One fused Adam/AdamW step (PyTorch's algorithm) over lists of float32 CUDA arrays, updated in place: "
        "params, exp_avgs, exp_avg_sqs (and max_exp_avg_sqs for amsgrad); grads are read. step is the step "
        "count including this one, shared by every tensor of the call. decoupled=True is AdamW (p *= 1 - lr * "
        "weight_decay), False is Adam (grad += weight_decay * p). No two arrays may share memory.");
  m.def("sgd_step", &sgd_step, py::arg("params"), py::arg("grads"), py::arg("momentum_buffers"), py::kw_only(),
        py::arg("lr"), py::arg("momentum"), py::arg("dampening"), py::arg("weight_decay"),
        py::arg("nesterov") = false, py::arg("maximize") = false, py::arg("first_step") = false,
        py::arg("stream") = 0,
        "One fused SGD step (PyTorch's algorithm) over lists of float32 CUDA arrays, params (and momentum "
        "buffers) updated in place. momentum_buffers: None when momentum == 0, else one per param; "
        "first_step=True initialises them to the gradient (torch's first step).");
  m.def("opt_max_tensors_per_launch", &tg_cuda_opt_max_tensors_per_launch,
        "How many tensors one launch of adamw_step / sgd_step covers (more take more launches).");
  m.def("is_available", &is_available, "True when a CUDA device can be used; never raises.");
  m.def("device_count", &device_count, "Number of CUDA devices (0 without a GPU or driver).");
  m.def("device_name", &device_name, py::arg("device") = 0);
  m.def("compute_capability", &compute_capability, py::arg("device") = 0,
        "(major, minor) of the device.");
  m.def("runtime_version", &runtime_version, "CUDA runtime version linked in, e.g. 13000.");
  m.def("driver_version", &driver_version, "CUDA version the driver supports; 0 without a driver.");
  m.def("compiled_archs", &compiled_archs, "GPU code embedded in the module, e.g. ['sm_80', ...].");
}
