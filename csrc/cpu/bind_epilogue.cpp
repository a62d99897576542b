// tilegrad._cpu bindings: the Linear / Conv2d epilogue, y = act(y + bias) in place.
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

struct EpilogueKind {
  tg::cpu::Epilogue epilogue;
  tg::cpu::Act act;
};

EpilogueKind epilogue_kind(const char* fn, const py::object& obj) {
  using tg::cpu::Act;
  using tg::cpu::Epilogue;
  if (!py::isinstance<py::str>(obj)) {
    throw py::type_error(std::string(fn) + ": argument 'activation' must be a str, got " +
                         std::string(py::str(py::type::of(obj).attr("__name__"))));
  }
  const std::string a = obj.cast<std::string>();
  if (a == "none") return {Epilogue::none, Act::sigmoid};
  if (a == "relu") return {Epilogue::relu, Act::sigmoid};
  if (a == "sigmoid") return {Epilogue::act, Act::sigmoid};
  if (a == "tanh") return {Epilogue::act, Act::tanh};
  if (a == "gelu") return {Epilogue::act, Act::gelu};
  if (a == "gelu_tanh") return {Epilogue::act, Act::gelu_tanh};
  if (a == "silu") return {Epilogue::act, Act::silu};
  if (a == "leaky_relu") return {Epilogue::act, Act::leaky_relu};
  throw py::value_error(std::string(fn) + ": activation must be one of none, relu, sigmoid, tanh, gelu, "
                        "gelu_tanh, silu, leaky_relu; got '" + a + "'");
}

void bias_act(const py::object& y_obj, const py::object& b_obj, const py::object& dim_obj,
              const py::object& act_obj, const py::object& param_obj) {
  const char* fn = "tilegrad._cpu.bias_act";
  Arg y = check_array(fn, "y", y_obj, true);
  // y as (outer, channels, inner) around dim: the split softmax uses, with its range check.
  const auto [outer, channels, inner] = tg::glue::softmax_dims(fn, y.shape, check_int(fn, "dim", dim_obj));
  const EpilogueKind kind = epilogue_kind(fn, act_obj);
  const float param = check_float(fn, "param", param_obj);
  std::vector<Arg> keep;
  const float* bp = nullptr;
  if (!b_obj.is_none()) {
    keep.push_back(check_array(fn, "bias", b_obj, false));
    check_shape(fn, "bias", keep[0], Shape{channels});
    check_disjoint(fn, {{"y", &y}}, {{"bias", &keep[0]}});
    bp = cdata(keep[0]);
  }
  float* yp = mdata(y);
  py::gil_scoped_release nogil;
  tg::cpu::bias_act(yp, bp, outer, channels, inner, kind.epilogue, kind.act, param);
}

}  // namespace

void tg::cpu_glue::bind_epilogue(py::module_& m) {
  m.def("bias_act", &bias_act, py::arg("y"), py::arg("bias"), py::arg("dim"), py::arg("activation"),
        py::arg("param") = 0.0,
        "In place: y = activation(y + bias), bias (None or float32 of shape (y.shape[dim],)) added along "
        "dim (Linear: the last dim; NCHW conv: 1). activation: none, relu, sigmoid, tanh, gelu, gelu_tanh, "
        "silu or leaky_relu (param: its slope). y float32, C-contiguous, writeable; bias does not overlap y.");
}
