// tilegrad._cpu bindings: the fused cross-entropy of logits and class indices.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
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

// The arguments both kernels share, checked: logits (R, C) with C >= 1, target (R,) int64
// whose entries are ignore_index or in [0, C), weight None or (C,), label_smoothing in [0, 1].
struct CeArgs {
  Arg logits, target;
  Arg weight;
  bool has_weight;
  int64_t rows, classes, ignore_index;
  float eps;
};

CeArgs check_ce_args(const char* fn, const py::object& logits_obj, const py::object& target_obj,
                     const py::object& weight_obj, const py::object& ignore_obj, const py::object& eps_obj) {
  Arg logits = check_array(fn, "logits", logits_obj, false);
  if (logits.shape.size() != 2 || logits.shape[1] < 1) {
    throw py::value_error(std::string(fn) + ": 'logits' must be (R, C) with C >= 1, got " +
                          tg::glue::shape_str(logits.shape));
  }
  const int64_t rows = logits.shape[0];
  const int64_t classes = logits.shape[1];
  Arg target = check_typed_array(fn, "target", target_obj, false, py::dtype::of<int64_t>(), "int64");
  check_shape(fn, "target", target, Shape{rows});
  CeArgs a{logits, target, Arg{}, !weight_obj.is_none(), rows, classes, 0, 0.0f};
  if (a.has_weight) {
    a.weight = check_array(fn, "weight", weight_obj, false);
    check_shape(fn, "weight", a.weight, Shape{classes});
  }
  a.ignore_index = check_int(fn, "ignore_index", ignore_obj);
  a.eps = check_float(fn, "label_smoothing", eps_obj);
  if (!(a.eps >= 0.0f && a.eps <= 1.0f)) {
    throw py::value_error(std::string(fn) + ": label_smoothing must be in [0, 1], got " + std::to_string(a.eps));
  }
  const auto* t = static_cast<const int64_t*>(target.arr.data());
  for (int64_t r = 0; r < rows; ++r) {
    if (t[r] != a.ignore_index && (t[r] < 0 || t[r] >= classes)) {
      throw py::index_error(std::string(fn) + ": target " + std::to_string(t[r]) + " (row " + std::to_string(r) +
                            ") is out of bounds for " + std::to_string(classes) + " classes");
    }
  }
  return a;
}

std::vector<std::pair<const char*, const Arg*>> ce_inputs(const CeArgs& a) {
  std::vector<std::pair<const char*, const Arg*>> ins{{"logits", &a.logits}, {"target", &a.target}};
  if (a.has_weight) ins.emplace_back("weight", &a.weight);
  return ins;
}

void cross_entropy_forward(const py::object& logits_obj, const py::object& target_obj, const py::object& weight_obj,
                           const py::object& ignore_obj, const py::object& eps_obj, const py::object& loss_obj,
                           const py::object& lse_obj) {
  const char* fn = "tilegrad._cpu.cross_entropy_forward";
  const CeArgs a = check_ce_args(fn, logits_obj, target_obj, weight_obj, ignore_obj, eps_obj);
  Arg loss = check_array(fn, "loss", loss_obj, true);
  Arg lse = check_array(fn, "lse", lse_obj, true);
  check_shape(fn, "loss", loss, Shape{a.rows});
  check_shape(fn, "lse", lse, Shape{a.rows});
  check_disjoint(fn, {{"loss", &loss}, {"lse", &lse}}, ce_inputs(a));
  const float* xp = cdata(a.logits);
  const auto* tp = static_cast<const int64_t*>(a.target.arr.data());
  const float* wp = a.has_weight ? cdata(a.weight) : nullptr;
  float* lp = mdata(loss);
  float* sp = mdata(lse);
  py::gil_scoped_release nogil;
  tg::cpu::cross_entropy_forward(xp, tp, wp, lp, sp, a.rows, a.classes, a.ignore_index, a.eps);
}

void cross_entropy_backward(const py::object& logits_obj, const py::object& lse_obj, const py::object& target_obj,
                            const py::object& weight_obj, const py::object& ignore_obj, const py::object& eps_obj,
                            const py::object& grow_obj, const py::object& glogits_obj) {
  const char* fn = "tilegrad._cpu.cross_entropy_backward";
  const CeArgs a = check_ce_args(fn, logits_obj, target_obj, weight_obj, ignore_obj, eps_obj);
  Arg lse = check_array(fn, "lse", lse_obj, false);
  Arg grow = check_array(fn, "grow", grow_obj, false);
  Arg glogits = check_array(fn, "glogits", glogits_obj, true);
  check_shape(fn, "lse", lse, Shape{a.rows});
  check_shape(fn, "grow", grow, Shape{a.rows});
  check_shape(fn, "glogits", glogits, a.logits.shape);
  auto ins = ce_inputs(a);
  ins.emplace_back("lse", &lse);
  ins.emplace_back("grow", &grow);
  check_disjoint(fn, {{"glogits", &glogits}}, ins);
  const float* xp = cdata(a.logits);
  const float* sp = cdata(lse);
  const auto* tp = static_cast<const int64_t*>(a.target.arr.data());
  const float* wp = a.has_weight ? cdata(a.weight) : nullptr;
  const float* gp = cdata(grow);
  float* op = mdata(glogits);
  py::gil_scoped_release nogil;
  tg::cpu::cross_entropy_backward(xp, sp, tp, wp, gp, op, a.rows, a.classes, a.ignore_index, a.eps);
}

}  // namespace

void tg::cpu_glue::bind_loss(py::module_& m) {
  m.def("cross_entropy_forward", &cross_entropy_forward, py::arg("logits"), py::arg("target"), py::arg("weight"),
        py::arg("ignore_index"), py::arg("label_smoothing"), py::arg("loss"), py::arg("lse"),
        "Per-row cross-entropy of logits (R, C) against int64 class indices target (R,): loss (R,) already "
        "multiplied by weight[target] (weight None or (C,)), 0 where target == ignore_index, with PyTorch's "
        "label smoothing; lse (R,) = logsumexp of each row. Raises IndexError for a target outside [0, C) "
        "that is not ignore_index. The outputs share memory with nothing.");
  m.def("cross_entropy_backward", &cross_entropy_backward, py::arg("logits"), py::arg("lse"), py::arg("target"),
        py::arg("weight"), py::arg("ignore_index"), py::arg("label_smoothing"), py::arg("grow"),
        py::arg("glogits"),
        "glogits (R, C) = grow[r] * d loss[r] / d logits[r] for cross_entropy_forward's loss and lse. "
        "glogits shares memory with nothing.");
}
