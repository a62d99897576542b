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
using tg::glue::check_bool;
using tg::glue::check_int;
using tg::glue::check_pair;
using tg::glue::check_real;

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

// ---- scalar arguments (check_int, check_real, check_bool, check_pair: csrc/common.h) ----------

inline float check_float(const char* fn, const char* name, const py::object& obj) {
  return static_cast<float>(check_real(fn, name, obj));
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

}  // namespace cpu_glue
}  // namespace tg
