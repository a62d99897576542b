// tilegrad._cpu bindings: fused scaled dot-product attention, forward and backward.
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
using tg::glue::shape_str;
using namespace tg::cpu_glue;

namespace {

std::string type_name(const py::object& obj) { return py::str(py::type::of(obj).attr("__name__")); }

// q (B, L, E), k (B, S, E), v (B, S, Ev), all 3-D with matching sizes.
tg::cpu::AttentionDims attention_dims(const char* fn, const Arg& q, const Arg& k, const Arg& v) {
  const std::string got = " got q " + shape_str(q.shape) + ", k " + shape_str(k.shape) + ", v " + shape_str(v.shape);
  if (q.shape.size() != 3 || k.shape.size() != 3 || v.shape.size() != 3) {
    throw py::value_error(std::string(fn) + ": expected 3-d q (B, L, E), k (B, S, E), v (B, S, Ev);" + got);
  }
  if (k.shape[0] != q.shape[0] || v.shape[0] != q.shape[0] || k.shape[2] != q.shape[2] || v.shape[1] != k.shape[1]) {
    throw py::value_error(std::string(fn) + ": mismatched sizes (need q (B, L, E), k (B, S, E), v (B, S, Ev));" + got);
  }
  return tg::cpu::AttentionDims{q.shape[0], q.shape[1], k.shape[1], q.shape[2], v.shape[2]};
}

// None, or a C-contiguous, aligned bool or float32 array (Bm, Lm, S) with Bm in {1, B} and
// Lm in {1, L}. The array is kept alive in *keep.
tg::cpu::AttentionMask check_mask(const char* fn, const py::object& obj, const tg::cpu::AttentionDims& d,
                                  std::vector<Arg>* keep) {
  tg::cpu::AttentionMask mask;
  if (obj.is_none()) return mask;
  const std::string where = std::string(fn) + ": argument 'mask'";
  if (!py::isinstance<py::array>(obj)) {
    throw py::type_error(where + " must be None or a numpy.ndarray of bool or float32, got " + type_name(obj));
  }
  auto arr = py::reinterpret_borrow<py::array>(obj);
  const bool is_bool = arr.dtype().equal(py::dtype::of<bool>());
  if (is_bool) {
    if (!(arr.flags() & py::array::c_style)) {
      throw py::value_error(where + " must be C-contiguous (use numpy.ascontiguousarray)");
    }
    keep->push_back(Arg{arr, Shape(arr.shape(), arr.shape() + arr.ndim()), static_cast<int64_t>(arr.size())});
  } else {
    if (!arr.dtype().equal(py::dtype::of<float>())) {
      throw py::type_error(where + " must have dtype bool or float32, got " + std::string(py::str(arr.dtype())));
    }
    keep->push_back(check_array(fn, "mask", obj, false));
  }
  const Shape& s = keep->back().shape;
  if (s.size() != 3 || (s[0] != 1 && s[0] != d.batch) || (s[1] != 1 && s[1] != d.l) || s[2] != d.s) {
    throw py::value_error(where + " must have shape (Bm, Lm, S) with Bm in {1, " + std::to_string(d.batch) +
                          "}, Lm in {1, " + std::to_string(d.l) + "}, S = " + std::to_string(d.s) + "; got " +
                          shape_str(s));
  }
  mask.batch = s[0];
  mask.rows = s[1];
  if (is_bool) {
    mask.keep = static_cast<const uint8_t*>(arr.data());
  } else {
    mask.add = cdata(keep->back());
  }
  return mask;
}

bool check_bool(const char* fn, const char* name, const py::object& obj) {
  if (!PyBool_Check(obj.ptr())) {
    throw py::type_error(std::string(fn) + ": argument '" + name + "' must be a bool, got " + type_name(obj));
  }
  return obj.cast<bool>();
}

using Named = std::vector<std::pair<const char*, const Arg*>>;

// No output may share a byte with the mask (bool or float32: its own element size).
void check_mask_disjoint(const char* fn, const std::vector<Arg>& keep, const Named& outs) {
  if (keep.empty()) return;
  const py::array& m = keep[0].arr;
  for (const auto& o : outs) {
    if (tg::glue::overlaps(o.second->arr.data(), o.second->size * 4, m.data(), static_cast<int64_t>(m.nbytes()))) {
      throw py::value_error(std::string(fn) + ": out '" + o.first + "' must not share memory with 'mask'");
    }
  }
}

void sdpa_forward(const py::object& q_obj, const py::object& k_obj, const py::object& v_obj,
                  const py::object& mask_obj, const py::object& causal_obj, const py::object& scale_obj,
                  const py::object& out_obj, const py::object& lse_obj) {
  const char* fn = "tilegrad._cpu.sdpa_forward";
  Arg q = check_array(fn, "q", q_obj, false);
  Arg k = check_array(fn, "k", k_obj, false);
  Arg v = check_array(fn, "v", v_obj, false);
  const auto d = attention_dims(fn, q, k, v);
  std::vector<Arg> keep;
  const auto mask = check_mask(fn, mask_obj, d, &keep);
  const bool causal = check_bool(fn, "is_causal", causal_obj);
  const float scale = check_float(fn, "scale", scale_obj);
  Arg out = check_array(fn, "out", out_obj, true);
  Arg lse = check_array(fn, "lse", lse_obj, true);
  check_shape(fn, "out", out, {d.batch, d.l, d.ev});
  check_shape(fn, "lse", lse, {d.batch, d.l});
  const Named outs{{"out", &out}, {"lse", &lse}};
  check_disjoint(fn, outs, {{"q", &q}, {"k", &k}, {"v", &v}});
  check_mask_disjoint(fn, keep, outs);
  const float* qp = cdata(q);
  const float* kp = cdata(k);
  const float* vp = cdata(v);
  float* op = mdata(out);
  float* lp = mdata(lse);
  py::gil_scoped_release nogil;
  tg::cpu::sdpa_forward(qp, kp, vp, mask, causal, scale, d, op, lp);
}

void sdpa_backward(const py::object& q_obj, const py::object& k_obj, const py::object& v_obj,
                   const py::object& mask_obj, const py::object& causal_obj, const py::object& scale_obj,
                   const py::object& out_obj, const py::object& lse_obj, const py::object& gout_obj,
                   const py::object& gq_obj, const py::object& gk_obj, const py::object& gv_obj) {
  const char* fn = "tilegrad._cpu.sdpa_backward";
  Arg q = check_array(fn, "q", q_obj, false);
  Arg k = check_array(fn, "k", k_obj, false);
  Arg v = check_array(fn, "v", v_obj, false);
  const auto d = attention_dims(fn, q, k, v);
  std::vector<Arg> keep;
  const auto mask = check_mask(fn, mask_obj, d, &keep);
  const bool causal = check_bool(fn, "is_causal", causal_obj);
  const float scale = check_float(fn, "scale", scale_obj);
  Arg out = check_array(fn, "out", out_obj, false);
  Arg lse = check_array(fn, "lse", lse_obj, false);
  Arg gout = check_array(fn, "gout", gout_obj, false);
  Arg gq = check_array(fn, "gq", gq_obj, true);
  Arg gk = check_array(fn, "gk", gk_obj, true);
  Arg gv = check_array(fn, "gv", gv_obj, true);
  check_shape(fn, "out", out, {d.batch, d.l, d.ev});
  check_shape(fn, "lse", lse, {d.batch, d.l});
  check_shape(fn, "gout", gout, {d.batch, d.l, d.ev});
  check_shape(fn, "gq", gq, q.shape);
  check_shape(fn, "gk", gk, k.shape);
  check_shape(fn, "gv", gv, v.shape);
  const Named outs{{"gq", &gq}, {"gk", &gk}, {"gv", &gv}};
  check_disjoint(fn, outs, {{"q", &q}, {"k", &k}, {"v", &v}, {"out", &out}, {"lse", &lse}, {"gout", &gout}});
  check_mask_disjoint(fn, keep, outs);
  const float* qp = cdata(q);
  const float* kp = cdata(k);
  const float* vp = cdata(v);
  const float* op = cdata(out);
  const float* lp = cdata(lse);
  const float* gp = cdata(gout);
  float* gqp = mdata(gq);
  float* gkp = mdata(gk);
  float* gvp = mdata(gv);
  py::gil_scoped_release nogil;
  tg::cpu::sdpa_backward(qp, kp, vp, mask, causal, scale, d, op, lp, gp, gqp, gkp, gvp);
}

}  // namespace

void tg::cpu_glue::bind_attention(py::module_& m) {
  m.def("sdpa_forward", &sdpa_forward, py::arg("q"), py::arg("k"), py::arg("v"), py::arg("mask"),
        py::arg("is_causal"), py::arg("scale"), py::arg("out"), py::arg("lse"),
        "out (B, L, Ev) = softmax(scale * q k^T + mask) v and lse (B, L), the log-sum-exp of each row of "
        "the scaled, masked scores, for q (B, L, E), k (B, S, E), v (B, S, Ev). mask: None or (Bm, Lm, S) "
        "with Bm in {1, B}, Lm in {1, L}, bool (True: may attend) or float32 (added). is_causal masks key "
        "j > query i. A fully masked row gives 0 and lse -inf. Outputs share memory with no input.");
  m.def("sdpa_backward", &sdpa_backward, py::arg("q"), py::arg("k"), py::arg("v"), py::arg("mask"),
        py::arg("is_causal"), py::arg("scale"), py::arg("out"), py::arg("lse"), py::arg("gout"), py::arg("gq"),
        py::arg("gk"), py::arg("gv"),
        "gq, gk, gv: the gradients of sdpa_forward for gout (B, L, Ev), given its out and lse; the "
        "probabilities are recomputed tile by tile. Outputs share memory with no input or each other.");
}
