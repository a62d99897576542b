// tilegrad._cuda bindings: relu (matmul: bind_matmul.cpp).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "args.h"
#include "bindings.h"
#include "tg_cuda.h"

namespace py = pybind11;
using tg::glue::Shape;
using namespace tg::cuda_glue;

namespace {

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

}  // namespace

void tg::cuda_glue::bind_core(py::module_& m) {
  m.def("relu", &relu, py::arg("x"), py::arg("out"), py::arg("stream") = 0,
        "out[...] = max(x, 0) on the GPU. float32, C-contiguous, identical shapes; out may be x.");
  m.def("relu_backward", &relu_backward, py::arg("x"), py::arg("gy"), py::arg("out"),
        py::arg("stream") = 0,
        "out[...] = gy where x > 0 else 0 on the GPU. float32, C-contiguous, identical shapes.");
}
