// tilegrad._cpu bindings: max and average 2-D pooling, forward and backward.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>

#include "args.h"
#include "bindings.h"
#include "tg_cpu.h"

namespace py = pybind11;
using tg::glue::Shape;
using namespace tg::cpu_glue;

namespace {

bool check_bool(const char* fn, const char* name, const py::object& obj) {
  if (!PyBool_Check(obj.ptr())) {
    throw py::type_error(std::string(fn) + ": argument '" + name + "' must be a bool, got " +
                         std::string(py::str(py::type::of(obj).attr("__name__"))));
  }
  return obj.ptr() == Py_True;
}

// Outputs along one dim of `size` cells: PyTorch's rule, where ceil mode may add a last
// window only if it starts inside the image or its left padding.
int64_t pool_out_size(const char* fn, const char* dim, int64_t size, int64_t k, int64_t s, int64_t p, int64_t d,
                      bool ceil_mode) {
  const int64_t span = size + 2 * p - d * (k - 1) - 1;
  if (span < 0) {
    throw py::value_error(std::string(fn) + ": the (dilated) kernel " + std::to_string(d * (k - 1) + 1) +
                          " is larger than the padded input " + dim + " " + std::to_string(size) + " + 2 * " +
                          std::to_string(p));
  }
  if (!ceil_mode) return span / s + 1;
  int64_t out = (span + s - 1) / s + 1;
  if ((out - 1) * s >= size + p) --out;
  return out;
}

// Max pooling needs a real cell in every window (its argmax must point into the image).
void check_windows_overlap(const char* fn, const char* dim, int64_t size, int64_t out, int64_t k, int64_t s,
                           int64_t p, int64_t d) {
  for (int64_t o = 0; o < out; ++o) {
    const int64_t start = o * s - p;
    const int64_t first = start < 0 ? (-start + d - 1) / d : 0;  // first tap at or after 0
    if (first >= k || start + first * d >= size) {
      throw py::value_error(std::string(fn) + ": window " + std::to_string(o) + " along " + dim +
                            " lies entirely in the padding (dilation skips over the input)");
    }
  }
}

// The geometry of pooling an image batch of shape xs, checked. dilation_obj is None for
// average pooling (no dilation).
tg::cpu::Pool2dGeom pool_geom(const char* fn, const Shape& xs, const py::object& kernel_obj,
                              const py::object& stride_obj, const py::object& padding_obj,
                              const py::object& dilation_obj, const py::object& ceil_obj) {
  const auto kernel = check_pair(fn, "kernel", kernel_obj, 1);
  const auto stride = check_pair(fn, "stride", stride_obj, 1);
  const auto padding = check_pair(fn, "padding", padding_obj, 0);
  const bool is_max = !dilation_obj.is_none();
  const auto dilation = is_max ? check_pair(fn, "dilation", dilation_obj, 1) : std::pair<int64_t, int64_t>{1, 1};
  const bool ceil_mode = check_bool(fn, "ceil_mode", ceil_obj);
  if (xs.size() != 4) {
    throw py::value_error(std::string(fn) + ": expected an input (N, C, H, W), got " + tg::glue::shape_str(xs));
  }
  tg::cpu::Pool2dGeom g{xs[0], xs[1], xs[2], xs[3], 0, 0, kernel.first, kernel.second, stride.first,
                        stride.second, padding.first, padding.second, dilation.first, dilation.second};
  g.oh = pool_out_size(fn, "H", g.h, g.kh, g.sh, g.ph, g.dh, ceil_mode);
  g.ow = pool_out_size(fn, "W", g.w, g.kw, g.sw, g.pw, g.dw, ceil_mode);
  if (is_max) {
    check_windows_overlap(fn, "H", g.h, g.oh, g.kh, g.sh, g.ph, g.dh);
    check_windows_overlap(fn, "W", g.w, g.ow, g.kw, g.sw, g.pw, g.dw);
  }
  return g;
}

tg::cpu::AvgPoolDivisor avg_divisor(const char* fn, const py::object& include_obj, const py::object& override_obj) {
  tg::cpu::AvgPoolDivisor d{check_bool(fn, "count_include_pad", include_obj), 0};
  if (!override_obj.is_none()) {
    d.divisor_override = check_int(fn, "divisor_override", override_obj);
    if (d.divisor_override < 1) {
      throw py::value_error(std::string(fn) + ": divisor_override must be None or >= 1, got " +
                            std::to_string(d.divisor_override));
    }
  }
  return d;
}

Shape out_shape(const tg::cpu::Pool2dGeom& g) { return Shape{g.n, g.c, g.oh, g.ow}; }

const py::dtype& int64_dtype() {
  static const py::dtype dt = py::dtype::of<int64_t>();
  return dt;
}

void max_pool2d(const py::object& x_obj, const py::object& kernel, const py::object& stride,
                const py::object& padding, const py::object& dilation, const py::object& ceil_mode,
                const py::object& y_obj, const py::object& arg_obj) {
  const char* fn = "tilegrad._cpu.max_pool2d";
  Arg x = check_array(fn, "x", x_obj, false);
  if (dilation.is_none()) throw py::type_error(std::string(fn) + ": argument 'dilation' must be a pair of ints");
  const auto g = pool_geom(fn, x.shape, kernel, stride, padding, dilation, ceil_mode);
  Arg y = check_array(fn, "y", y_obj, true);
  Arg arg = check_typed_array(fn, "arg", arg_obj, true, int64_dtype(), "int64");
  check_shape(fn, "y", y, out_shape(g));
  check_shape(fn, "arg", arg, out_shape(g));
  check_disjoint(fn, {{"y", &y}, {"arg", &arg}}, {{"x", &x}});
  const float* xp = cdata(x);
  float* yp = mdata(y);
  auto* ap = static_cast<int64_t*>(arg.arr.mutable_data());
  py::gil_scoped_release nogil;
  tg::cpu::max_pool2d(xp, yp, ap, g);
}

void max_pool2d_backward(const py::object& gy_obj, const py::object& arg_obj, const py::object& kernel,
                         const py::object& stride, const py::object& padding, const py::object& dilation,
                         const py::object& ceil_mode, const py::object& gx_obj) {
  const char* fn = "tilegrad._cpu.max_pool2d_backward";
  Arg gy = check_array(fn, "gy", gy_obj, false);
  Arg arg = check_typed_array(fn, "arg", arg_obj, false, int64_dtype(), "int64");
  Arg gx = check_array(fn, "gx", gx_obj, true);
  if (dilation.is_none()) throw py::type_error(std::string(fn) + ": argument 'dilation' must be a pair of ints");
  const auto g = pool_geom(fn, gx.shape, kernel, stride, padding, dilation, ceil_mode);
  check_shape(fn, "gy", gy, out_shape(g));
  check_shape(fn, "arg", arg, out_shape(g));
  check_disjoint(fn, {{"gx", &gx}}, {{"gy", &gy}, {"arg", &arg}});
  const float* gp = cdata(gy);
  const auto* ap = static_cast<const int64_t*>(arg.arr.data());
  float* op = mdata(gx);
  bool ok;
  {
    py::gil_scoped_release nogil;
    ok = tg::cpu::max_pool2d_backward(gp, ap, op, g);
  }
  if (!ok) {
    throw py::index_error(std::string(fn) + ": 'arg' holds an index outside the input plane [0, " +
                          std::to_string(g.h * g.w) + ")");
  }
}

void avg_pool2d(const py::object& x_obj, const py::object& kernel, const py::object& stride,
                const py::object& padding, const py::object& ceil_mode, const py::object& count_include_pad,
                const py::object& divisor_override, const py::object& y_obj) {
  const char* fn = "tilegrad._cpu.avg_pool2d";
  Arg x = check_array(fn, "x", x_obj, false);
  const auto g = pool_geom(fn, x.shape, kernel, stride, padding, py::none(), ceil_mode);
  const auto d = avg_divisor(fn, count_include_pad, divisor_override);
  Arg y = check_array(fn, "y", y_obj, true);
  check_shape(fn, "y", y, out_shape(g));
  check_disjoint(fn, {{"y", &y}}, {{"x", &x}});
  const float* xp = cdata(x);
  float* yp = mdata(y);
  py::gil_scoped_release nogil;
  tg::cpu::avg_pool2d(xp, yp, g, d);
}

void avg_pool2d_backward(const py::object& gy_obj, const py::object& kernel, const py::object& stride,
                         const py::object& padding, const py::object& ceil_mode,
                         const py::object& count_include_pad, const py::object& divisor_override,
                         const py::object& gx_obj) {
  const char* fn = "tilegrad._cpu.avg_pool2d_backward";
  Arg gy = check_array(fn, "gy", gy_obj, false);
  Arg gx = check_array(fn, "gx", gx_obj, true);
  const auto g = pool_geom(fn, gx.shape, kernel, stride, padding, py::none(), ceil_mode);
  const auto d = avg_divisor(fn, count_include_pad, divisor_override);
  check_shape(fn, "gy", gy, out_shape(g));
  check_disjoint(fn, {{"gx", &gx}}, {{"gy", &gy}});
  const float* gp = cdata(gy);
  float* op = mdata(gx);
  py::gil_scoped_release nogil;
  tg::cpu::avg_pool2d_backward(gp, op, g, d);
}

}  // namespace

void tg::cpu_glue::bind_pool(py::module_& m) {
  m.def("max_pool2d", &max_pool2d, py::arg("x"), py::arg("kernel"), py::arg("stride"), py::arg("padding"),
        py::arg("dilation"), py::arg("ceil_mode"), py::arg("y"), py::arg("arg"),
        "Max pooling of x (N, C, H, W) into y (N, C, OH, OW), with arg (int64, same shape) the flat index "
        "ih * W + iw of each maximum in its input plane; kernel, stride, padding, dilation are pairs of ints. "
        "Every window must hold a cell of the input. The outputs share memory with nothing.");
  m.def("max_pool2d_backward", &max_pool2d_backward, py::arg("gy"), py::arg("arg"), py::arg("kernel"),
        py::arg("stride"), py::arg("padding"), py::arg("dilation"), py::arg("ceil_mode"), py::arg("gx"),
        "gx (N, C, H, W) = the input gradient of max_pool2d: each gy added at its arg. Raises IndexError "
        "when an arg lies outside its plane. gx shares memory with neither input.");
  m.def("avg_pool2d", &avg_pool2d, py::arg("x"), py::arg("kernel"), py::arg("stride"), py::arg("padding"),
        py::arg("ceil_mode"), py::arg("count_include_pad"), py::arg("divisor_override"), py::arg("y"),
        "Average pooling of x (N, C, H, W) into y (N, C, OH, OW) with PyTorch's divisor rules "
        "(divisor_override None or an int >= 1). y shares no memory with x.");
  m.def("avg_pool2d_backward", &avg_pool2d_backward, py::arg("gy"), py::arg("kernel"), py::arg("stride"),
        py::arg("padding"), py::arg("ceil_mode"), py::arg("count_include_pad"), py::arg("divisor_override"),
        py::arg("gx"),
        "gx (N, C, H, W) = the input gradient of avg_pool2d for gy (N, C, OH, OW). gx shares no memory with gy.");
}
