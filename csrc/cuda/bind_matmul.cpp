// tilegrad._cuda bindings: the float32 matmul kernels (transposed operands read in place, the
// fused bias + activation epilogue) and the same epilogue on its own, in place (bias_act).
#include <pybind11/pybind11.h>

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

// The matmul kernel versions (matmul.cu, matmul_v2.cu, matmul_tf32.cu); 0 picks the default, the
// fastest float32-exact one measured. v1 stays the default until v2 has been timed against it on a
// GPU; v3 (TF32) is never the default: it rounds the inputs.
constexpr int kMatmulDefault = 1;
constexpr int kMatmulVersions = 3;

// The shape of the matrix a transposed operand stands for (its last two dims swapped).
Shape logical_shape(const Shape& s, bool transposed) {
  Shape out = s;
  if (transposed && out.size() >= 2) std::swap(out[out.size() - 1], out[out.size() - 2]);
  return out;
}

void matmul(const py::object& a_obj, const py::object& b_obj, const py::object& out_obj, const py::object& stream_obj,
            const py::object& version_obj, const py::object& trans_a_obj, const py::object& trans_b_obj,
            const py::object& bias_obj, const py::object& act_obj) {
  const char* fn = "tilegrad._cuda.matmul";
  DevArray a = check_array(fn, "a", a_obj, false);
  DevArray b = check_array(fn, "b", b_obj, false);
  DevArray out = check_array(fn, "out", out_obj, true);
  const bool trans_a = check_bool(fn, "trans_a", trans_a_obj);
  const bool trans_b = check_bool(fn, "trans_b", trans_b_obj);
  // (shape errors name the operands as the product sees them, after transposing)
  const auto d = tg::glue::matmul_dims(fn, logical_shape(a.shape, trans_a), logical_shape(b.shape, trans_b),
                                       out.shape);
  std::vector<DevArray> bias;  // empty: no bias
  if (!bias_obj.is_none()) {
    bias.push_back(check_array(fn, "bias", bias_obj, false));
    check_shape(fn, "bias", bias[0], Shape{d.n});
  }
  const int act = activation_code(fn, act_obj);
  std::vector<std::pair<const char*, const DevArray*>> ins{{"a", &a}, {"b", &b}};
  if (!bias.empty()) ins.push_back({"bias", &bias[0]});
  check_disjoint(fn, {{"out", &out}}, ins);
  void* stream = to_stream(fn, stream_obj);
  int64_t version = check_int(fn, "version", version_obj);
  if (version < 0 || version > kMatmulVersions) {
    throw py::value_error(std::string(fn) + ": version must be 0 (the default kernel) or 1.." +
                          std::to_string(kMatmulVersions) + ", got " + std::to_string(version));
  }
  if (version == 0) version = kMatmulDefault;
  if (out.size == 0) return;
  const float* bias_ptr = bias.empty() ? nullptr : cptr(bias[0]);
  int err;
  {
    py::gil_scoped_release nogil;
    auto launch = version == 3 ? tg_cuda_matmul_tf32 : version == 2 ? tg_cuda_matmul_v2 : tg_cuda_matmul;
    err = launch(cptr(a), cptr(b), bias_ptr, mptr(out), d.batch, d.m, d.n, d.k, trans_a, trans_b, act, stream);
  }
  check_cuda(fn, err);
}

void bias_act(const py::object& y_obj, const py::object& bias_obj, const py::object& dim_obj,
              const py::object& act_obj, const py::object& stream_obj) {
  const char* fn = "tilegrad._cuda.bias_act";
  DevArray y = check_array(fn, "y", y_obj, true);
  // y as (outer, channels, inner) around dim: the split softmax uses, with its range check.
  const auto [outer, channels, inner] = tg::glue::softmax_dims(fn, y.shape, check_int(fn, "dim", dim_obj));
  const int act = activation_code(fn, act_obj);
  std::vector<DevArray> bias;
  if (!bias_obj.is_none()) {
    bias.push_back(check_array(fn, "bias", bias_obj, false));
    check_shape(fn, "bias", bias[0], Shape{channels});
    check_disjoint(fn, {{"y", &y}}, {{"bias", &bias[0]}});
  }
  void* stream = to_stream(fn, stream_obj);
  if (y.size == 0) return;
  const float* bias_ptr = bias.empty() ? nullptr : cptr(bias[0]);
  int err;
  {
    py::gil_scoped_release nogil;
    err = tg_cuda_bias_act(mptr(y), bias_ptr, outer, channels, inner, act, stream);
  }
  check_cuda(fn, err);
}

}  // namespace

void tg::cuda_glue::bind_matmul(py::module_& m) {
  m.def("matmul", &matmul, py::arg("a"), py::arg("b"), py::arg("out"), py::arg("stream") = 0, py::kw_only(),
        py::arg("version") = 0, py::arg("trans_a") = false, py::arg("trans_b") = false, py::arg("bias") = py::none(),
        py::arg("activation") = "none",
        "out = activation(A @ B + bias) on the GPU for A (M, K), B (K, N), out (M, N), or batched (B, M, K) @ "
        "(B, K, N) -> (B, M, N). A is a, or a's last two dims swapped when trans_a (a then holds (..., K, M) "
        "C-contiguous: a transposed view needs no copy); likewise B and trans_b. bias: None or float32 (N,), "
        "added to every row; activation: 'none' or 'relu'. float32, C-contiguous; out must not overlap a, b "
        "or bias. version: 0 the default kernel, 1 or 2 a specific float32 one (for tests and timing), 3 the "
        "TF32 tensor-core kernel (inputs rounded to TF32: about 1e-3 relative error; opt-in only).");
  m.def("bias_act", &bias_act, py::arg("y"), py::arg("bias"), py::arg("dim"), py::arg("activation"),
        py::arg("stream") = 0,
        "In place on the GPU: y = activation(y + bias), bias (None or float32 of shape (y.shape[dim],)) added "
        "along dim (Linear: the last dim; NCHW conv: 1). activation: 'none' or 'relu'. y float32, "
        "C-contiguous, writeable; bias does not overlap y.");
}
