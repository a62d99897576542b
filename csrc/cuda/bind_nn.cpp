// tilegrad._cuda bindings: softmax / log_softmax, activations, layer norm.
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

// The element types of the softmax and activation kernels, in TG_DTYPE order (index 0 is
// TG_DTYPE_F32, 1 TG_DTYPE_F16): every array of one call has the first array's type.
const std::vector<ArrayType> kFloatTypes{kFloat32, kFloat16};

DevArray float_array(const char* fn, const char* name, const py::object& obj, bool is_out, const DevArray* first) {
  DevArray a = check_typed_array(fn, name, obj, is_out, kFloatTypes);
  if (first != nullptr && a.dtype != first->dtype) {
    throw py::type_error(std::string(fn) + ": argument '" + name + "' must have the dtype of the first array (" +
                         kFloatTypes[first->dtype].name + "), got " + kFloatTypes[a.dtype].name);
  }
  return a;
}

// ---- softmax / log_softmax ------------------------------------------------------------

void softmax_impl(const char* fn, bool log, const py::object& x_obj, const py::object& dim_obj,
                  const py::object& out_obj, const py::object& stream_obj) {
  DevArray x = float_array(fn, "x", x_obj, false, nullptr);
  const int64_t dim = check_int(fn, "dim", dim_obj);
  DevArray out = float_array(fn, "out", out_obj, true, &x);
  tg::glue::check_same_shapes(fn, {"x", "out"}, {x.shape, out.shape});
  const auto d = tg::glue::softmax_dims(fn, x.shape, dim);
  tg::glue::check_inplace_ok(fn, "x", cptr(x), mptr(out), x.nbytes());
  void* stream = to_stream(fn, stream_obj);
  if (x.size == 0) return;
  int err;
  {
    py::gil_scoped_release nogil;
    err = tg_cuda_softmax(x.dtype, cvoid(x), mvoid(out), d.outer, d.n, d.inner, log ? 1 : 0, stream);
  }
  check_cuda(fn, err);
}

void softmax_backward_impl(const char* fn, bool log, const py::object& y_obj, const py::object& gy_obj,
                           const py::object& dim_obj, const py::object& out_obj, const py::object& stream_obj) {
  DevArray y = float_array(fn, "y", y_obj, false, nullptr);
  DevArray gy = float_array(fn, "gy", gy_obj, false, &y);
  const int64_t dim = check_int(fn, "dim", dim_obj);
  DevArray out = float_array(fn, "out", out_obj, true, &y);
  tg::glue::check_same_shapes(fn, {"y", "gy", "out"}, {y.shape, gy.shape, out.shape});
  const auto d = tg::glue::softmax_dims(fn, y.shape, dim);
  tg::glue::check_inplace_ok(fn, "y", cptr(y), mptr(out), y.nbytes());
  tg::glue::check_inplace_ok(fn, "gy", cptr(gy), mptr(out), y.nbytes());
  void* stream = to_stream(fn, stream_obj);
  if (y.size == 0) return;
  int err;
  {
    py::gil_scoped_release nogil;
    err = tg_cuda_softmax_backward(y.dtype, cvoid(y), cvoid(gy), mvoid(out), d.outer, d.n, d.inner, log ? 1 : 0,
                                   stream);
  }
  check_cuda(fn, err);
}

// ---- activations ----------------------------------------------------------------------

void activation_impl(const char* fn, int act, float param, const py::object& x_obj, const py::object& out_obj,
                     const py::object& stream_obj) {
  DevArray x = float_array(fn, "x", x_obj, false, nullptr);
  DevArray out = float_array(fn, "out", out_obj, true, &x);
  tg::glue::check_same_shapes(fn, {"x", "out"}, {x.shape, out.shape});
  tg::glue::check_inplace_ok(fn, "x", cptr(x), mptr(out), x.nbytes());
  void* stream = to_stream(fn, stream_obj);
  if (x.size == 0) return;
  int err;
  {
    py::gil_scoped_release nogil;
    err = tg_cuda_activation(act, x.dtype, cvoid(x), mvoid(out), x.size, param, stream);
  }
  check_cuda(fn, err);
}

void activation_backward_impl(const char* fn, int act, float param, const char* a_name, const py::object& a_obj,
                              const py::object& gy_obj, const py::object& out_obj, const py::object& stream_obj) {
  DevArray a = float_array(fn, a_name, a_obj, false, nullptr);
  DevArray gy = float_array(fn, "gy", gy_obj, false, &a);
  DevArray out = float_array(fn, "out", out_obj, true, &a);
  tg::glue::check_same_shapes(fn, {a_name, "gy", "out"}, {a.shape, gy.shape, out.shape});
  tg::glue::check_inplace_ok(fn, a_name, cptr(a), mptr(out), a.nbytes());
  tg::glue::check_inplace_ok(fn, "gy", cptr(gy), mptr(out), a.nbytes());
  void* stream = to_stream(fn, stream_obj);
  if (a.size == 0) return;
  int err;
  {
    py::gil_scoped_release nogil;
    err = tg_cuda_activation_backward(act, a.dtype, cvoid(a), cvoid(gy), mvoid(out), a.size, param, stream);
  }
  check_cuda(fn, err);
}

int gelu_kind(const char* fn, const py::object& approximate) {
  if (!py::isinstance<py::str>(approximate)) {
    throw py::type_error(std::string(fn) + ": argument 'approximate' must be a str, got " + type_name(approximate));
  }
  const std::string a = approximate.cast<std::string>();
  if (a == "none") return TG_ACT_GELU;
  if (a == "tanh") return TG_ACT_GELU_TANH;
  throw py::value_error(std::string(fn) + ": approximate must be 'none' or 'tanh', got '" + a + "'");
}

// ---- layer norm -----------------------------------------------------------------------

// weight / bias: None or a CUDA array of x's dtype and the normalised shape.
const DevArray* optional_param(const char* fn, const char* name, const py::object& obj, const Shape& want,
                               DevArray* slot, const DevArray& x) {
  if (obj.is_none()) return nullptr;
  *slot = float_array(fn, name, obj, false, &x);
  if (slot->shape != want) {
    throw py::value_error(std::string(fn) + ": '" + name + "' must have the normalised shape " +
                          tg::glue::shape_str(want) + ", got " + tg::glue::shape_str(slot->shape));
  }
  return slot;
}

const void* opt_ptr(const DevArray* a) { return a == nullptr ? nullptr : cvoid(*a); }

void layer_norm(const py::object& x_obj, const py::object& w_obj, const py::object& b_obj,
                const py::object& n_dims_obj, const py::object& eps_obj, const py::object& y_obj,
                const py::object& mean_obj, const py::object& rstd_obj, const py::object& stream_obj) {
  const char* fn = "tilegrad._cuda.layer_norm";
  DevArray x = float_array(fn, "x", x_obj, false, nullptr);
  const auto d = tg::glue::norm_dims(fn, x.shape, check_int(fn, "n_dims", n_dims_obj));
  const float eps = static_cast<float>(check_real(fn, "eps", eps_obj));
  DevArray w_slot{}, b_slot{};
  const DevArray* w = optional_param(fn, "weight", w_obj, d.param_shape, &w_slot, x);
  const DevArray* b = optional_param(fn, "bias", b_obj, d.param_shape, &b_slot, x);
  DevArray y = float_array(fn, "y", y_obj, true, &x);
  DevArray mean = check_array(fn, "mean", mean_obj, true);
  DevArray rstd = check_array(fn, "rstd", rstd_obj, true);
  check_shape(fn, "y", y, x.shape);
  check_shape(fn, "mean", mean, d.stat_shape);
  check_shape(fn, "rstd", rstd, d.stat_shape);
  std::vector<std::pair<const char*, const DevArray*>> ins{{"x", &x}};
  if (w != nullptr) ins.push_back({"weight", w});
  if (b != nullptr) ins.push_back({"bias", b});
  check_disjoint(fn, {{"y", &y}, {"mean", &mean}, {"rstd", &rstd}}, ins);
  void* stream = to_stream(fn, stream_obj);
  if (d.rows == 0) return;  // nothing to write (rows with n == 0 still get NaN statistics)
  int err;
  {
    py::gil_scoped_release nogil;
    err = tg_cuda_layer_norm(x.dtype, cvoid(x), opt_ptr(w), opt_ptr(b), mvoid(y), mptr(mean), mptr(rstd), d.rows,
                             d.n, eps, stream);
  }
  check_cuda(fn, err);
}

void layer_norm_backward(const py::object& x_obj, const py::object& w_obj, const py::object& mean_obj,
                         const py::object& rstd_obj, const py::object& gy_obj, const py::object& n_dims_obj,
                         const py::object& gx_obj, const py::object& gw_obj, const py::object& gb_obj,
                         const py::object& stream_obj, const py::object& ws_obj) {
  const char* fn = "tilegrad._cuda.layer_norm_backward";
  DevArray x = float_array(fn, "x", x_obj, false, nullptr);
  const auto d = tg::glue::norm_dims(fn, x.shape, check_int(fn, "n_dims", n_dims_obj));
  DevArray w_slot{};
  const DevArray* w = optional_param(fn, "weight", w_obj, d.param_shape, &w_slot, x);
  DevArray mean = check_array(fn, "mean", mean_obj, false);
  DevArray rstd = check_array(fn, "rstd", rstd_obj, false);
  DevArray gy = float_array(fn, "gy", gy_obj, false, &x);
  DevArray gx = float_array(fn, "gx", gx_obj, true, &x);
  DevArray gw = float_array(fn, "gweight", gw_obj, true, &x);
  DevArray gb = float_array(fn, "gbias", gb_obj, true, &x);
  check_shape(fn, "mean", mean, d.stat_shape);
  check_shape(fn, "rstd", rstd, d.stat_shape);
  check_shape(fn, "gy", gy, x.shape);
  check_shape(fn, "gx", gx, x.shape);
  check_shape(fn, "gweight", gw, d.param_shape);
  check_shape(fn, "gbias", gb, d.param_shape);
  std::vector<std::pair<const char*, const DevArray*>> ins{{"x", &x}, {"mean", &mean}, {"rstd", &rstd}, {"gy", &gy}};
  if (w != nullptr) ins.push_back({"weight", w});
  std::vector<std::pair<const char*, const DevArray*>> outs{{"gx", &gx}, {"gweight", &gw}, {"gbias", &gb}};
  DevArray ws{};
  float* ws_ptr = nullptr;
  if (!ws_obj.is_none()) {
    ws = check_array(fn, "workspace", ws_obj, true);
    const int64_t need = tg_cuda_layer_norm_backward_workspace(d.rows, d.n);
    if (ws.size < need) {
      throw py::value_error(std::string(fn) + ": 'workspace' has " + std::to_string(ws.size) +
                            " elements, needs at least " + std::to_string(need) +
                            " (layer_norm_backward_workspace(rows, n))");
    }
    outs.push_back({"workspace", &ws});
    ws_ptr = mptr(ws);
  }
  check_disjoint(fn, outs, ins);
  void* stream = to_stream(fn, stream_obj);
  if (d.n == 0) return;  // every output is empty
  int err;
  {
    py::gil_scoped_release nogil;
    // rows == 0 still launches: gweight and gbias become zeros.
    err = tg_cuda_layer_norm_backward(x.dtype, cvoid(x), opt_ptr(w), cptr(mean), cptr(rstd), cvoid(gy), mvoid(gx),
                                      mvoid(gw), mvoid(gb), ws_ptr, d.rows, d.n, stream);
  }
  check_cuda(fn, err);
}

}  // namespace

// The softmax, activation and layer-norm functions take float32 or float16 arrays (all of one
// dtype, C-contiguous; layer norm's mean, rstd and workspace are float32 always); float16 is
// computed in float32 and rounded once when stored.
void tg::cuda_glue::bind_nn(py::module_& m) {
  m.def("softmax", [](py::object x, py::object dim, py::object out, py::object stream) {
          softmax_impl("tilegrad._cuda.softmax", false, x, dim, out, stream);
        }, py::arg("x"), py::arg("dim"), py::arg("out"), py::arg("stream") = 0,
        "out[...] = softmax(x) along dim on the GPU. float32 or float16 (computed in float32), C-contiguous, "
        "out of x's shape and dtype; out may be x.");
  m.def("log_softmax", [](py::object x, py::object dim, py::object out, py::object stream) {
          softmax_impl("tilegrad._cuda.log_softmax", true, x, dim, out, stream);
        }, py::arg("x"), py::arg("dim"), py::arg("out"), py::arg("stream") = 0,
        "out[...] = log_softmax(x) along dim on the GPU. float32 or float16, C-contiguous; out may be x.");
  m.def("softmax_backward", [](py::object y, py::object gy, py::object dim, py::object out, py::object stream) {
          softmax_backward_impl("tilegrad._cuda.softmax_backward", false, y, gy, dim, out, stream);
        }, py::arg("y"), py::arg("gy"), py::arg("dim"), py::arg("out"), py::arg("stream") = 0,
        "out = y * (gy - sum(gy * y, dim)) for y = softmax(x, dim).");
  m.def("log_softmax_backward", [](py::object y, py::object gy, py::object dim, py::object out,
                                   py::object stream) {
          softmax_backward_impl("tilegrad._cuda.log_softmax_backward", true, y, gy, dim, out, stream);
        }, py::arg("y"), py::arg("gy"), py::arg("dim"), py::arg("out"), py::arg("stream") = 0,
        "out = gy - exp(y) * sum(gy, dim) for y = log_softmax(x, dim).");

  struct Unary { const char* name; int act; const char* doc; };
  for (const Unary& u : {Unary{"sigmoid", TG_ACT_SIGMOID, "out[...] = 1 / (1 + exp(-x)); out may be x."},
                         Unary{"tanh", TG_ACT_TANH, "out[...] = tanh(x); out may be x."},
                         Unary{"silu", TG_ACT_SILU, "out[...] = x * sigmoid(x); out may be x."}}) {
    const std::string fn = std::string("tilegrad._cuda.") + u.name;
    const int act = u.act;
    m.def(u.name, [fn, act](py::object x, py::object out, py::object stream) {
            activation_impl(fn.c_str(), act, 0.0f, x, out, stream);
          }, py::arg("x"), py::arg("out"), py::arg("stream") = 0, u.doc);
  }
  struct Backward { const char* name; int act; const char* first; const char* doc; };
  for (const Backward& u : {Backward{"sigmoid_backward", TG_ACT_SIGMOID, "y", "out = gy * y * (1 - y)."},
                            Backward{"tanh_backward", TG_ACT_TANH, "y", "out = gy * (1 - y * y)."},
                            Backward{"silu_backward", TG_ACT_SILU, "x", "out = gy * s * (1 + x * (1 - s)), s = sigmoid(x)."}}) {
    const std::string fn = std::string("tilegrad._cuda.") + u.name;
    const int act = u.act;
    const char* first = u.first;
    m.def(u.name, [fn, act, first](py::object a, py::object gy, py::object out, py::object stream) {
            activation_backward_impl(fn.c_str(), act, 0.0f, first, a, gy, out, stream);
          }, py::arg(u.first), py::arg("gy"), py::arg("out"), py::arg("stream") = 0, u.doc);
  }
  m.def("gelu", [](py::object x, py::object approximate, py::object out, py::object stream) {
          const char* fn = "tilegrad._cuda.gelu";
          activation_impl(fn, gelu_kind(fn, approximate), 0.0f, x, out, stream);
        }, py::arg("x"), py::arg("approximate"), py::arg("out"), py::arg("stream") = 0,
        "out[...] = x * Phi(x) (approximate='none') or PyTorch's tanh form ('tanh'); out may be x.");
  m.def("gelu_backward", [](py::object x, py::object gy, py::object approximate, py::object out,
                            py::object stream) {
          const char* fn = "tilegrad._cuda.gelu_backward";
          activation_backward_impl(fn, gelu_kind(fn, approximate), 0.0f, "x", x, gy, out, stream);
        }, py::arg("x"), py::arg("gy"), py::arg("approximate"), py::arg("out"), py::arg("stream") = 0,
        "out = gy * d gelu(x) / dx, exact or tanh form.");
  m.def("leaky_relu", [](py::object x, py::object slope, py::object out, py::object stream) {
          const char* fn = "tilegrad._cuda.leaky_relu";
          const float s = static_cast<float>(check_real(fn, "slope", slope));
          activation_impl(fn, TG_ACT_LEAKY_RELU, s, x, out, stream);
        }, py::arg("x"), py::arg("slope"), py::arg("out"), py::arg("stream") = 0,
        "out[...] = x where x > 0 else slope * x; out may be x.");
  m.def("leaky_relu_backward", [](py::object x, py::object gy, py::object slope, py::object out,
                                  py::object stream) {
          const char* fn = "tilegrad._cuda.leaky_relu_backward";
          const float s = static_cast<float>(check_real(fn, "slope", slope));
          activation_backward_impl(fn, TG_ACT_LEAKY_RELU, s, "x", x, gy, out, stream);
        }, py::arg("x"), py::arg("gy"), py::arg("slope"), py::arg("out"), py::arg("stream") = 0,
        "out = gy where x > 0 else slope * gy.");

  m.def("layer_norm", &layer_norm, py::arg("x"), py::arg("weight"), py::arg("bias"), py::arg("n_dims"),
        py::arg("eps"), py::arg("y"), py::arg("mean"), py::arg("rstd"), py::arg("stream") = 0,
        "Layer norm over x's last n_dims dims on the GPU: y, and mean, rstd shaped "
        "x.shape[:-n_dims] + (1,) * n_dims. weight / bias: None or the normalised shape. Outputs overlap nothing.");
  m.def("layer_norm_backward", &layer_norm_backward, py::arg("x"), py::arg("weight"), py::arg("mean"),
        py::arg("rstd"), py::arg("gy"), py::arg("n_dims"), py::arg("gx"), py::arg("gweight"), py::arg("gbias"),
        py::arg("stream") = 0, py::kw_only(), py::arg("workspace") = py::none(),
        "Gradients of layer_norm: gx (x's shape), gweight and gbias (the normalised shape, summed over rows; "
        "written even when weight is None). workspace: None, or a float32 CUDA array of at least "
        "layer_norm_backward_workspace(rows, n) elements, which lets more blocks sum gweight / gbias.");
  m.def("layer_norm_backward_workspace", [](py::object rows_obj, py::object n_obj) {
          const char* fn = "tilegrad._cuda.layer_norm_backward_workspace";
          const int64_t rows = check_int(fn, "rows", rows_obj);
          const int64_t n = check_int(fn, "n", n_obj);
          if (rows < 0 || n < 0) {
            throw py::value_error(std::string(fn) + ": rows and n must be >= 0, got " + std::to_string(rows) +
                                  ", " + std::to_string(n));
          }
          return tg_cuda_layer_norm_backward_workspace(rows, n);
        }, py::arg("rows"), py::arg("n"),
        "float32 elements of scratch layer_norm_backward can use for rows x n (0: it needs none).");
}
