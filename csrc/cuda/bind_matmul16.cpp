// tilegrad._cuda binding of the float16 / bfloat16 tensor-core matmul (kernels/cuda/matmul_f16.cu):
// matmul_half(a, b, out, stream=0, *, trans_a=False, trans_b=False, bias=None, activation="none",
// bfloat16=False, version=0); version picks the kernel (tg_cuda_matmul_half): 0 automatic, 1 the
// mma.sync kernel, 2 Hopper's wgmma kernel (matmul_wgmma.cu).
//
// Element types: float16 arrays are '<f2'. CUDA array producers without a bfloat16 type (CuPy)
// hand bfloat16 over as its raw bits in uint16 ('<u2') or int16 ('<i2') arrays, accepted only
// with bfloat16=True said explicitly. a, b, out and bias share the 16-bit type; bias is (N,).
#include <pybind11/pybind11.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "args.h"
#include "bindings.h"
#include "tg_cuda.h"

namespace py = pybind11;
using tg::glue::Shape;
using namespace tg::cuda_glue;

namespace {

// One 16-bit array of the call's type: float16, or bfloat16 bits when `bf16`.
DevArray check_half(const char* fn, const char* name, const py::object& obj, bool is_out, bool bf16) {
  DevArray d = check_typed_array(fn, name, obj, is_out, {kFloat16, kBFloat16U, kBFloat16I});
  if (bf16 && d.dtype == 0) {
    throw py::type_error(std::string(fn) + ": argument '" + name + "' is float16 but bfloat16=True (bfloat16 "
                         "arrays are passed as their raw bits, uint16 or int16)");
  }
  if (!bf16 && d.dtype != 0) {
    throw py::type_error(std::string(fn) + ": argument '" + name + "' is a 16-bit integer array, accepted only "
                         "as the raw bits of bfloat16 values with bfloat16=True");
  }
  return d;
}

void matmul_half(const py::object& a_obj, const py::object& b_obj, const py::object& out_obj,
                 const py::object& stream_obj, const py::object& trans_a_obj, const py::object& trans_b_obj,
                 const py::object& bias_obj, const py::object& activation_obj, const py::object& bf16_obj,
                 const py::object& version_obj) {
  const char* fn = "tilegrad._cuda.matmul_half";
  const bool bf16 = check_bool(fn, "bfloat16", bf16_obj);
  const bool trans_a = check_bool(fn, "trans_a", trans_a_obj);
  const bool trans_b = check_bool(fn, "trans_b", trans_b_obj);
  const int act = activation_code(fn, activation_obj);
  const int64_t version = check_int(fn, "version", version_obj);
  if (version < 0 || version > 2) {
    throw py::value_error(std::string(fn) + ": version must be 0 (automatic), 1 (mma.sync) or 2 (wgmma), got " +
                          std::to_string(version));
  }
  DevArray a = check_half(fn, "a", a_obj, false, bf16);
  DevArray b = check_half(fn, "b", b_obj, false, bf16);
  DevArray out = check_half(fn, "out", out_obj, true, bf16);
  const Shape &as = a.shape, &bs = b.shape;
  const size_t nd = as.size();
  const bool batched = nd == 3;
  auto describe = [&] {
    return std::string(trans_a ? "a (K, M)" : "a (M, K)") + " and " + (trans_b ? "b (N, K)" : "b (K, N)") +
           (batched ? " with a leading batch dim" : "") + ", got a " + tg::glue::shape_str(as) + ", b " +
           tg::glue::shape_str(bs);
  };
  if ((nd != 2 && nd != 3) || bs.size() != nd || (batched && as[0] != bs[0])) {
    throw py::value_error(std::string(fn) + ": expected 2-D or (batch, ...) 3-D " + describe());
  }
  const int64_t m = trans_a ? as[nd - 1] : as[nd - 2];
  const int64_t k = trans_a ? as[nd - 2] : as[nd - 1];
  const int64_t kb = trans_b ? bs[nd - 1] : bs[nd - 2];
  const int64_t n = trans_b ? bs[nd - 2] : bs[nd - 1];
  if (k != kb) {
    throw py::value_error(std::string(fn) + ": inner dims differ (K " + std::to_string(k) + " vs " +
                          std::to_string(kb) + "): expected " + describe());
  }
  Shape want = batched ? Shape{as[0], m, n} : Shape{m, n};
  check_shape(fn, "out", out, want);
  if (m > INT32_MAX / 2 || n > INT32_MAX / 2) {
    throw py::value_error(std::string(fn) + ": M and N must be at most " + std::to_string(INT32_MAX / 2));
  }
  std::vector<std::pair<const char*, const DevArray*>> ins{{"a", &a}, {"b", &b}};
  DevArray bias;
  const bool has_bias = !bias_obj.is_none();
  if (has_bias) {
    bias = check_half(fn, "bias", bias_obj, false, bf16);
    check_shape(fn, "bias", bias, {n});
    ins.push_back({"bias", &bias});
  }
  check_disjoint(fn, {{"out", &out}}, ins);
  void* stream = to_stream(fn, stream_obj);

  TgMatmul16 args{};
  args.batch = batched ? as[0] : 1;
  args.m = m;
  args.n = n;
  args.k = k;
  args.dtype = bf16 ? TG_DTYPE_BF16 : TG_DTYPE_F16;
  args.trans_a = trans_a;
  args.trans_b = trans_b;
  args.activation = act;
  args.a = cvoid(a);
  args.b = cvoid(b);
  args.bias = has_bias ? cvoid(bias) : nullptr;
  args.out = mvoid(out);
  if (version == 2 && !tg_cuda_matmul_f16_wgmma_takes(&args)) {
    throw py::value_error(std::string(fn) + ": version=2 (wgmma) needs K and the row length of each stored "
                          "operand to be multiples of 8 and a, b 16-byte aligned; version 0 or 1 takes any shape");
  }
  if (out.size == 0) return;
  if (version == 2 && !tg_cuda_has_wgmma()) {
    throw std::runtime_error(std::string(fn) + ": version=2 (wgmma) needs an sm_90a device (compute capability "
                          "9.0: H100 / H200); version 0 picks the kernel the device runs");
  }
  int err;
  {
    py::gil_scoped_release nogil;
    err = tg_cuda_matmul_half(&args, static_cast<int>(version), stream);
  }
  check_cuda(fn, err);
}

}  // namespace

void tg::cuda_glue::bind_matmul16(py::module_& m) {
  m.def("matmul_half", &matmul_half, py::arg("a"), py::arg("b"), py::arg("out"), py::arg("stream") = 0,
        py::kw_only(), py::arg("trans_a") = false, py::arg("trans_b") = false, py::arg("bias") = py::none(),
        py::arg("activation") = "none", py::arg("bfloat16") = false, py::arg("version") = 0,
        "out = act(op(a) @ op(b) + bias) on the tensor cores (sm_80+), float32 accumulation, rounded to the "
        "input type. a (M, K), or (K, M) read as its transpose when trans_a; b (K, N), or (N, K) when trans_b; "
        "out (M, N); all three may carry a leading batch dim. bias: None or (N,). activation: 'none' or "
        "'relu'. float16 arrays, or with bfloat16=True the raw bits of bfloat16 values as uint16 / int16 "
        "arrays; all of one type, C-contiguous; out overlaps no input. K == 0 gives act(bias) (zeros "
        "without bias). Fastest when K and the stored operands' row lengths are multiples of 8 and a, b "
        "are 16-byte aligned. version: 0 picks the kernel (Hopper's wgmma on a compute capability 9.0 device for "
        "those fast-path shapes, else mma.sync), 1 the mma.sync kernel, 2 the wgmma kernel (fast-path shapes on "
        "an sm_90a device only; for tests and timing).");
}
