// tilegrad._cuda bindings: fused multi-tensor AdamW / SGD steps.
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

// ---- fused optimizer steps ------------------------------------------------------------

// A list of CUDA arrays, one per parameter; element i must have shape shapes[i]
// (the parameters' shapes; empty `shapes` means: this list defines them).
struct ArrayList {
  std::string name;
  std::vector<DevArray> arrays;
  std::vector<void*> ptrs;
};

ArrayList check_array_list(const char* fn, const char* name, const py::object& obj, bool is_out,
                           const std::vector<DevArray>* like) {
  if (!py::isinstance<py::list>(obj) && !py::isinstance<py::tuple>(obj)) {
    throw py::type_error(std::string(fn) + ": argument '" + name + "' must be a list or tuple of CUDA arrays, got " +
                         type_name(obj));
  }
  auto seq = py::reinterpret_borrow<py::sequence>(obj);
  ArrayList out{name, {}, {}};
  if (like != nullptr && py::len(seq) != like->size()) {
    throw py::value_error(std::string(fn) + ": '" + name + "' has " + std::to_string(py::len(seq)) +
                          " arrays, 'params' has " + std::to_string(like->size()));
  }
  out.arrays.reserve(py::len(seq));
  size_t i = 0;
  for (const py::handle& item : seq) {
    const std::string item_name = std::string(name) + "[" + std::to_string(i) + "]";
    out.arrays.push_back(check_array(fn, item_name.c_str(), py::reinterpret_borrow<py::object>(item), is_out));
    const DevArray& a = out.arrays.back();
    if (like != nullptr && a.shape != (*like)[i].shape) {
      throw py::value_error(std::string(fn) + ": '" + item_name + "' must have the shape of 'params[" +
                            std::to_string(i) + "]' " + tg::glue::shape_str((*like)[i].shape) + ", got " +
                            tg::glue::shape_str(a.shape));
    }
    out.ptrs.push_back(mvoid(a));
    ++i;
  }
  return out;
}

// No two arrays of the whole call may share memory (sort by address, compare neighbours).
void check_lists_disjoint(const char* fn, const std::vector<const ArrayList*>& lists) {
  struct Span { uintptr_t begin, end; const ArrayList* list; size_t index; };
  std::vector<Span> spans;
  for (const ArrayList* l : lists) {
    for (size_t i = 0; i < l->arrays.size(); ++i) {
      const DevArray& a = l->arrays[i];
      if (a.size > 0) spans.push_back({a.ptr, a.ptr + static_cast<uintptr_t>(a.size) * 4, l, i});
    }
  }
  std::sort(spans.begin(), spans.end(), [](const Span& p, const Span& q) { return p.begin < q.begin; });
  size_t widest = 0;  // the span reaching furthest so far
  for (size_t k = 1; k < spans.size(); ++k) {
    if (spans[k].begin < spans[widest].end) {
      const Span& a = spans[widest];
      const Span& b = spans[k];
      throw py::value_error(std::string(fn) + ": '" + a.list->name + "[" + std::to_string(a.index) + "]' and '" +
                            b.list->name + "[" + std::to_string(b.index) + "]' share memory (every array "
                            "must be distinct)");
    }
    if (spans[k].end > spans[widest].end) widest = k;
  }
}

float* const* fptrs(const ArrayList& l) { return reinterpret_cast<float* const*>(l.ptrs.data()); }

std::vector<int64_t> sizes_of(const ArrayList& l) {
  std::vector<int64_t> n;
  for (const DevArray& a : l.arrays) n.push_back(a.size);
  return n;
}

double check_beta(const char* fn, const char* name, const py::object& obj) {
  const double b = check_real(fn, name, obj);
  if (!(b >= 0.0 && b < 1.0)) {
    throw py::value_error(std::string(fn) + ": " + name + " must be in [0, 1), got " + std::to_string(b));
  }
  return b;
}

void adamw_step(const py::object& params, const py::object& grads, const py::object& exp_avgs,
                const py::object& exp_avg_sqs, const py::object& lr_obj, const py::object& beta1_obj,
                const py::object& beta2_obj, const py::object& eps_obj, const py::object& wd_obj,
                const py::object& step_obj, const py::object& max_obj, const py::object& decoupled_obj,
                const py::object& maximize_obj, const py::object& stream_obj) {
  const char* fn = "tilegrad._cuda.adamw_step";
  ArrayList p = check_array_list(fn, "params", params, true, nullptr);
  ArrayList g = check_array_list(fn, "grads", grads, false, &p.arrays);
  ArrayList m = check_array_list(fn, "exp_avgs", exp_avgs, true, &p.arrays);
  ArrayList v = check_array_list(fn, "exp_avg_sqs", exp_avg_sqs, true, &p.arrays);
  ArrayList vmax;
  const bool amsgrad = !max_obj.is_none();
  if (amsgrad) vmax = check_array_list(fn, "max_exp_avg_sqs", max_obj, true, &p.arrays);
  std::vector<const ArrayList*> all{&p, &g, &m, &v};
  if (amsgrad) all.push_back(&vmax);
  check_lists_disjoint(fn, all);
  const double lr = check_real(fn, "lr", lr_obj);
  const double beta1 = check_beta(fn, "beta1", beta1_obj);
  const double beta2 = check_beta(fn, "beta2", beta2_obj);
  const double eps = check_real(fn, "eps", eps_obj);
  const double wd = check_real(fn, "weight_decay", wd_obj);
  const int64_t step = check_int(fn, "step", step_obj);
  if (step < 1) {
    throw py::value_error(std::string(fn) + ": step must be >= 1 (the count including this step), got " +
                          std::to_string(step));
  }
  const bool decoupled = check_bool(fn, "decoupled", decoupled_obj);
  const bool maximize = check_bool(fn, "maximize", maximize_obj);
  void* stream = to_stream(fn, stream_obj);

  TgAdamHyper h{};
  h.beta1 = static_cast<float>(beta1);
  h.beta2 = static_cast<float>(beta2);
  h.one_minus_beta1 = static_cast<float>(1.0 - beta1);
  h.one_minus_beta2 = static_cast<float>(1.0 - beta2);
  h.step_size = static_cast<float>(lr / (1.0 - std::pow(beta1, static_cast<double>(step))));
  h.bias_correction2_sqrt = static_cast<float>(std::sqrt(1.0 - std::pow(beta2, static_cast<double>(step))));
  h.eps = static_cast<float>(eps);
  h.weight_decay = static_cast<float>(wd);
  h.decay = static_cast<float>(1.0 - lr * wd);
  h.decoupled = decoupled && wd != 0.0 ? 1 : 0;
  h.maximize = maximize ? 1 : 0;
  h.lerp_small = std::abs(1.0 - beta1) < 0.5 ? 1 : 0;
  // torch's lerp_ with weight w >= 0.5 computes end - (end - a) * (1 - w); 1 - w is beta1 up to rounding
  if (!h.lerp_small) h.beta1 = static_cast<float>(1.0 - (1.0 - beta1));

  const std::vector<int64_t> n = sizes_of(p);
  TgOptTensors t{static_cast<int64_t>(n.size()), fptrs(p), fptrs(g), fptrs(m),
                 fptrs(v), amsgrad ? fptrs(vmax) : nullptr, n.data()};
  int err;
  {
    py::gil_scoped_release nogil;
    err = tg_cuda_adam_step(&t, &h, stream);
  }
  check_cuda(fn, err);
}

void sgd_step(const py::object& params, const py::object& grads, const py::object& bufs_obj,
              const py::object& lr_obj, const py::object& momentum_obj, const py::object& dampening_obj,
              const py::object& wd_obj, const py::object& nesterov_obj, const py::object& maximize_obj,
              const py::object& first_obj, const py::object& stream_obj) {
  const char* fn = "tilegrad._cuda.sgd_step";
  ArrayList p = check_array_list(fn, "params", params, true, nullptr);
  ArrayList g = check_array_list(fn, "grads", grads, false, &p.arrays);
  const double lr = check_real(fn, "lr", lr_obj);
  const double momentum = check_real(fn, "momentum", momentum_obj);
  const double dampening = check_real(fn, "dampening", dampening_obj);
  const double wd = check_real(fn, "weight_decay", wd_obj);
  const bool nesterov = check_bool(fn, "nesterov", nesterov_obj);
  const bool maximize = check_bool(fn, "maximize", maximize_obj);
  const bool first_step = check_bool(fn, "first_step", first_obj);
  ArrayList b;
  const bool has_bufs = !bufs_obj.is_none();
  if (has_bufs) b = check_array_list(fn, "momentum_buffers", bufs_obj, true, &p.arrays);
  if (has_bufs != (momentum != 0.0)) {
    throw py::value_error(std::string(fn) + ": momentum_buffers must be given exactly when momentum != 0 (got "
                          "momentum " + std::to_string(momentum) + (has_bufs ? " and buffers)" : " and None)"));
  }
  std::vector<const ArrayList*> all{&p, &g};
  if (has_bufs) all.push_back(&b);
  check_lists_disjoint(fn, all);
  void* stream = to_stream(fn, stream_obj);

  TgSgdHyper h{};
  h.lr = static_cast<float>(lr);
  h.momentum = static_cast<float>(momentum);
  h.one_minus_dampening = static_cast<float>(1.0 - dampening);
  h.weight_decay = static_cast<float>(wd);
  h.nesterov = nesterov ? 1 : 0;
  h.maximize = maximize ? 1 : 0;
  h.first_step = first_step ? 1 : 0;
  const std::vector<int64_t> n = sizes_of(p);
  TgOptTensors t{static_cast<int64_t>(n.size()), fptrs(p), fptrs(g),
                 has_bufs ? fptrs(b) : nullptr, nullptr, nullptr, n.data()};
  int err;
  {
    py::gil_scoped_release nogil;
    err = tg_cuda_sgd_step(&t, &h, stream);
  }
  check_cuda(fn, err);
}

}  // namespace

void tg::cuda_glue::bind_optim(py::module_& m) {
  m.def("adamw_step", &adamw_step, py::arg("params"), py::arg("grads"), py::arg("exp_avgs"),
        py::arg("exp_avg_sqs"), py::kw_only(), py::arg("lr"), py::arg("beta1"), py::arg("beta2"), py::arg("eps"),
        py::arg("weight_decay"), py::arg("step"), py::arg("max_exp_avg_sqs") = py::none(),
        py::arg("decoupled") = true, py::arg("maximize") = false, py::arg("stream") = 0,
        "One fused Adam/AdamW step (PyTorch's algorithm) over lists of float32 CUDA arrays, updated in place: "
        "params, exp_avgs, exp_avg_sqs (and max_exp_avg_sqs for amsgrad); grads are read. step is the step "
        "count including this one, shared by every tensor of the call. decoupled=True is AdamW (p *= 1 - lr * "
        "weight_decay), False is Adam (grad += weight_decay * p). No two arrays may share memory.");
  m.def("sgd_step", &sgd_step, py::arg("params"), py::arg("grads"), py::arg("momentum_buffers"), py::kw_only(),
        py::arg("lr"), py::arg("momentum"), py::arg("dampening"), py::arg("weight_decay"),
        py::arg("nesterov") = false, py::arg("maximize") = false, py::arg("first_step") = false,
        py::arg("stream") = 0,
        "One fused SGD step (PyTorch's algorithm) over lists of float32 CUDA arrays, params (and momentum "
        "buffers) updated in place. momentum_buffers: None when momentum == 0, else one per param; "
        "first_step=True initialises them to the gradient (torch's first step).");
  m.def("opt_max_tensors_per_launch", &tg_cuda_opt_max_tensors_per_launch,
        "How many tensors one launch of adamw_step / sgd_step covers (more take more launches).");
}
