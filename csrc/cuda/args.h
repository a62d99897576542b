// Argument checks shared by the tilegrad._cuda binding files. Arrays are any
// objects with a __cuda_array_interface__ (CuPy, PyTorch, ...): the dict is
// parsed and every argument checked before any CUDA call. Messages name the function.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "common.h"
#include "tg_cuda.h"

namespace tg {
namespace cuda_glue {

namespace py = pybind11;
using tg::glue::Shape;
using tg::glue::as_pylong;
using tg::glue::check_bool;
using tg::glue::check_int;
using tg::glue::check_pair;
using tg::glue::check_real;
using tg::glue::to_int64;
using tg::glue::type_name;

struct DevArray {
  Shape shape;
  int64_t size;
  uintptr_t ptr;
  int64_t itemsize = 4;  // bytes per element (4 for the float32 arrays of check_array)
  int dtype = 0;         // index of the matching entry of check_typed_array's `allowed` list
  int64_t nbytes() const { return size * itemsize; }
};

// An element type an argument may have: its __cuda_array_interface__ typestr, the name
// used in messages, and its size in bytes.
struct ArrayType {
  const char* typestr;
  const char* name;
  int64_t itemsize;
};
using DType = ArrayType;
inline constexpr ArrayType kFloat32{"<f4", "float32", 4};
inline constexpr ArrayType kInt64{"<i8", "int64", 8};  // pooling's indices, cross-entropy's targets
inline constexpr ArrayType kFloat16{"<f2", "float16", 2};
// bfloat16 arrives as raw bits: CUDA array producers without a bfloat16 type (CuPy) hand it
// over as uint16 (or int16, e.g. a PyTorch bfloat16 tensor viewed as int16).
inline constexpr ArrayType kBFloat16U{"<u2", "bfloat16 (as uint16)", 2};
inline constexpr ArrayType kBFloat16I{"<i2", "bfloat16 (as int16)", 2};

// Reads a non-negative int into a uintptr_t; false when it is not one.
inline bool to_uintptr(const py::handle& obj, uintptr_t* out) {
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

// Parses obj.__cuda_array_interface__: one of the `allowed` element types (DevArray::dtype
// says which), C-contiguous, no mask, non-null data unless empty, aligned to its element
// size, writeable when it is an output.
inline DevArray check_typed_array(const char* fn, const char* name, const py::object& obj, bool is_out,
                                  const std::vector<ArrayType>& allowed) {
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
  int dtype = -1;
  std::string wanted;
  for (size_t i = 0; i < allowed.size(); ++i) {
    if (ts == allowed[i].typestr) dtype = static_cast<int>(i);
    wanted += std::string(i == 0 ? "" : i + 1 == allowed.size() ? " or " : ", ") + allowed[i].name +
              " (typestr '" + allowed[i].typestr + "')";
  }
  if (dtype < 0) {
    throw py::type_error(where + " must have dtype " + wanted + ", got typestr '" + ts + "'");
  }

  DevArray d{{}, 1, 0};
  d.dtype = dtype;
  d.itemsize = allowed[dtype].itemsize;
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
    if (v != 0 && d.size > (INT64_MAX / d.itemsize) / v) {
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
  if (d.ptr % d.itemsize != 0) {
    throw py::value_error(where + " data pointer is not aligned to " + std::to_string(d.itemsize) + " bytes");
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
    int64_t expect = d.itemsize;
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

// A float32 array (the element type of most kernels).
// One element type (float32 unless given).
inline DevArray check_array(const char* fn, const char* name, const py::object& obj, bool is_out,
                            const DType& dtype = kFloat32) {
  return check_typed_array(fn, name, obj, is_out, {dtype});
}

inline void* to_stream(const char* fn, const py::object& stream) {
  uintptr_t s = 0;
  if (!to_uintptr(stream, &s)) {
    throw py::type_error(std::string(fn) + ": stream must be a non-negative int (a cudaStream_t "
                         "handle, 0 for the legacy default stream), got " + std::string(py::repr(stream)));
  }
  return reinterpret_cast<void*>(s);
}

inline void check_cuda(const char* fn, int err) {
  if (err != 0) {
    throw std::runtime_error(std::string(fn) + ": CUDA error " + tg_cuda_error_name(err) + ": " +
                             tg_cuda_error_string(err));
  }
}

inline const float* cptr(const DevArray& d) { return reinterpret_cast<const float*>(d.ptr); }
inline float* mptr(const DevArray& d) { return reinterpret_cast<float*>(d.ptr); }
// The same for kernels that take several element types (the dtype is passed beside).
inline const void* cvoid(const DevArray& d) { return reinterpret_cast<const void*>(d.ptr); }
inline void* mvoid(const DevArray& d) { return reinterpret_cast<void*>(d.ptr); }

// ---- scalar arguments (check_int, check_real, check_bool, check_pair: csrc/common.h) ----------

inline void check_shape(const char* fn, const char* name, const DevArray& a, const Shape& want) {
  if (a.shape != want) {
    throw py::value_error(std::string(fn) + ": '" + name + "' must have shape " + tg::glue::shape_str(want) +
                          ", got " + tg::glue::shape_str(a.shape));
  }
}

// The TG_EPILOGUE_* code (tg_cuda.h) of a fused epilogue's activation name: 'none' or 'relu'.
inline int activation_code(const char* fn, const py::object& obj) {
  if (!py::isinstance<py::str>(obj)) {
    throw py::type_error(std::string(fn) + ": argument 'activation' must be a str, got " + type_name(obj));
  }
  const std::string a = obj.cast<std::string>();
  if (a == "none") return TG_EPILOGUE_NONE;
  if (a == "relu") return TG_EPILOGUE_RELU;
  throw py::value_error(std::string(fn) + ": activation must be 'none' or 'relu', got '" + a + "'");
}

// Outputs of the ops that do not work in place overlap no input and no other output.
inline void check_disjoint(const char* fn, const std::vector<std::pair<const char*, const DevArray*>>& outs,
                    const std::vector<std::pair<const char*, const DevArray*>>& ins) {
  for (size_t i = 0; i < outs.size(); ++i) {
    const DevArray& o = *outs[i].second;
    auto clash = [&](const char* other, const DevArray& a) {
      if (tg::glue::overlaps(cptr(o), o.size * o.itemsize, cptr(a), a.size * a.itemsize)) {
        throw py::value_error(std::string(fn) + ": out '" + outs[i].first + "' must not share memory with '" +
                              other + "'");
      }
    };
    for (const auto& in : ins) clash(in.first, *in.second);
    for (size_t j = i + 1; j < outs.size(); ++j) clash(outs[j].first, *outs[j].second);
  }
}

}  // namespace cuda_glue
}  // namespace tg
