// tilegrad._cpu bindings: relu and matmul.
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

// The shape of the matrix a transposed operand stands for (its last two dims swapped).
Shape logical_shape(const Shape& s, bool transposed) {
  Shape out = s;
  if (transposed && out.size() >= 2) std::swap(out[out.size() - 1], out[out.size() - 2]);
  return out;
}

void matmul(const py::object& a_obj, const py::object& b_obj, const py::object& out_obj,
            const py::object& trans_a_obj, const py::object& trans_b_obj) {
  const char* fn = "tilegrad._cpu.matmul";
  Arg a = check_array(fn, "a", a_obj, false);
  Arg b = check_array(fn, "b", b_obj, false);
  Arg out = check_array(fn, "out", out_obj, true);
  const bool trans_a = check_bool(fn, "trans_a", trans_a_obj);
  const bool trans_b = check_bool(fn, "trans_b", trans_b_obj);
  // (shape errors name the operands as the product sees them, after transposing)
  const auto d = tg::glue::matmul_dims(fn, logical_shape(a.shape, trans_a), logical_shape(b.shape, trans_b),
                                       out.shape);
  const float* ap = cdata(a);
  const float* bp = cdata(b);
  float* op = mdata(out);
  if (tg::glue::overlaps(op, out.size * 4, ap, a.size * 4) ||
      tg::glue::overlaps(op, out.size * 4, bp, b.size * 4)) {
    throw py::value_error(std::string(fn) + ": out must not share memory with a or b");
  }
  py::gil_scoped_release nogil;
  tg::cpu::matmul(ap, bp, op, d.batch, d.m, d.n, d.k, trans_a, trans_b);
}

}  // namespace

void tg::cpu_glue::bind_core(py::module_& m) {
  m.def("relu", &relu, py::arg("x"), py::arg("out"),
        "out[...] = max(x, 0). float32, C-contiguous, identical shapes; out may be x.");
  m.def("relu_backward", &relu_backward, py::arg("x"), py::arg("gy"), py::arg("out"),
        "out[...] = gy where x > 0 else 0. float32, C-contiguous, identical shapes.");
  m.def("matmul", &matmul, py::arg("a"), py::arg("b"), py::arg("out"), py::kw_only(),
        py::arg("trans_a") = false, py::arg("trans_b") = false,
        "out = A @ B for A (M, K), B (K, N), out (M, N), or batched (B, M, K) @ (B, K, N) -> "
        "(B, M, N). A is a, or a's last two dims swapped when trans_a (a then holds (..., K, M) "
        "C-contiguous: a transposed view needs no copy); likewise B and trans_b. float32, "
        "C-contiguous; out must not overlap a or b.");
}
