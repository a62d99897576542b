// tilegrad._cuda bindings: relu and matmul (kernel versions).
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

void relu(const py::object& x_obj, const py::object& out_obj, const py::object& stream_obj) {
  const char* fn = "tilegrad._cuda.relu";
  DevArray x = check_array(fn, "x", x_obj, false);
  DevArray out = check_array(fn, "out", out_obj, true);
  tg::glue::check_same_shapes(fn, {"x", "out"}, {x.shape, out.shape});
  tg::glue::check_inplace_ok(fn, "x", cptr(x), mptr(out), x.size * 4);
  void* stream = to_stream(fn, stream_obj);
  if (x.size == 0) return;
  int err;
  {
    py::gil_scoped_release nogil;
    err = tg_cuda_relu(cptr(x), mptr(out), x.size, stream);
  }
  check_cuda(fn, err);
}

void relu_backward(const py::object& x_obj, const py::object& gy_obj, const py::object& out_obj,
                   const py::object& stream_obj) {
  const char* fn = "tilegrad._cuda.relu_backward";
  DevArray x = check_array(fn, "x", x_obj, false);
  DevArray gy = check_array(fn, "gy", gy_obj, false);
  DevArray out = check_array(fn, "out", out_obj, true);
  tg::glue::check_same_shapes(fn, {"x", "gy", "out"}, {x.shape, gy.shape, out.shape});
  tg::glue::check_inplace_ok(fn, "x", cptr(x), mptr(out), x.size * 4);
  tg::glue::check_inplace_ok(fn, "gy", cptr(gy), mptr(out), x.size * 4);
  void* stream = to_stream(fn, stream_obj);
  if (x.size == 0) return;
  int err;
  {
    py::gil_scoped_release nogil;
    err = tg_cuda_relu_backward(cptr(x), cptr(gy), mptr(out), x.size, stream);
  }
  check_cuda(fn, err);
}

// The matmul kernel versions (matmul.cu, matmul_v2.cu, matmul_tf32.cu); 0 picks the default, the
// fastest float32-exact one measured. v1 stays the default until v2 has been timed against it on a
// GPU; v3 (TF32) is never the default: it rounds the inputs.
constexpr int kMatmulDefault = 1;
constexpr int kMatmulVersions = 3;

void matmul(const py::object& a_obj, const py::object& b_obj, const py::object& out_obj,
            const py::object& stream_obj, const py::object& version_obj) {
  const char* fn = "tilegrad._cuda.matmul";
  DevArray a = check_array(fn, "a", a_obj, false);
  DevArray b = check_array(fn, "b", b_obj, false);
  DevArray out = check_array(fn, "out", out_obj, true);
  const auto d = tg::glue::matmul_dims(fn, a.shape, b.shape, out.shape);
  if (tg::glue::overlaps(mptr(out), out.size * 4, cptr(a), a.size * 4) ||
      tg::glue::overlaps(mptr(out), out.size * 4, cptr(b), b.size * 4)) {
    throw py::value_error(std::string(fn) + ": out must not share memory with a or b");
  }
  void* stream = to_stream(fn, stream_obj);
  int64_t version = check_int(fn, "version", version_obj);
  if (version < 0 || version > kMatmulVersions) {
    throw py::value_error(std::string(fn) + ": version must be 0 (the default kernel) or 1.." +
                          std::to_string(kMatmulVersions) + ", got " + std::to_string(version));
  }
  if (version == 0) version = kMatmulDefault;
  if (out.size == 0) return;
  int err;
  {
    py::gil_scoped_release nogil;
    auto launch = version == 3 ? tg_cuda_matmul_tf32 : version == 2 ? tg_cuda_matmul_v2 : tg_cuda_matmul;
    err = launch(cptr(a), cptr(b), mptr(out), d.batch, d.m, d.n, d.k, stream);
  }
  check_cuda(fn, err);
}

}  // namespace

void tg::cuda_glue::bind_core(py::module_& m) {
  m.def("relu", &relu, py::arg("x"), py::arg("out"), py::arg("stream") = 0,
        "out[...] = max(x, 0) on the GPU. float32, C-contiguous, identical shapes; out may be x.");
  m.def("relu_backward", &relu_backward, py::arg("x"), py::arg("gy"), py::arg("out"),
        py::arg("stream") = 0,
        "out[...] = gy where x > 0 else 0 on the GPU. float32, C-contiguous, identical shapes.");
  m.def("matmul", &matmul, py::arg("a"), py::arg("b"), py::arg("out"), py::arg("stream") = 0, py::kw_only(),
        py::arg("version") = 0,
        "out = a @ b on the GPU for (M, K) @ (K, N) -> (M, N) or batched (B, M, K) @ (B, K, N) -> "
        "(B, M, N). float32, C-contiguous; out must not overlap a or b. version: 0 the default kernel, "
        "1 or 2 a specific float32 one (for tests and timing), 3 the TF32 tensor-core kernel (inputs "
        "rounded to TF32: about 1e-3 relative error; opt-in only).");
}
