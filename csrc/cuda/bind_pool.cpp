// tilegrad._cuda bindings: max and average 2-D pooling, forward and backward
// (kernels/cuda/pool2d.cu), with the arguments of the reference kernels (kernel, stride,
// padding, dilation as pairs of ints; ceil_mode, count_include_pad as bools; divisor_override
// None or a non-zero int). The geometry is tg::glue::pool2d_dims.
#include <pybind11/pybind11.h>

#include <string>
#include <utility>

#include "args.h"
#include "bindings.h"
#include "tg_cuda.h"

namespace py = pybind11;
using tg::glue::Shape;
using namespace tg::cuda_glue;

namespace {

// The checked geometry of pooling an image batch of shape xs; no dilation_obj (average
// pooling) means dilation (1, 1).
TgPool2dGeom pool_geom(const char* fn, const Shape& xs, const py::object& kernel_obj, const py::object& stride_obj,
                       const py::object& padding_obj, const py::object* dilation_obj, const py::object& ceil_obj) {
  const auto kernel = check_pair(fn, "kernel", kernel_obj, 1);
  const auto stride = check_pair(fn, "stride", stride_obj, 1);
  const auto padding = check_pair(fn, "padding", padding_obj, 0);
  const auto dilation = dilation_obj == nullptr ? tg::glue::IntPair{1, 1} : check_pair(fn, "dilation", *dilation_obj, 1);
  const bool ceil_mode = check_bool(fn, "ceil_mode", ceil_obj);
  const auto d = tg::glue::pool2d_dims(fn, xs, kernel, stride, padding, dilation, ceil_mode);
  const TgPool2dGeom g{d.n, d.c, d.h, d.w, d.oh, d.ow, d.kh, d.kw, d.sh, d.sw, d.ph, d.pw, d.dh, d.dw};
  if (!tg_cuda_pool2d_fits(&g)) {
    throw py::value_error(std::string(fn) + ": sizes too large for the CUDA kernels (each size, stride, padding "
                          "and dilation at most 2^28, an image plane below 2^31 elements); got input " +
                          tg::glue::shape_str(xs));
  }
  return g;
}

Shape out_shape(const TgPool2dGeom& g) { return Shape{g.n, g.c, g.oh, g.ow}; }

// divisor_override: None (the window's cell count) or a non-zero int.
std::pair<bool, float> check_divisor(const char* fn, const py::object& obj) {
  if (obj.is_none()) return {false, 0.0f};
  const int64_t d = check_int(fn, "divisor_override", obj);
  if (d == 0) {
    throw py::value_error(std::string(fn) + ": divisor_override must be non-zero (or None)");
  }
  return {true, static_cast<float>(d)};
}

void max_pool2d(const py::object& x_obj, const py::object& kernel_obj, const py::object& stride_obj,
                const py::object& padding_obj, const py::object& dilation_obj, const py::object& ceil_obj,
                const py::object& out_obj, const py::object& arg_obj, const py::object& stream_obj) {
  const char* fn = "tilegrad._cuda.max_pool2d";
  DevArray x = check_array(fn, "x", x_obj, false);
  const TgPool2dGeom g = pool_geom(fn, x.shape, kernel_obj, stride_obj, padding_obj, &dilation_obj, ceil_obj);
  DevArray out = check_array(fn, "out", out_obj, true);
  DevArray arg = check_array(fn, "arg", arg_obj, true, kInt64);
  check_shape(fn, "out", out, out_shape(g));
  check_shape(fn, "arg", arg, out_shape(g));
  check_disjoint(fn, {{"out", &out}, {"arg", &arg}}, {{"x", &x}});
  void* stream = to_stream(fn, stream_obj);
  if (out.size == 0) return;
  int err;
  {
    py::gil_scoped_release nogil;
    err = tg_cuda_max_pool2d(cptr(x), mptr(out), reinterpret_cast<int64_t*>(arg.ptr), &g, stream);
  }
  check_cuda(fn, err);
}

void max_pool2d_backward(const py::object& gy_obj, const py::object& arg_obj, const py::object& kernel_obj,
                         const py::object& stride_obj, const py::object& padding_obj, const py::object& dilation_obj,
                         const py::object& ceil_obj, const py::object& gx_obj, const py::object& stream_obj) {
  const char* fn = "tilegrad._cuda.max_pool2d_backward";
  DevArray gy = check_array(fn, "gy", gy_obj, false);
  DevArray arg = check_array(fn, "arg", arg_obj, false, kInt64);
  DevArray gx = check_array(fn, "gx", gx_obj, true);
  const TgPool2dGeom g = pool_geom(fn, gx.shape, kernel_obj, stride_obj, padding_obj, &dilation_obj, ceil_obj);
  check_shape(fn, "gy", gy, out_shape(g));
  check_shape(fn, "arg", arg, out_shape(g));
  check_disjoint(fn, {{"gx", &gx}}, {{"gy", &gy}, {"arg", &arg}});
  void* stream = to_stream(fn, stream_obj);
  if (gx.size == 0) return;
  int err;
  {
    py::gil_scoped_release nogil;
    err = tg_cuda_max_pool2d_backward(cptr(gy), reinterpret_cast<const int64_t*>(arg.ptr), mptr(gx), &g, stream);
  }
  check_cuda(fn, err);
}

void avg_pool2d(const py::object& x_obj, const py::object& kernel_obj, const py::object& stride_obj,
                const py::object& padding_obj, const py::object& ceil_obj, const py::object& include_obj,
                const py::object& divisor_obj, const py::object& out_obj, const py::object& stream_obj) {
  const char* fn = "tilegrad._cuda.avg_pool2d";
  DevArray x = check_array(fn, "x", x_obj, false);
  const TgPool2dGeom g = pool_geom(fn, x.shape, kernel_obj, stride_obj, padding_obj, nullptr, ceil_obj);
  const bool include_pad = check_bool(fn, "count_include_pad", include_obj);
  const auto divisor = check_divisor(fn, divisor_obj);
  DevArray out = check_array(fn, "out", out_obj, true);
  check_shape(fn, "out", out, out_shape(g));
  check_disjoint(fn, {{"out", &out}}, {{"x", &x}});
  void* stream = to_stream(fn, stream_obj);
  if (out.size == 0) return;
  int err;
  {
    py::gil_scoped_release nogil;
    err = tg_cuda_avg_pool2d(cptr(x), mptr(out), &g, include_pad ? 1 : 0, divisor.first ? 1 : 0, divisor.second,
                             stream);
  }
  check_cuda(fn, err);
}

void avg_pool2d_backward(const py::object& gy_obj, const py::object& kernel_obj, const py::object& stride_obj,
                         const py::object& padding_obj, const py::object& ceil_obj, const py::object& include_obj,
                         const py::object& divisor_obj, const py::object& gx_obj, const py::object& stream_obj) {
  const char* fn = "tilegrad._cuda.avg_pool2d_backward";
  DevArray gy = check_array(fn, "gy", gy_obj, false);
  DevArray gx = check_array(fn, "gx", gx_obj, true);
  const TgPool2dGeom g = pool_geom(fn, gx.shape, kernel_obj, stride_obj, padding_obj, nullptr, ceil_obj);
  const bool include_pad = check_bool(fn, "count_include_pad", include_obj);
  const auto divisor = check_divisor(fn, divisor_obj);
  check_shape(fn, "gy", gy, out_shape(g));
  check_disjoint(fn, {{"gx", &gx}}, {{"gy", &gy}});
  void* stream = to_stream(fn, stream_obj);
  if (gx.size == 0) return;
  int err;
  {
    py::gil_scoped_release nogil;
    err = tg_cuda_avg_pool2d_backward(cptr(gy), mptr(gx), &g, include_pad ? 1 : 0, divisor.first ? 1 : 0,
                                      divisor.second, stream);
  }
  check_cuda(fn, err);
}

}  // namespace

void tg::cuda_glue::bind_pool(py::module_& m) {
  m.def("max_pool2d", &max_pool2d, py::arg("x"), py::arg("kernel"), py::arg("stride"), py::arg("padding"),
        py::arg("dilation"), py::arg("ceil_mode"), py::arg("out"), py::arg("arg"), py::arg("stream") = 0,
        "Max pooling of x (N, C, H, W) on the GPU: out (float32) and arg (int64, the maximum's flat index "
        "ih * W + iw in its input plane, PyTorch's return_indices), both (N, C, OH, OW). Outputs share memory with nothing.");
  m.def("max_pool2d_backward", &max_pool2d_backward, py::arg("gy"), py::arg("arg"), py::arg("kernel"),
        py::arg("stride"), py::arg("padding"), py::arg("dilation"), py::arg("ceil_mode"), py::arg("gx"),
        py::arg("stream") = 0,
        "gx (N, C, H, W) = gy routed to the cells arg names (a deterministic gather, no atomics). "
        "gx shares memory with no input.");
  m.def("avg_pool2d", &avg_pool2d, py::arg("x"), py::arg("kernel"), py::arg("stride"), py::arg("padding"),
        py::arg("ceil_mode"), py::arg("count_include_pad"), py::arg("divisor_override"), py::arg("out"),
        py::arg("stream") = 0,
        "Average pooling of x (N, C, H, W) into out (N, C, OH, OW) on the GPU; divisor_override None or a "
        "non-zero int. out shares memory with nothing.");
  m.def("avg_pool2d_backward", &avg_pool2d_backward, py::arg("gy"), py::arg("kernel"), py::arg("stride"),
        py::arg("padding"), py::arg("ceil_mode"), py::arg("count_include_pad"), py::arg("divisor_override"),
        py::arg("gx"), py::arg("stream") = 0,
        "gx (N, C, H, W) = the input gradient of avg_pool2d for gy (a deterministic gather). "
        "gx shares memory with no input.");
}
