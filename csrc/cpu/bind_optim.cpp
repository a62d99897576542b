// tilegrad._cpu bindings: one-pass Adam / AdamW and SGD steps over one float32 parameter.
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

// An optional state array (None, or float32 of the parameter's shape), kept alive in *keep.
float* optional_state(const char* fn, const char* name, const py::object& obj, const Shape& want,
                      std::vector<Arg>* keep) {
  if (obj.is_none()) return nullptr;
  keep->push_back(check_array(fn, name, obj, true));
  check_shape(fn, name, keep->back(), want);
  return mdata(keep->back());
}

void adam_step(const py::object& p_obj, const py::object& g_obj, const py::object& m_obj,
               const py::object& v_obj, const py::object& vmax_obj, const py::object& lerp_weight,
               const py::object& decay, const py::object& weight_decay, const py::object& beta2,
               const py::object& bias2_sqrt, const py::object& eps, const py::object& step_size,
               const py::object& decoupled, const py::object& maximize) {
  const char* fn = "tilegrad._cpu.adam_step";
  Arg p = check_array(fn, "param", p_obj, true);
  Arg g = check_array(fn, "grad", g_obj, false);
  Arg m = check_array(fn, "exp_avg", m_obj, true);
  Arg v = check_array(fn, "exp_avg_sq", v_obj, true);
  check_shape(fn, "grad", g, p.shape);
  check_shape(fn, "exp_avg", m, p.shape);
  check_shape(fn, "exp_avg_sq", v, p.shape);
  std::vector<Arg> keep;
  keep.reserve(1);
  float* vmax = optional_state(fn, "max_exp_avg_sq", vmax_obj, p.shape, &keep);
  std::vector<std::pair<const char*, const Arg*>> outs{{"param", &p}, {"exp_avg", &m}, {"exp_avg_sq", &v}};
  if (vmax != nullptr) outs.push_back({"max_exp_avg_sq", &keep[0]});
  check_disjoint(fn, outs, {{"grad", &g}});
  tg::cpu::AdamStep h{check_real(fn, "lerp_weight", lerp_weight), check_real(fn, "decay", decay),
                      check_real(fn, "weight_decay", weight_decay), check_real(fn, "beta2", beta2),
                      check_real(fn, "bias2_sqrt", bias2_sqrt), check_real(fn, "eps", eps),
                      check_real(fn, "step_size", step_size), check_bool(fn, "decoupled", decoupled),
                      check_bool(fn, "maximize", maximize)};
  float* pp = mdata(p);
  const float* gp = cdata(g);
  float* mp = mdata(m);
  float* vp = mdata(v);
  py::gil_scoped_release nogil;
  tg::cpu::adam_step(pp, gp, mp, vp, vmax, p.size, h);
}

void sgd_step(const py::object& p_obj, const py::object& g_obj, const py::object& buf_obj,
              const py::object& lr, const py::object& momentum, const py::object& dampening,
              const py::object& weight_decay, const py::object& nesterov, const py::object& maximize,
              const py::object& first_step) {
  const char* fn = "tilegrad._cpu.sgd_step";
  Arg p = check_array(fn, "param", p_obj, true);
  Arg g = check_array(fn, "grad", g_obj, false);
  check_shape(fn, "grad", g, p.shape);
  std::vector<Arg> keep;
  keep.reserve(1);
  float* buf = optional_state(fn, "momentum_buffer", buf_obj, p.shape, &keep);
  std::vector<std::pair<const char*, const Arg*>> outs{{"param", &p}};
  if (buf != nullptr) outs.push_back({"momentum_buffer", &keep[0]});
  check_disjoint(fn, outs, {{"grad", &g}});
  tg::cpu::SgdStep h{check_real(fn, "lr", lr), check_real(fn, "momentum", momentum),
                     check_real(fn, "dampening", dampening), check_real(fn, "weight_decay", weight_decay),
                     check_bool(fn, "nesterov", nesterov), check_bool(fn, "maximize", maximize),
                     check_bool(fn, "first_step", first_step)};
  float* pp = mdata(p);
  const float* gp = cdata(g);
  py::gil_scoped_release nogil;
  tg::cpu::sgd_step(pp, gp, buf, p.size, h);
}

}  // namespace

void tg::cpu_glue::bind_optim(py::module_& m) {
  m.def("adam_step", &adam_step, py::arg("param"), py::arg("grad"), py::arg("exp_avg"), py::arg("exp_avg_sq"),
        py::arg("max_exp_avg_sq"), py::kw_only(), py::arg("lerp_weight"), py::arg("decay"),
        py::arg("weight_decay"), py::arg("beta2"), py::arg("bias2_sqrt"), py::arg("eps"), py::arg("step_size"),
        py::arg("decoupled"), py::arg("maximize"),
        "One Adam / AdamW step of one parameter, in place, in one pass: the float32 operations of "
        "tilegrad.optim.Adam in the same order. lerp_weight = 1 - beta1; decay = 1 - lr * weight_decay "
        "(used when decoupled); weight_decay is added to the gradient when not decoupled; bias2_sqrt = "
        "sqrt(1 - beta2 ** step); step_size = lr / (1 - beta1 ** step). max_exp_avg_sq: None unless amsgrad. "
        "All arrays float32, C-contiguous, of param's shape; the updated ones overlap nothing.");
  m.def("sgd_step", &sgd_step, py::arg("param"), py::arg("grad"), py::arg("momentum_buffer"), py::kw_only(),
        py::arg("lr"), py::arg("momentum"), py::arg("dampening"), py::arg("weight_decay"), py::arg("nesterov"),
        py::arg("maximize"), py::arg("first_step"),
        "One SGD step of one parameter, in place, in one pass (tilegrad.optim.SGD's float32 operations). "
        "momentum_buffer: None when momentum == 0; first_step=True sets it to the gradient.");
}
