// tilegrad._cpu bindings: conv2d forward and both backwards.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>
#include <utility>
#include <vector>

#include "args.h"
#include "bindings.h"
#include "tg_cpu.h"

namespace py = pybind11;
using tg::glue::Shape;
using namespace tg::cpu_glue;

namespace {

// The geometry of a convolution of an image batch of shape xs with weight ws, checked
// (the shape rules are tg::glue::conv2d_dims, shared with tilegrad._cuda).
tg::cpu::Conv2dGeom conv_geom(const char* fn, const Shape& xs, const Shape& ws, const py::object& stride_obj,
                              const py::object& padding_obj, const py::object& dilation_obj,
                              const py::object& groups_obj) {
  const auto stride = check_pair(fn, "stride", stride_obj, 1);
  const auto padding = check_pair(fn, "padding", padding_obj, 0);
  const auto dilation = check_pair(fn, "dilation", dilation_obj, 1);
  const int64_t groups = check_int(fn, "groups", groups_obj);
  const auto d = tg::glue::conv2d_dims(fn, xs, ws, stride, padding, dilation, groups);
  return tg::cpu::Conv2dGeom{d.n, d.c, d.h, d.w, d.o, d.kh, d.kw, d.oh, d.ow, d.sh, d.sw, d.ph, d.pw,
                             d.dh, d.dw, d.groups};
}

Shape conv_out_shape(const tg::cpu::Conv2dGeom& g) { return Shape{g.n, g.o, g.oh, g.ow}; }

void conv2d(const py::object& x_obj, const py::object& w_obj, const py::object& stride_obj,
            const py::object& padding_obj, const py::object& dilation_obj, const py::object& groups_obj,
            const py::object& out_obj) {
  const char* fn = "tilegrad._cpu.conv2d";
  Arg x = check_array(fn, "x", x_obj, false);
  Arg w = check_array(fn, "w", w_obj, false);
  const auto g = conv_geom(fn, x.shape, w.shape, stride_obj, padding_obj, dilation_obj, groups_obj);
  Arg out = check_array(fn, "out", out_obj, true);
  check_shape(fn, "out", out, conv_out_shape(g));
  check_disjoint(fn, {{"out", &out}}, {{"x", &x}, {"w", &w}});
  const float* xp = cdata(x);
  const float* wp = cdata(w);
  float* op = mdata(out);
  py::gil_scoped_release nogil;
  tg::cpu::conv2d(xp, wp, op, g);
}

void conv2d_backward_input(const py::object& gy_obj, const py::object& w_obj, const py::object& stride_obj,
                           const py::object& padding_obj, const py::object& dilation_obj,
                           const py::object& groups_obj, const py::object& gx_obj) {
  const char* fn = "tilegrad._cpu.conv2d_backward_input";
  Arg gy = check_array(fn, "gy", gy_obj, false);
  Arg w = check_array(fn, "w", w_obj, false);
  Arg gx = check_array(fn, "gx", gx_obj, true);
  const auto g = conv_geom(fn, gx.shape, w.shape, stride_obj, padding_obj, dilation_obj, groups_obj);
  check_shape(fn, "gy", gy, conv_out_shape(g));
  check_disjoint(fn, {{"gx", &gx}}, {{"gy", &gy}, {"w", &w}});
  const float* gp = cdata(gy);
  const float* wp = cdata(w);
  float* op = mdata(gx);
  py::gil_scoped_release nogil;
  tg::cpu::conv2d_backward_input(gp, wp, op, g);
}

void conv2d_backward_weight(const py::object& gy_obj, const py::object& x_obj, const py::object& stride_obj,
                            const py::object& padding_obj, const py::object& dilation_obj,
                            const py::object& groups_obj, const py::object& gw_obj) {
  const char* fn = "tilegrad._cpu.conv2d_backward_weight";
  Arg gy = check_array(fn, "gy", gy_obj, false);
  Arg x = check_array(fn, "x", x_obj, false);
  Arg gw = check_array(fn, "gw", gw_obj, true);
  const auto g = conv_geom(fn, x.shape, gw.shape, stride_obj, padding_obj, dilation_obj, groups_obj);
  check_shape(fn, "gy", gy, conv_out_shape(g));
  check_disjoint(fn, {{"gw", &gw}}, {{"gy", &gy}, {"x", &x}});
  const float* gp = cdata(gy);
  const float* xp = cdata(x);
  float* op = mdata(gw);
  py::gil_scoped_release nogil;
  tg::cpu::conv2d_backward_weight(gp, xp, op, g);
}

}  // namespace

void tg::cpu_glue::bind_conv(py::module_& m) {
  m.def("conv2d", &conv2d, py::arg("x"), py::arg("w"), py::arg("stride"), py::arg("padding"),
        py::arg("dilation"), py::arg("groups"), py::arg("out"),
        "Cross-correlation of x (N, C, H, W) with w (O, C / groups, KH, KW) into out (N, O, OH, OW); "
        "stride, padding, dilation are pairs of ints. out shares memory with neither input.");
  m.def("conv2d_backward_input", &conv2d_backward_input, py::arg("gy"), py::arg("w"), py::arg("stride"),
        py::arg("padding"), py::arg("dilation"), py::arg("groups"), py::arg("gx"),
        "gx (N, C, H, W) = the input gradient of conv2d for gy (N, O, OH, OW) and w (O, C / groups, KH, KW). "
        "gx shares memory with neither input.");
  m.def("conv2d_backward_weight", &conv2d_backward_weight, py::arg("gy"), py::arg("x"), py::arg("stride"),
        py::arg("padding"), py::arg("dilation"), py::arg("groups"), py::arg("gw"),
        "gw (O, C / groups, KH, KW) = the weight gradient of conv2d for gy (N, O, OH, OW) and x (N, C, H, W), "
        "summed over the batch. gw shares memory with neither input.");
}
