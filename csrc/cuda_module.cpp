// tilegrad._cuda: pybind11 bindings of kernels/cuda.
//
// Compiled by the host C++ compiler alone: it talks to the CUDA objects only
// through the plain C functions of tg_cuda.h. Arrays are any objects with a
// __cuda_array_interface__ (CuPy, PyTorch, ...); the dict is parsed and every
// argument checked here before any CUDA call, then the kernel is queued on the
// given stream without synchronising.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

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

void matmul(const py::object& a_obj, const py::object& b_obj, const py::object& out_obj,
            const py::object& stream_obj) {
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
  if (out.size == 0) return;
  int err;
  {
    py::gil_scoped_release nogil;
    err = tg_cuda_matmul(cptr(a), cptr(b), mptr(out), d.batch, d.m, d.n, d.k, stream);
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
  m.def("matmul", &matmul, py::arg("a"), py::arg("b"), py::arg("out"), py::arg("stream") = 0,
        "out = a @ b on the GPU for (M, K) @ (K, N) -> (M, N) or batched (B, M, K) @ (B, K, N) -> "
        "(B, M, N). float32, C-contiguous; out must not overlap a or b.");
  m.def("is_available", &is_available, "True when a CUDA device can be used; never raises.");
  m.def("device_count", &device_count, "Number of CUDA devices (0 without a GPU or driver).");
  m.def("device_name", &device_name, py::arg("device") = 0);
  m.def("compute_capability", &compute_capability, py::arg("device") = 0,
        "(major, minor) of the device.");
  m.def("runtime_version", &runtime_version, "CUDA runtime version linked in, e.g. 13000.");
  m.def("driver_version", &driver_version, "CUDA version the driver supports; 0 without a driver.");
  m.def("compiled_archs", &compiled_archs, "GPU code embedded in the module, e.g. ['sm_80', ...].");
}
