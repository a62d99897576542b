// tilegrad._cpu: pybind11 bindings of kernels/cpu.
//
// Arguments are taken as plain objects and checked here (no implicit
// conversion or copy): float32 numpy arrays, C-contiguous, aligned, shapes as
// each op requires, out writeable. Kernels run with the GIL released.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "common.h"
#include "tg_cpu.h"

namespace py = pybind11;
using tg::glue::Shape;

namespace {

constexpr int kNpyAligned = 0x0100;  // NPY_ARRAY_ALIGNED

struct Arg {
  py::array arr;
  Shape shape;
  int64_t size;
};

// Checks that obj is an aligned, C-contiguous float32 numpy array (and
// writeable when it is an output).
Arg check_array(const char* fn, const char* name, const py::object& obj, bool is_out) {
  const std::string where = std::string(fn) + ": argument '" + name + "'";
  if (!py::isinstance<py::array>(obj)) {
    throw py::type_error(where + " must be a numpy.ndarray of float32, got " +
                         std::string(py::str(py::type::of(obj).attr("__name__"))));
  }
  auto arr = py::reinterpret_borrow<py::array>(obj);
  if (!arr.dtype().equal(py::dtype::of<float>())) {
    throw py::type_error(where + " must have dtype float32, got " + std::string(py::str(arr.dtype())));
  }
  if (!(arr.flags() & py::array::c_style)) {
    throw py::value_error(where + " must be C-contiguous (use numpy.ascontiguousarray)");
  }
  if (!(arr.flags() & kNpyAligned)) {
    throw py::value_error(where + " must be aligned to 4 bytes");
  }
  if (is_out && !arr.writeable()) {
    throw py::value_error(where + " must be writeable");
  }
  Arg a{arr, Shape(arr.shape(), arr.shape() + arr.ndim()), 0};
  a.size = static_cast<int64_t>(arr.size());
  return a;
}

const float* cdata(const Arg& a) { return static_cast<const float*>(a.arr.data()); }
float* mdata(Arg& a) { return static_cast<float*>(a.arr.mutable_data()); }

void relu(const py::object& x_obj, const py::object& out_obj) {
  const char* fn = "tilegrad._cpu.relu";
  Arg x = check_array(fn, "x", x_obj, false);
  Arg out = check_array(fn, "out", out_obj, true);
  tg::glue::check_same_shapes(fn, {"x", "out"}, {x.shape, out.shape});
  const float* xp = cdata(x);
  float* op = mdata(out);
  tg::glue::check_inplace_ok(fn, "x", xp, op, x.size * 4);
  py::gil_scoped_release nogil;
  tg::cpu::relu(xp, op, x.size);
}

void relu_backward(const py::object& x_obj, const py::object& gy_obj, const py::object& out_obj) {
  const char* fn = "tilegrad._cpu.relu_backward";
  Arg x = check_array(fn, "x", x_obj, false);
  Arg gy = check_array(fn, "gy", gy_obj, false);
  Arg out = check_array(fn, "out", out_obj, true);
  tg::glue::check_same_shapes(fn, {"x", "gy", "out"}, {x.shape, gy.shape, out.shape});
  const float* xp = cdata(x);
  const float* gp = cdata(gy);
  float* op = mdata(out);
  tg::glue::check_inplace_ok(fn, "x", xp, op, x.size * 4);
  tg::glue::check_inplace_ok(fn, "gy", gp, op, x.size * 4);
  py::gil_scoped_release nogil;
  tg::cpu::relu_backward(xp, gp, op, x.size);
}

void matmul(const py::object& a_obj, const py::object& b_obj, const py::object& out_obj) {
  const char* fn = "tilegrad._cpu.matmul";
  Arg a = check_array(fn, "a", a_obj, false);
  Arg b = check_array(fn, "b", b_obj, false);
  Arg out = check_array(fn, "out", out_obj, true);
  const auto d = tg::glue::matmul_dims(fn, a.shape, b.shape, out.shape);
  const float* ap = cdata(a);
  const float* bp = cdata(b);
  float* op = mdata(out);
  if (tg::glue::overlaps(op, out.size * 4, ap, a.size * 4) ||
      tg::glue::overlaps(op, out.size * 4, bp, b.size * 4)) {
    throw py::value_error(std::string(fn) + ": out must not share memory with a or b");
  }
  py::gil_scoped_release nogil;
  tg::cpu::matmul(ap, bp, op, d.batch, d.m, d.n, d.k);
}

// ---- scalar arguments -----------------------------------------------------------------

int64_t check_int(const char* fn, const char* name, const py::object& obj) {
  // (ndarrays have __index__ too, but are not scalars)
  if (PyBool_Check(obj.ptr()) || !PyIndex_Check(obj.ptr()) || py::isinstance<py::array>(obj)) {
    throw py::type_error(std::string(fn) + ": argument '" + name + "' must be an int, got " +
                         std::string(py::str(py::type::of(obj).attr("__name__"))));
  }
  return py::int_(obj).cast<int64_t>();
}

float check_float(const char* fn, const char* name, const py::object& obj) {
  PyObject* o = obj.ptr();
  const bool number = !py::isinstance<py::array>(o) && !PyComplex_Check(o) &&
                      (PyFloat_Check(o) || PyIndex_Check(o) || PyObject_HasAttrString(o, "__float__"));
  if (PyBool_Check(o) || !number) {
    throw py::type_error(std::string(fn) + ": argument '" + name + "' must be a real number, got " +
                         std::string(py::str(py::type::of(obj).attr("__name__"))));
  }
  return static_cast<float>(py::float_(obj).cast<double>());
}

// Outputs of the ops that do not work in place overlap no input and no other output.
void check_disjoint(const char* fn, const std::vector<std::pair<const char*, const Arg*>>& outs,
                    const std::vector<std::pair<const char*, const Arg*>>& ins) {
  for (size_t i = 0; i < outs.size(); ++i) {
    const Arg& o = *outs[i].second;
    auto clash = [&](const char* other, const Arg& a) {
      if (tg::glue::overlaps(o.arr.data(), o.size * 4, a.arr.data(), a.size * 4)) {
        throw py::value_error(std::string(fn) + ": out '" + outs[i].first +
                              "' must not share memory with '" + other + "'");
      }
    };
    for (const auto& in : ins) clash(in.first, *in.second);
    for (size_t j = i + 1; j < outs.size(); ++j) clash(outs[j].first, *outs[j].second);
  }
}

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

void check_shape(const char* fn, const char* name, const Arg& a, const tg::glue::Shape& want) {
  if (a.shape != want) {
    throw py::value_error(std::string(fn) + ": '" + name + "' must have shape " +
                          tg::glue::shape_str(want) + ", got " + tg::glue::shape_str(a.shape));
  }
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

// ---- conv2d ---------------------------------------------------------------------------

std::pair<int64_t, int64_t> check_pair(const char* fn, const char* name, const py::object& obj,
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

// The geometry of a convolution of an image batch of shape xs with weight ws, checked.
tg::cpu::Conv2dGeom conv_geom(const char* fn, const Shape& xs, const Shape& ws, const py::object& stride_obj,
                              const py::object& padding_obj, const py::object& dilation_obj,
                              const py::object& groups_obj) {
  const auto stride = check_pair(fn, "stride", stride_obj, 1);
  const auto padding = check_pair(fn, "padding", padding_obj, 0);
  const auto dilation = check_pair(fn, "dilation", dilation_obj, 1);
  const int64_t groups = check_int(fn, "groups", groups_obj);
  const std::string got = " got input " + tg::glue::shape_str(xs) + ", weight " + tg::glue::shape_str(ws);
  if (xs.size() != 4 || ws.size() != 4) {
    throw py::value_error(std::string(fn) + ": expected input (N, C, H, W) and weight (O, C / groups, KH, KW);" + got);
  }
  if (groups < 1 || xs[1] % groups != 0 || ws[0] % groups != 0 || ws[1] * groups != xs[1]) {
    throw py::value_error(std::string(fn) + ": groups=" + std::to_string(groups) +
                          " must divide C and O, with weight.shape[1] * groups == C;" + got);
  }
  tg::cpu::Conv2dGeom g{xs[0], xs[1], xs[2], xs[3], ws[0], ws[2], ws[3], 0, 0, stride.first, stride.second,
                        padding.first, padding.second, dilation.first, dilation.second, groups};
  const int64_t span_h = g.h + 2 * g.ph - g.dh * (g.kh - 1) - 1;
  const int64_t span_w = g.w + 2 * g.pw - g.dw * (g.kw - 1) - 1;
  if (span_h < 0 || span_w < 0) {
    throw py::value_error(std::string(fn) + ": the (dilated) kernel is larger than the padded input;" + got);
  }
  g.oh = span_h / g.sh + 1;
  g.ow = span_w / g.sw + 1;
  return g;
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

PYBIND11_MODULE(_cpu, m) {
  m.doc() = "tilegrad CPU kernels (C++, OpenMP, AVX2/AVX-512 chosen at run time).";

  const char* env = std::getenv("TILEGRAD_CPU_ISA");
  tg::cpu::Isa ignored;
  if (env != nullptr && *env != '\0' && !tg::cpu::parse_isa(env, &ignored)) {
    const std::string msg = std::string("TILEGRAD_CPU_ISA='") + env +
                            "' is not one of generic, avx2, avx512; ignoring it";
    if (PyErr_WarnEx(PyExc_RuntimeWarning, msg.c_str(), 1) < 0) throw py::error_already_set();
  }

  m.def("relu", &relu, py::arg("x"), py::arg("out"),
        "out[...] = max(x, 0). float32, C-contiguous, identical shapes; out may be x.");
  m.def("relu_backward", &relu_backward, py::arg("x"), py::arg("gy"), py::arg("out"),
        "out[...] = gy where x > 0 else 0. float32, C-contiguous, identical shapes.");
  m.def("matmul", &matmul, py::arg("a"), py::arg("b"), py::arg("out"),
        "out = a @ b for a (M, K), b (K, N), out (M, N), or batched (B, M, K) @ (B, K, N) -> "
        "(B, M, N). float32, C-contiguous; out must not overlap a or b.");
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
  m.def("isa", [] { return std::string(tg::cpu::isa_name(tg::cpu::active_isa())); },
        "The CPU path the kernels run: 'avx512', 'avx2' or 'generic' (capped by TILEGRAD_CPU_ISA).");
  m.def("num_threads", &tg::cpu::num_threads, "OpenMP threads the kernels use.");
}
