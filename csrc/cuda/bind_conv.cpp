// tilegrad._cuda bindings: conv2d forward and both backwards (kernels/cuda/conv2d*.cu). The
// arguments, checks and output-shape rules are those of tilegrad._cpu's conv2d (the geometry
// is tg::glue::conv2d_dims), plus a stream, a kernel version, for the forward a fused bias +
// activation epilogue and, for the weight gradient, an optional workspace.
#include <pybind11/pybind11.h>

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

// The checked geometry of convolving an image batch of shape xs with a weight of shape ws.
TgConv2dGeom conv_geom(const char* fn, const Shape& xs, const Shape& ws, const py::object& stride_obj,
                       const py::object& padding_obj, const py::object& dilation_obj, const py::object& groups_obj) {
  const auto stride = check_pair(fn, "stride", stride_obj, 1);
  const auto padding = check_pair(fn, "padding", padding_obj, 0);
  const auto dilation = check_pair(fn, "dilation", dilation_obj, 1);
  const int64_t groups = check_int(fn, "groups", groups_obj);
  const auto d = tg::glue::conv2d_dims(fn, xs, ws, stride, padding, dilation, groups);
  const TgConv2dGeom g{d.n, d.c, d.h, d.w, d.o, d.kh, d.kw, d.oh, d.ow, d.sh, d.sw, d.ph, d.pw, d.dh, d.dw, d.groups};
  if (!tg_cuda_conv2d_fits(&g)) {
    throw py::value_error(std::string(fn) + ": sizes too large for the CUDA kernels (each size, stride, padding "
                          "and dilation at most 2^28, an image plane below 2^31 elements); got input " +
                          tg::glue::shape_str(xs) + ", weight " + tg::glue::shape_str(ws));
  }
  return g;
}

Shape out_shape(const TgConv2dGeom& g) { return Shape{g.n, g.o, g.oh, g.ow}; }

// The conv kernel versions: 1 the float32 SIMT implicit GEMM (conv2d.cu, conv2d_weight.cu),
// 2 the TF32 tensor-core one (conv2d_tf32*.cu: inputs rounded to TF32, opt-in only); 0 picks
// the default, v1 (v2 rounds its inputs).
constexpr int kConvDefault = 1;
constexpr int kConvVersions = 2;

// true for the TF32 kernels.
bool check_version(const char* fn, const py::object& version_obj) {
  int64_t version = check_int(fn, "version", version_obj);
  if (version < 0 || version > kConvVersions) {
    throw py::value_error(std::string(fn) + ": version must be 0 (the default kernel), 1 (float32) or 2 (TF32 "
                          "tensor cores), got " + std::to_string(version));
  }
  return (version == 0 ? kConvDefault : version) == 2;
}

void conv2d(const py::object& x_obj, const py::object& w_obj, const py::object& stride_obj,
            const py::object& padding_obj, const py::object& dilation_obj, const py::object& groups_obj,
            const py::object& out_obj, const py::object& stream_obj, const py::object& version_obj,
            const py::object& bias_obj, const py::object& act_obj) {
  const char* fn = "tilegrad._cuda.conv2d";
  DevArray x = check_array(fn, "x", x_obj, false);
  DevArray w = check_array(fn, "w", w_obj, false);
  const TgConv2dGeom g = conv_geom(fn, x.shape, w.shape, stride_obj, padding_obj, dilation_obj, groups_obj);
  DevArray out = check_array(fn, "out", out_obj, true);
  check_shape(fn, "out", out, out_shape(g));
  std::vector<DevArray> bias;  // empty: no bias
  if (!bias_obj.is_none()) {
    bias.push_back(check_array(fn, "bias", bias_obj, false));
    check_shape(fn, "bias", bias[0], Shape{g.o});
  }
  const int act = activation_code(fn, act_obj);
  std::vector<std::pair<const char*, const DevArray*>> ins{{"x", &x}, {"w", &w}};
  if (!bias.empty()) ins.push_back({"bias", &bias[0]});
  check_disjoint(fn, {{"out", &out}}, ins);
  void* stream = to_stream(fn, stream_obj);
  const bool tf32 = check_version(fn, version_obj);
  if (out.size == 0) return;
  const float* bias_ptr = bias.empty() ? nullptr : cptr(bias[0]);
  int err;
  {
    py::gil_scoped_release nogil;
    err = (tf32 ? tg_cuda_conv2d_tf32 : tg_cuda_conv2d)(cptr(x), cptr(w), bias_ptr, mptr(out), &g, act, stream);
  }
  check_cuda(fn, err);
}

void conv2d_backward_input(const py::object& gy_obj, const py::object& w_obj, const py::object& stride_obj,
                           const py::object& padding_obj, const py::object& dilation_obj,
                           const py::object& groups_obj, const py::object& gx_obj, const py::object& stream_obj,
                           const py::object& version_obj) {
  const char* fn = "tilegrad._cuda.conv2d_backward_input";
  DevArray gy = check_array(fn, "gy", gy_obj, false);
  DevArray w = check_array(fn, "w", w_obj, false);
  DevArray gx = check_array(fn, "gx", gx_obj, true);
  const TgConv2dGeom g = conv_geom(fn, gx.shape, w.shape, stride_obj, padding_obj, dilation_obj, groups_obj);
  check_shape(fn, "gy", gy, out_shape(g));
  check_disjoint(fn, {{"gx", &gx}}, {{"gy", &gy}, {"w", &w}});
  void* stream = to_stream(fn, stream_obj);
  const bool tf32 = check_version(fn, version_obj);
  if (gx.size == 0) return;
  int err;
  {
    py::gil_scoped_release nogil;
    err = (tf32 ? tg_cuda_conv2d_backward_input_tf32 : tg_cuda_conv2d_backward_input)(cptr(gy), cptr(w), mptr(gx),
                                                                                      &g, stream);
  }
  check_cuda(fn, err);
}

void conv2d_backward_weight(const py::object& gy_obj, const py::object& x_obj, const py::object& stride_obj,
                            const py::object& padding_obj, const py::object& dilation_obj,
                            const py::object& groups_obj, const py::object& gw_obj, const py::object& stream_obj,
                            const py::object& ws_obj, const py::object& version_obj) {
  const char* fn = "tilegrad._cuda.conv2d_backward_weight";
  DevArray gy = check_array(fn, "gy", gy_obj, false);
  DevArray x = check_array(fn, "x", x_obj, false);
  DevArray gw = check_array(fn, "gw", gw_obj, true);
  const TgConv2dGeom g = conv_geom(fn, x.shape, gw.shape, stride_obj, padding_obj, dilation_obj, groups_obj);
  check_shape(fn, "gy", gy, out_shape(g));
  const bool tf32 = check_version(fn, version_obj);
  std::vector<std::pair<const char*, const DevArray*>> outs{{"gw", &gw}};
  DevArray ws;
  float* ws_ptr = nullptr;
  if (!ws_obj.is_none()) {
    ws = check_array(fn, "workspace", ws_obj, true);
    const int64_t need = (tf32 ? tg_cuda_conv2d_backward_weight_workspace_tf32
                                : tg_cuda_conv2d_backward_weight_workspace)(&g);
    if (ws.size < need) {
      throw py::value_error(std::string(fn) + ": 'workspace' has " + std::to_string(ws.size) +
                            " elements, needs at least " + std::to_string(need) +
                            " (conv2d_backward_weight_workspace(x_shape, w_shape, ..., version=" +
                            std::to_string(tf32 ? 2 : 1) + "))");
    }
    outs.push_back({"workspace", &ws});
    ws_ptr = ws.size > 0 ? mptr(ws) : nullptr;
  }
  check_disjoint(fn, outs, {{"gy", &gy}, {"x", &x}});
  void* stream = to_stream(fn, stream_obj);
  if (gw.size == 0) return;
  int err;
  {
    py::gil_scoped_release nogil;
    // An empty batch still launches: gw becomes zeros.
    err = (tf32 ? tg_cuda_conv2d_backward_weight_tf32 : tg_cuda_conv2d_backward_weight)(cptr(gy), cptr(x), mptr(gw),
                                                                                       ws_ptr, &g, stream);
  }
  check_cuda(fn, err);
}

// A shape given as a tuple or list of non-negative ints.
Shape check_shape_arg(const char* fn, const char* name, const py::object& obj) {
  if (!(py::isinstance<py::tuple>(obj) || py::isinstance<py::list>(obj))) {
    throw py::type_error(std::string(fn) + ": argument '" + name + "' must be a tuple of ints, got " + type_name(obj));
  }
  Shape s;
  for (const py::handle& item : obj) {
    const int64_t v = check_int(fn, name, py::reinterpret_borrow<py::object>(item));
    if (v < 0) {
      throw py::value_error(std::string(fn) + ": argument '" + name + "' has a negative dimension, got " +
                            std::string(py::repr(obj)));
    }
    s.push_back(v);
  }
  return s;
}

int64_t conv2d_backward_weight_workspace(const py::object& x_shape, const py::object& w_shape,
                                         const py::object& stride_obj, const py::object& padding_obj,
                                         const py::object& dilation_obj, const py::object& groups_obj,
                                         const py::object& version_obj) {
  const char* fn = "tilegrad._cuda.conv2d_backward_weight_workspace";
  const Shape xs = check_shape_arg(fn, "x_shape", x_shape);
  const Shape ws = check_shape_arg(fn, "w_shape", w_shape);
  const TgConv2dGeom g = conv_geom(fn, xs, ws, stride_obj, padding_obj, dilation_obj, groups_obj);
  const bool tf32 = check_version(fn, version_obj);
  return (tf32 ? tg_cuda_conv2d_backward_weight_workspace_tf32 : tg_cuda_conv2d_backward_weight_workspace)(&g);
}

}  // namespace

void tg::cuda_glue::bind_conv(py::module_& m) {
  m.def("conv2d", &conv2d, py::arg("x"), py::arg("w"), py::arg("stride"), py::arg("padding"), py::arg("dilation"),
        py::arg("groups"), py::arg("out"), py::arg("stream") = 0, py::kw_only(), py::arg("version") = 0,
        py::arg("bias") = py::none(), py::arg("activation") = "none",
        "out = activation(cross-correlation of x (N, C, H, W) with w (O, C / groups, KH, KW) + bias) into out "
        "(N, O, OH, OW) on the GPU; stride, padding, dilation are pairs of ints. bias: None or float32 (O,), one "
        "per output channel; activation: 'none' or 'relu' (both applied as out is stored). float32, "
        "C-contiguous; out shares memory with no input. version: 0 the default kernel (1), 1 the float32 one, 2 "
        "the TF32 tensor-core one (inputs rounded to TF32: about 1e-3 relative error; opt-in only).");
  m.def("conv2d_backward_input", &conv2d_backward_input, py::arg("gy"), py::arg("w"), py::arg("stride"),
        py::arg("padding"), py::arg("dilation"), py::arg("groups"), py::arg("gx"), py::arg("stream") = 0,
        py::kw_only(), py::arg("version") = 0,
        "gx (N, C, H, W) = the input gradient of conv2d for gy (N, O, OH, OW) and w (O, C / groups, KH, KW). "
        "gx shares memory with no input. version: as conv2d's.");
  m.def("conv2d_backward_weight", &conv2d_backward_weight, py::arg("gy"), py::arg("x"), py::arg("stride"),
        py::arg("padding"), py::arg("dilation"), py::arg("groups"), py::arg("gw"), py::arg("stream") = 0,
        py::kw_only(), py::arg("workspace") = py::none(), py::arg("version") = 0,
        "gw (O, C / groups, KH, KW) = the weight gradient of conv2d for gy (N, O, OH, OW) and x (N, C, H, W), "
        "summed over the batch in a fixed order. workspace: None, or a float32 CUDA array of at least "
        "conv2d_backward_weight_workspace(..., version=version) elements, which lets more blocks share the sum. "
        "gw and workspace share memory with nothing. version: as conv2d's (each version splits the sum its "
        "own way; both are deterministic).");
  m.def("conv2d_backward_weight_workspace", &conv2d_backward_weight_workspace, py::arg("x_shape"),
        py::arg("w_shape"), py::arg("stride"), py::arg("padding"), py::arg("dilation"), py::arg("groups"),
        py::kw_only(), py::arg("version") = 0,
        "float32 elements of scratch conv2d_backward_weight (of that kernel version) can use for this geometry "
        "(0: it needs none).");
}
