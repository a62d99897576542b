// tilegrad._cpu bindings: softmax / log_softmax, activations, layer norm.
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

// ---- softmax / log_softmax ------------------------------------------------------------

void softmax_impl(const char* fn, bool log, const py::object& x_obj, const py::object& dim_obj,
                  const py::object& out_obj) {
  Arg x = check_array(fn, "x", x_obj, false);
  const int64_t dim = check_int(fn, "dim", dim_obj);
  Arg out = check_array(fn, "out", out_obj, true);
  tg::glue::check_same_shapes(fn, {"x", "out"}, {x.shape, out.shape});
  const auto d = tg::glue::softmax_dims(fn, x.shape, dim);
  const float* xp = cdata(x);
  float* op = mdata(out);
  tg::glue::check_inplace_ok(fn, "x", xp, op, x.size * 4);
  py::gil_scoped_release nogil;
  tg::cpu::softmax(xp, op, d.outer, d.n, d.inner, log);
}

void softmax_backward_impl(const char* fn, bool log, const py::object& y_obj, const py::object& gy_obj,
                           const py::object& dim_obj, const py::object& out_obj) {
  Arg y = check_array(fn, "y", y_obj, false);
  Arg gy = check_array(fn, "gy", gy_obj, false);
  const int64_t dim = check_int(fn, "dim", dim_obj);
  Arg out = check_array(fn, "out", out_obj, true);
  tg::glue::check_same_shapes(fn, {"y", "gy", "out"}, {y.shape, gy.shape, out.shape});
  const auto d = tg::glue::softmax_dims(fn, y.shape, dim);
  const float* yp = cdata(y);
  const float* gp = cdata(gy);
  float* op = mdata(out);
  tg::glue::check_inplace_ok(fn, "y", yp, op, y.size * 4);
  tg::glue::check_inplace_ok(fn, "gy", gp, op, y.size * 4);
  py::gil_scoped_release nogil;
  tg::cpu::softmax_backward(yp, gp, op, d.outer, d.n, d.inner, log);
}

// ---- activations ----------------------------------------------------------------------

void activation_impl(const char* fn, tg::cpu::Act act, float param, const py::object& x_obj,
                     const py::object& out_obj) {
  Arg x = check_array(fn, "x", x_obj, false);
  Arg out = check_array(fn, "out", out_obj, true);
  tg::glue::check_same_shapes(fn, {"x", "out"}, {x.shape, out.shape});
  const float* xp = cdata(x);
  float* op = mdata(out);
  tg::glue::check_inplace_ok(fn, "x", xp, op, x.size * 4);
  py::gil_scoped_release nogil;
  tg::cpu::activation(act, xp, op, x.size, param);
}

void activation_backward_impl(const char* fn, tg::cpu::Act act, float param, const char* a_name,
                              const py::object& a_obj, const py::object& gy_obj,
                              const py::object& out_obj) {
  Arg a = check_array(fn, a_name, a_obj, false);
  Arg gy = check_array(fn, "gy", gy_obj, false);
  Arg out = check_array(fn, "out", out_obj, true);
  tg::glue::check_same_shapes(fn, {a_name, "gy", "out"}, {a.shape, gy.shape, out.shape});
  const float* ap = cdata(a);
  const float* gp = cdata(gy);
  float* op = mdata(out);
  tg::glue::check_inplace_ok(fn, a_name, ap, op, a.size * 4);
  tg::glue::check_inplace_ok(fn, "gy", gp, op, a.size * 4);
  py::gil_scoped_release nogil;
  tg::cpu::activation_backward(act, ap, gp, op, a.size, param);
}

tg::cpu::Act gelu_kind(const char* fn, const py::object& approximate) {
  if (!py::isinstance<py::str>(approximate)) {
    throw py::type_error(std::string(fn) + ": argument 'approximate' must be a str, got " +
                         std::string(py::str(py::type::of(approximate).attr("__name__"))));
  }
  const std::string a = approximate.cast<std::string>();
  if (a == "none") return tg::cpu::Act::gelu;
  if (a == "tanh") return tg::cpu::Act::gelu_tanh;
  throw py::value_error(std::string(fn) + ": approximate must be 'none' or 'tanh', got '" + a + "'");
}

// ---- layer norm -----------------------------------------------------------------------

// weight / bias: None or a float32 array of the normalised shape.
const float* optional_param(const char* fn, const char* name, const py::object& obj,
                            const tg::glue::Shape& want, std::vector<Arg>* keep) {
  if (obj.is_none()) return nullptr;
  keep->push_back(check_array(fn, name, obj, false));
  const Arg& a = keep->back();
  if (a.shape != want) {
    throw py::value_error(std::string(fn) + ": '" + name + "' must have the normalised shape " +
                          tg::glue::shape_str(want) + ", got " + tg::glue::shape_str(a.shape));
  }
  return cdata(a);
}

void layer_norm(const py::object& x_obj, const py::object& w_obj, const py::object& b_obj,
                const py::object& n_dims_obj, const py::object& eps_obj, const py::object& y_obj,
                const py::object& mean_obj, const py::object& rstd_obj) {
  const char* fn = "tilegrad._cpu.layer_norm";
  Arg x = check_array(fn, "x", x_obj, false);
  const auto d = tg::glue::norm_dims(fn, x.shape, check_int(fn, "n_dims", n_dims_obj));
  const float eps = check_float(fn, "eps", eps_obj);
  std::vector<Arg> params;
  params.reserve(2);
  const float* wp = optional_param(fn, "weight", w_obj, d.param_shape, &params);
  const float* bp = optional_param(fn, "bias", b_obj, d.param_shape, &params);
  Arg y = check_array(fn, "y", y_obj, true);
  Arg mean = check_array(fn, "mean", mean_obj, true);
  Arg rstd = check_array(fn, "rstd", rstd_obj, true);
  check_shape(fn, "y", y, x.shape);
  check_shape(fn, "mean", mean, d.stat_shape);
  check_shape(fn, "rstd", rstd, d.stat_shape);
  std::vector<std::pair<const char*, const Arg*>> ins{{"x", &x}};
  for (size_t i = 0; i < params.size(); ++i) ins.push_back({wp && i == 0 ? "weight" : "bias", &params[i]});
  check_disjoint(fn, {{"y", &y}, {"mean", &mean}, {"rstd", &rstd}}, ins);
  const float* xp = cdata(x);
  float* yp = mdata(y);
  float* mp = mdata(mean);
  float* rp = mdata(rstd);
  py::gil_scoped_release nogil;
  tg::cpu::layer_norm(xp, wp, bp, yp, mp, rp, d.rows, d.n, eps);
}

void layer_norm_backward(const py::object& x_obj, const py::object& w_obj, const py::object& mean_obj,
                         const py::object& rstd_obj, const py::object& gy_obj,
                         const py::object& n_dims_obj, const py::object& gx_obj,
                         const py::object& gw_obj, const py::object& gb_obj) {
  const char* fn = "tilegrad._cpu.layer_norm_backward";
  Arg x = check_array(fn, "x", x_obj, false);
  const auto d = tg::glue::norm_dims(fn, x.shape, check_int(fn, "n_dims", n_dims_obj));
  std::vector<Arg> params;
  params.reserve(1);
  const float* wp = optional_param(fn, "weight", w_obj, d.param_shape, &params);
  Arg mean = check_array(fn, "mean", mean_obj, false);
  Arg rstd = check_array(fn, "rstd", rstd_obj, false);
  Arg gy = check_array(fn, "gy", gy_obj, false);
  Arg gx = check_array(fn, "gx", gx_obj, true);
  Arg gw = check_array(fn, "gweight", gw_obj, true);
  Arg gb = check_array(fn, "gbias", gb_obj, true);
  check_shape(fn, "mean", mean, d.stat_shape);
  check_shape(fn, "rstd", rstd, d.stat_shape);
  check_shape(fn, "gy", gy, x.shape);
  check_shape(fn, "gx", gx, x.shape);
  check_shape(fn, "gweight", gw, d.param_shape);
  check_shape(fn, "gbias", gb, d.param_shape);
  std::vector<std::pair<const char*, const Arg*>> ins{{"x", &x}, {"mean", &mean}, {"rstd", &rstd}, {"gy", &gy}};
  if (wp != nullptr) ins.push_back({"weight", &params[0]});
  check_disjoint(fn, {{"gx", &gx}, {"gweight", &gw}, {"gbias", &gb}}, ins);
  const float* xp = cdata(x);
  const float* mp = cdata(mean);
  const float* rp = cdata(rstd);
  const float* gyp = cdata(gy);
  float* gxp = mdata(gx);
  float* gwp = mdata(gw);
  float* gbp = mdata(gb);
  py::gil_scoped_release nogil;
  tg::cpu::layer_norm_backward(xp, wp, mp, rp, gyp, gxp, gwp, gbp, d.rows, d.n);
}

}  // namespace

void tg::cpu_glue::bind_nn(py::module_& m) {
  using tg::cpu::Act;
  m.def("softmax", [](py::object x, py::object dim, py::object out) {
          softmax_impl("tilegrad._cpu.softmax", false, x, dim, out);
        }, py::arg("x"), py::arg("dim"), py::arg("out"),
        "out[...] = softmax(x) along dim. float32, C-contiguous, out of x's shape; out may be x.");
  m.def("log_softmax", [](py::object x, py::object dim, py::object out) {
          softmax_impl("tilegrad._cpu.log_softmax", true, x, dim, out);
        }, py::arg("x"), py::arg("dim"), py::arg("out"),
        "out[...] = log_softmax(x) along dim. float32, C-contiguous, out of x's shape; out may be x.");
  m.def("softmax_backward", [](py::object y, py::object gy, py::object dim, py::object out) {
          softmax_backward_impl("tilegrad._cpu.softmax_backward", false, y, gy, dim, out);
        }, py::arg("y"), py::arg("gy"), py::arg("dim"), py::arg("out"),
        "out = y * (gy - sum(gy * y, dim)) for y = softmax(x, dim).");
  m.def("log_softmax_backward", [](py::object y, py::object gy, py::object dim, py::object out) {
          softmax_backward_impl("tilegrad._cpu.log_softmax_backward", true, y, gy, dim, out);
        }, py::arg("y"), py::arg("gy"), py::arg("dim"), py::arg("out"),
        "out = gy - exp(y) * sum(gy, dim) for y = log_softmax(x, dim).");

  m.def("sigmoid", [](py::object x, py::object out) {
          activation_impl("tilegrad._cpu.sigmoid", Act::sigmoid, 0.0f, x, out);
        }, py::arg("x"), py::arg("out"), "out[...] = 1 / (1 + exp(-x)); out may be x.");
  m.def("tanh", [](py::object x, py::object out) {
          activation_impl("tilegrad._cpu.tanh", Act::tanh, 0.0f, x, out);
        }, py::arg("x"), py::arg("out"), "out[...] = tanh(x); out may be x.");
  m.def("silu", [](py::object x, py::object out) {
          activation_impl("tilegrad._cpu.silu", Act::silu, 0.0f, x, out);
        }, py::arg("x"), py::arg("out"), "out[...] = x * sigmoid(x); out may be x.");
  m.def("gelu", [](py::object x, py::object approximate, py::object out) {
          const char* fn = "tilegrad._cpu.gelu";
          const Act act = gelu_kind(fn, approximate);
          activation_impl(fn, act, 0.0f, x, out);
        }, py::arg("x"), py::arg("approximate"), py::arg("out"),
        "out[...] = x * Phi(x) (approximate='none') or PyTorch's tanh form ('tanh'); out may be x.");
  m.def("leaky_relu", [](py::object x, py::object slope, py::object out) {
          const char* fn = "tilegrad._cpu.leaky_relu";
          activation_impl(fn, Act::leaky_relu, check_float(fn, "slope", slope), x, out);
        }, py::arg("x"), py::arg("slope"), py::arg("out"),
        "out[...] = x where x > 0 else slope * x; out may be x.");
  m.def("sigmoid_backward", [](py::object y, py::object gy, py::object out) {
          activation_backward_impl("tilegrad._cpu.sigmoid_backward", Act::sigmoid, 0.0f, "y", y, gy, out);
        }, py::arg("y"), py::arg("gy"), py::arg("out"), "out = gy * y * (1 - y), y = sigmoid(x).");
  m.def("tanh_backward", [](py::object y, py::object gy, py::object out) {
          activation_backward_impl("tilegrad._cpu.tanh_backward", Act::tanh, 0.0f, "y", y, gy, out);
        }, py::arg("y"), py::arg("gy"), py::arg("out"), "out = gy * (1 - y * y), y = tanh(x).");
  m.def("silu_backward", [](py::object x, py::object gy, py::object out) {
          activation_backward_impl("tilegrad._cpu.silu_backward", Act::silu, 0.0f, "x", x, gy, out);
        }, py::arg("x"), py::arg("gy"), py::arg("out"), "out = gy * d silu(x) / dx.");
  m.def("gelu_backward", [](py::object x, py::object gy, py::object approximate, py::object out) {
          const char* fn = "tilegrad._cpu.gelu_backward";
          const Act act = gelu_kind(fn, approximate);
          activation_backward_impl(fn, act, 0.0f, "x", x, gy, out);
        }, py::arg("x"), py::arg("gy"), py::arg("approximate"), py::arg("out"),
        "out = gy * d gelu(x) / dx, exact or tanh form.");
  m.def("leaky_relu_backward", [](py::object x, py::object gy, py::object slope, py::object out) {
          const char* fn = "tilegrad._cpu.leaky_relu_backward";
          activation_backward_impl(fn, Act::leaky_relu, check_float(fn, "slope", slope), "x", x, gy, out);
        }, py::arg("x"), py::arg("gy"), py::arg("slope"), py::arg("out"),
        "out = gy where x > 0 else slope * gy.");

  m.def("layer_norm", &layer_norm, py::arg("x"), py::arg("weight"), py::arg("bias"), py::arg("n_dims"),
        py::arg("eps"), py::arg("y"), py::arg("mean"), py::arg("rstd"),
        "Layer norm over x's last n_dims dims: y, and mean, rstd shaped x.shape[:-n_dims] + (1,) * n_dims. "
        "weight, bias: None or of the normalised shape. Outputs share memory with nothing.");
  m.def("layer_norm_backward", &layer_norm_backward, py::arg("x"), py::arg("weight"), py::arg("mean"),
        py::arg("rstd"), py::arg("gy"), py::arg("n_dims"), py::arg("gx"), py::arg("gweight"),
        py::arg("gbias"),
        "gx of x's shape; gweight, gbias of the normalised shape (sums of gy * xhat and gy over the "
        "leading dims, also when weight is None). Outputs share memory with nothing.");
}
