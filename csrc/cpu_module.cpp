// tilegrad._cpu: pybind11 bindings of kernels/cpu.
//
// Arguments are taken as plain objects and checked here (no implicit
// conversion or copy): float32 numpy arrays, C-contiguous, aligned, shapes as
// each op requires, out writeable. Kernels run with the GIL released.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdlib>
#include <string>

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
  m.def("isa", [] { return std::string(tg::cpu::isa_name(tg::cpu::active_isa())); },
        "The CPU path the kernels run: 'avx512', 'avx2' or 'generic' (capped by TILEGRAD_CPU_ISA).");
  m.def("num_threads", &tg::cpu::num_threads, "OpenMP threads the kernels use.");
}
