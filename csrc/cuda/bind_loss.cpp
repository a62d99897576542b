// tilegrad._cuda bindings: fused cross-entropy with class-index targets (kernels/cuda/cross_entropy.cu).
#include <pybind11/pybind11.h>

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

const ArrayType kInt32{"<i4", "int32", 4};

using Named = std::vector<std::pair<const char*, const DevArray*>>;

struct Common {
  DevArray logits, target, weight;
  bool has_weight = false;
  int64_t rows = 0, classes = 0, ignore_index = 0;
  float smoothing = 0.0f;
};

Common check_common(const char* fn, const py::object& logits_obj, const py::object& target_obj,
                    const py::object& weight_obj, const py::object& ignore_obj, const py::object& smoothing_obj) {
  Common c;
  c.logits = check_array(fn, "logits", logits_obj, false);
  if (c.logits.shape.size() != 2 || c.logits.shape[1] < 1) {
    throw py::value_error(std::string(fn) + ": 'logits' must be (rows, classes) with at least one class, got " +
                          tg::glue::shape_str(c.logits.shape));
  }
  c.rows = c.logits.shape[0];
  c.classes = c.logits.shape[1];
  c.target = check_typed_array(fn, "target", target_obj, false, {kInt64});
  check_shape(fn, "target", c.target, {c.rows});
  if (!weight_obj.is_none()) {
    c.weight = check_array(fn, "weight", weight_obj, false);
    check_shape(fn, "weight", c.weight, {c.classes});
    c.has_weight = true;
  }
  c.ignore_index = check_int(fn, "ignore_index", ignore_obj);
  const double eps = check_real(fn, "label_smoothing", smoothing_obj);
  if (!(eps >= 0.0 && eps <= 1.0)) {
    throw py::value_error(std::string(fn) + ": label_smoothing must be in [0, 1], got " + std::to_string(eps));
  }
  c.smoothing = static_cast<float>(eps);
  return c;
}

Named input_list(const Common& c) {
  Named ins{{"logits", &c.logits}, {"target", &c.target}};
  if (c.has_weight) ins.push_back({"weight", &c.weight});
  return ins;
}

const float* weight_ptr(const Common& c) { return c.has_weight ? cptr(c.weight) : nullptr; }

void cross_entropy_forward(const py::object& logits, const py::object& target, const py::object& weight,
                           const py::object& ignore_index, const py::object& label_smoothing,
                           const py::object& loss_obj, const py::object& lse_obj, const py::object& error_obj,
                           const py::object& stream_obj) {
  const char* fn = "tilegrad._cuda.cross_entropy_forward";
  Common c = check_common(fn, logits, target, weight, ignore_index, label_smoothing);
  DevArray loss = check_array(fn, "loss", loss_obj, true);
  DevArray lse = check_array(fn, "lse", lse_obj, true);
  DevArray error = check_typed_array(fn, "error", error_obj, true, {kInt32});
  check_shape(fn, "loss", loss, {c.rows});
  check_shape(fn, "lse", lse, {c.rows});
  check_shape(fn, "error", error, {1});
  check_disjoint(fn, {{"loss", &loss}, {"lse", &lse}, {"error", &error}}, input_list(c));
  void* stream = to_stream(fn, stream_obj);
  if (c.rows == 0) return;
  int err;
  {
    py::gil_scoped_release nogil;
    err = tg_cuda_cross_entropy(cptr(c.logits), reinterpret_cast<const int64_t*>(c.target.ptr), weight_ptr(c),
                                mptr(loss), mptr(lse), reinterpret_cast<int*>(error.ptr), c.rows, c.classes,
                                c.ignore_index, c.smoothing, stream);
  }
  check_cuda(fn, err);
}

void cross_entropy_backward(const py::object& logits, const py::object& lse_obj, const py::object& target,
                            const py::object& weight, const py::object& ignore_index,
                            const py::object& label_smoothing, const py::object& grow_obj,
                            const py::object& glogits_obj, const py::object& stream_obj) {
  const char* fn = "tilegrad._cuda.cross_entropy_backward";
  Common c = check_common(fn, logits, target, weight, ignore_index, label_smoothing);
  DevArray lse = check_array(fn, "lse", lse_obj, false);
  DevArray grow = check_array(fn, "grow", grow_obj, false);
  DevArray glogits = check_array(fn, "glogits", glogits_obj, true);
  check_shape(fn, "lse", lse, {c.rows});
  check_shape(fn, "grow", grow, {c.rows});
  check_shape(fn, "glogits", glogits, c.logits.shape);
  Named ins = input_list(c);
  ins.insert(ins.end(), {{"lse", &lse}, {"grow", &grow}});
  check_disjoint(fn, {{"glogits", &glogits}}, ins);
  void* stream = to_stream(fn, stream_obj);
  if (c.rows == 0) return;
  int err;
  {
    py::gil_scoped_release nogil;
    err = tg_cuda_cross_entropy_backward(cptr(c.logits), cptr(lse), reinterpret_cast<const int64_t*>(c.target.ptr),
                                         weight_ptr(c), cptr(grow), mptr(glogits), c.rows, c.classes,
                                         c.ignore_index, c.smoothing, stream);
  }
  check_cuda(fn, err);
}

}  // namespace

void tg::cuda_glue::bind_loss(py::module_& m) {
  m.def("cross_entropy_forward", &cross_entropy_forward, py::arg("logits"), py::arg("target"), py::arg("weight"),
        py::arg("ignore_index"), py::arg("label_smoothing"), py::arg("loss"), py::arg("lse"), py::arg("error"),
        py::arg("stream") = 0,
        "Per-row cross-entropy of logits (R, C) float32 against class indices target (R,) int64, PyTorch's "
        "reduction='none' formula with weight (C,) float32 or None and label_smoothing in [0, 1]: "
        "loss = (1 - e) * -w[t] * logp[t] + (e / C) * -sum_c w[c] * logp[c], 0 where t == ignore_index. "
        "lse (R,) receives each row's log-sum-exp. A target outside [0, C) that is not ignore_index gives "
        "NaN and sets error[0] = 1 (error: (1,) int32, zeroed by the caller). Outputs overlap nothing.");
  m.def("cross_entropy_backward", &cross_entropy_backward, py::arg("logits"), py::arg("lse"), py::arg("target"),
        py::arg("weight"), py::arg("ignore_index"), py::arg("label_smoothing"), py::arg("grow"),
        py::arg("glogits"), py::arg("stream") = 0,
        "glogits (R, C) = grow[r] * d loss[r] / d logits[r] for cross_entropy_forward's loss: 0 on ignored "
        "rows, NaN on rows whose target is out of range. glogits overlaps nothing.");
}
