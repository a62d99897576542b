// Argument checks shared by the tilegrad._cpu binding files: every array is an
// aligned, C-contiguous numpy array, float32 unless a binding says otherwise
// (writeable when it is an output), and scalars are real Python ints / numbers. Messages name the function.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>
#include <utility>
#include <vector>

#include "common.h"

namespace tg {
namespace cpu_glue {

namespace py = pybind11;
using tg::glue::Shape;

inline constexpr int kNpyAligned = 0x0100;  // NPY_ARRAY_ALIGNED

struct Arg {
  py::array arr;
  Shape shape;
  int64_t size;
};

// Checks that obj is an aligned, C-contiguous numpy array of dtype `want` (named
// `want_name` in messages), and writeable when it is an output.
inline Arg check_typed_array(const char* fn, const char* name, const py::object& obj, bool is_out,
                             const py::dtype& want, const char* want_name) {
  const std::string where = std::string(fn) + ": argument '" + name + "'";
  if (!py::isinstance<py::array>(obj)) {
    throw py::type_error(where + " must be a numpy.ndarray of " + want_name + ", got " +
                         std::string(py::str(py::type::of(obj).attr("__name__"))));
  }
  auto arr = py::reinterpret_borrow<py::array>(obj);
  if (!arr.dtype().equal(want)) {
    throw py::type_error(where + " must have dtype " + want_name + ", got " + std::string(py::str(arr.dtype())));
  }
  if (!(arr.flags() & py::array::c_style)) {
    throw py::value_error(where + " must be C-contiguous (use numpy.ascontiguousarray)");
  }
  if (!(arr.flags() & kNpyAligned)) {
    throw py::value_error(where + " must be aligned to " + std::to_string(want.itemsize()) + " bytes");
  }
  if (is_out && !arr.writeable()) {
    throw py::value_error(where + " must be writeable");
  }
  Arg a{arr, Shape(arr.shape(), arr.shape() + arr.ndim()), 0};
  a.size = static_cast<int64_t>(arr.size());
  return a;
}

// Checks that obj is an aligned, C-contiguous float32 numpy array (and
// writeable when it is an output).
inline Arg check_array(const char* fn, const char* name, const py::object& obj, bool is_out) {
  return check_typed_array(fn, name, obj, is_out, py::dtype::of<float>(), "float32");
}

inline const float* cdata(const Arg& a) { return static_cast<const float*>(a.arr.data()); }
inline float* mdata(Arg& a) { return static_cast<float*>(a.arr.mutable_data()); }

// ---- scalar arguments -----------------------------------------------------------------

inline int64_t check_int(const char* fn, const char* name, const py::object& obj) {
  // (ndarrays have __index__ too, but are not scalars)
  if (PyBool_Check(obj.ptr()) || !PyIndex_Check(obj.ptr()) || py::isinstance<py::array>(obj)) {
    throw py::type_error(std::string(fn) + ": argument '" + name + "' must be an int, got " +
                         std::string(py::str(py::type::of(obj).attr("__name__"))));
  }
  return py::int_(obj).cast<int64_t>();
}

inline bool check_bool(const char* fn, const char* name, const py::object& obj) {
  if (!PyBool_Check(obj.ptr())) {
    throw py::type_error(std::string(fn) + ": argument '" + name + "' must be a bool, got " +
                         std::string(py::str(py::type::of(obj).attr("__name__"))));
  }
  return obj.ptr() == Py_True;
}

inline double check_double(const char* fn, const char* name, const py::object& obj) {
  PyObject* o = obj.ptr();
  const bool number = !py::isinstance<py::array>(o) && !PyComplex_Check(o) &&
                      (PyFloat_Check(o) || PyIndex_Check(o) || PyObject_HasAttrString(o, "__float__"));
  if (PyBool_Check(o) || !number) {
    throw py::type_error(std::string(fn) + ": argument '" + name + "' must be a real number, got " +
                         std::string(py::str(py::type::of(obj).attr("__name__"))));
  }
  return py::float_(obj).cast<double>();
}

inline float check_float(const char* fn, const char* name, const py::object& obj) {
  return static_cast<float>(check_double(fn, name, obj));
}

// Outputs of the ops that do not work in place overlap no input and no other output.
inline void check_disjoint(const char* fn, const std::vector<std::pair<const char*, const Arg*>>& outs,
                    const std::vector<std::pair<const char*, const Arg*>>& ins) {
  for (size_t i = 0; i < outs.size(); ++i) {
    const Arg& o = *outs[i].second;
    auto clash = [&](const char* other, const Arg& a) {
      if (tg::glue::overlaps(o.arr.data(), o.arr.nbytes(), a.arr.data(), a.arr.nbytes())) {
        throw py::value_error(std::string(fn) + ": out '" + outs[i].first +
                              "' must not share memory with '" + other + "'");
      }
    };
    for (const auto& in : ins) clash(in.first, *in.second);
    for (size_t j = i + 1; j < outs.size(); ++j) clash(outs[j].first, *outs[j].second);
  }
}

inline void check_shape(const char* fn, const char* name, const Arg& a, const tg::glue::Shape& want) {
  if (a.shape != want) {
    throw py::value_error(std::string(fn) + ": '" + name + "' must have shape " +
                          tg::glue::shape_str(want) + ", got " + tg::glue::shape_str(a.shape));
  }
}


inline std::pair<int64_t, int64_t> check_pair(const char* fn, const char* name, const py::object& obj,
                                       int64_t min) {
  if (!(py::isinstance<py::tuple>(obj) || py::isinstance<py::list>(obj)) || py::len(obj) != 2) {
    throw py::type_error(std::string(fn) + ": argument '" + name + "' must be a pair of ints, got " +
                         std::string(py::str(py::repr(obj))));
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

}  // namespace cpu_glue
}  // namespace tg
