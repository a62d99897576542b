// tilegrad._cuda bindings: scaled dot-product attention forward and backward
// (kernels/cuda/attention*.cu).
//
// Element types: q, k, v, out, gout, gq, gk, gv share one: float32 ('<f4'), float16 ('<f2') or
// bfloat16, which CUDA array producers without a bfloat16 type (CuPy) hand over as uint16
// ('<u2'): such arrays are accepted only with dtype="bfloat16" said explicitly. float32 has
// the forward and backward kernels v1 and v2; float16 / bfloat16 v3 and v4 (tensor cores, E == Ev
// == 64 or 128, 4-byte aligned arrays; gq, gk, gv in the input type): v4, the default, is the
// pipelined forward, and shares v3's backward.
// lse and delta are float32; the mask is bool ('|b1', true = may attend) or float32 (added to
// the scores).
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

const ArrayType kBool{"|b1", "bool", 1};

constexpr int kSdpaDefault = 2;      // the tiled float32 kernels
constexpr int kSdpaHalfFirst = 3;    // the tensor-core float16 / bfloat16 kernels: 3 and 4
constexpr int kSdpaHalfVersion = 4;  // their default: the pipelined forward (v3's backward)
constexpr int kSdpaVersions = 4;
const char* const kDtypeNames[] = {"float32", "float16", "bfloat16"};

using Named = std::vector<std::pair<const char*, const DevArray*>>;

// The element type of q (and of every array of its kind): TG_DTYPE_*.
int resolve_dtype(const char* fn, const DevArray& q, const py::object& dtype_obj) {
  const char* const* names = kDtypeNames;
  int wanted = -1;
  if (!dtype_obj.is_none()) {
    if (!py::isinstance<py::str>(dtype_obj)) {
      throw py::type_error(std::string(fn) + ": argument 'dtype' must be None or a str, got " + type_name(dtype_obj));
    }
    const std::string d = dtype_obj.cast<std::string>();
    for (int i = 0; i < 3; ++i) {
      if (d == names[i]) wanted = i;
    }
    if (wanted < 0) {
      throw py::value_error(std::string(fn) + ": dtype must be None, 'float32', 'float16' or 'bfloat16', got '" + d +
                            "'");
    }
  }
  const int got = q.dtype;  // index into {float32, float16, bfloat16-as-uint16}
  if (got == TG_DTYPE_BF16 && wanted != TG_DTYPE_BF16) {
    throw py::type_error(std::string(fn) + ": argument 'q' is a uint16 array, accepted only as bfloat16 with "
                         "dtype='bfloat16'");
  }
  if (wanted >= 0 && wanted != got) {
    throw py::type_error(std::string(fn) + ": dtype='" + names[wanted] + "' but argument 'q' holds " + names[got]);
  }
  return got;
}

// float16 / bfloat16 arrays of the tensor-core kernel: E == Ev == 64 or 128, 4-byte aligned.
void check_half_layout(const char* fn, const TgSdpa& a, const Named& arrays) {
  if (a.head_dim != a.v_dim || (a.head_dim != 64 && a.head_dim != 128)) {
    throw py::value_error(std::string(fn) + ": the " + kDtypeNames[a.dtype] + " kernel needs E == Ev == 64 or 128, " +
                          "got E " + std::to_string(a.head_dim) + ", Ev " + std::to_string(a.v_dim));
  }
  for (const auto& named : arrays) {
    if (named.second->ptr % 4 != 0) {
      throw py::value_error(std::string(fn) + ": argument '" + named.first + "' must be 4-byte aligned for the " +
                            kDtypeNames[a.dtype] + " kernel");
    }
  }
}

const ArrayType& type_of(int dtype) {
  static const ArrayType types[] = {kFloat32, kFloat16, kBFloat16U};
  return types[dtype];
}

// What forward and backward share: q, k, v, mask, is_causal, scale, checked and in `a`.
struct Inputs {
  DevArray q, k, v, mask;
  bool has_mask = false;
  TgSdpa a{};
};

Inputs check_inputs(const char* fn, const py::object& q_obj, const py::object& k_obj, const py::object& v_obj,
                    const py::object& mask_obj, const py::object& causal_obj, const py::object& scale_obj,
                    const py::object& dtype_obj) {
  Inputs in;
  in.q = check_typed_array(fn, "q", q_obj, false, {kFloat32, kFloat16, kBFloat16U});
  const int dtype = resolve_dtype(fn, in.q, dtype_obj);
  in.k = check_typed_array(fn, "k", k_obj, false, {type_of(dtype)});
  in.v = check_typed_array(fn, "v", v_obj, false, {type_of(dtype)});
  const Shape &q = in.q.shape, &k = in.k.shape, &v = in.v.shape;
  if (q.size() != 3 || k.size() != 3 || v.size() != 3 || k[0] != q[0] || v[0] != q[0] || k[2] != q[2] ||
      v[1] != k[1]) {
    throw py::value_error(std::string(fn) + ": expected q (B, L, E), k (B, S, E), v (B, S, Ev), got q " +
                          tg::glue::shape_str(q) + ", k " + tg::glue::shape_str(k) + ", v " + tg::glue::shape_str(v));
  }
  if (q[2] > TG_SDPA_MAX_HEAD_DIM || v[2] > TG_SDPA_MAX_HEAD_DIM) {
    throw py::value_error(std::string(fn) + ": head dims E and Ev must be at most " +
                          std::to_string(TG_SDPA_MAX_HEAD_DIM) + ", got E " + std::to_string(q[2]) + ", Ev " +
                          std::to_string(v[2]));
  }
  TgSdpa& a = in.a;
  a.batch = q[0];
  a.q_len = q[1];
  a.kv_len = k[1];
  a.head_dim = q[2];
  a.v_dim = v[2];
  a.dtype = dtype;
  a.q = cvoid(in.q);
  a.k = cvoid(in.k);
  a.v = cvoid(in.v);
  a.mask_kind = TG_MASK_NONE;
  if (!mask_obj.is_none()) {
    in.mask = check_typed_array(fn, "mask", mask_obj, false, {kBool, kFloat32});
    const Shape& m = in.mask.shape;
    const Shape full{a.batch, a.q_len, a.kv_len};
    bool ok = m.size() == 3;
    for (size_t i = 0; ok && i < 3; ++i) ok = m[i] == 1 || m[i] == full[i];
    if (!ok) {
      throw py::value_error(std::string(fn) + ": 'mask' must have shape (B, L, S) = " + tg::glue::shape_str(full) +
                            " or 1 in any of those dims (broadcast), got " + tg::glue::shape_str(m));
    }
    in.has_mask = true;
    a.mask = cvoid(in.mask);
    a.mask_kind = in.mask.dtype == 0 ? TG_MASK_BOOL : TG_MASK_ADD;
    a.mask_stride_s = m[2] == 1 ? 0 : 1;
    a.mask_stride_l = m[1] == 1 ? 0 : m[2];
    a.mask_stride_b = m[0] == 1 ? 0 : m[1] * m[2];
  }
  a.is_causal = check_bool(fn, "is_causal", causal_obj) ? 1 : 0;
  a.scale = static_cast<float>(check_real(fn, "scale", scale_obj));
  return in;
}

Named input_list(const Inputs& in) {
  Named ins{{"q", &in.q}, {"k", &in.k}, {"v", &in.v}};
  if (in.has_mask) ins.push_back({"mask", &in.mask});
  return ins;
}

// Versions 1 and 2 are float32 kernels, 3 and 4 the float16 / bfloat16 ones; 0 picks the default.
int check_version(const char* fn, const py::object& version_obj, int dtype) {
  const int64_t version = check_int(fn, "version", version_obj);
  if (version < 0 || version > kSdpaVersions) {
    throw py::value_error(std::string(fn) + ": version must be 0 (the default kernel) or 1.." +
                          std::to_string(kSdpaVersions) + ", got " + std::to_string(version));
  }
  const bool half = dtype != TG_DTYPE_F32;
  if (version == 0) return half ? kSdpaHalfVersion : kSdpaDefault;
  if (half != (version >= kSdpaHalfFirst)) {
    throw py::type_error(std::string(fn) + ": version " + std::to_string(version) + " does not take " +
                         kDtypeNames[dtype] + " (versions 1 and 2: float32; 3 and 4: float16 / bfloat16)");
  }
  return static_cast<int>(version);
}

void sdpa_forward(const py::object& q, const py::object& k, const py::object& v, const py::object& mask,
                  const py::object& is_causal, const py::object& scale, const py::object& out_obj,
                  const py::object& lse_obj, const py::object& stream_obj, const py::object& version_obj,
                  const py::object& dtype_obj) {
  const char* fn = "tilegrad._cuda.sdpa_forward";
  Inputs in = check_inputs(fn, q, k, v, mask, is_causal, scale, dtype_obj);
  TgSdpa& a = in.a;
  DevArray out = check_typed_array(fn, "out", out_obj, true, {type_of(a.dtype)});
  DevArray lse = check_array(fn, "lse", lse_obj, true);
  check_shape(fn, "out", out, {a.batch, a.q_len, a.v_dim});
  check_shape(fn, "lse", lse, {a.batch, a.q_len});
  check_disjoint(fn, {{"out", &out}, {"lse", &lse}}, input_list(in));
  if (a.dtype != TG_DTYPE_F32) check_half_layout(fn, a, {{"q", &in.q}, {"k", &in.k}, {"v", &in.v}, {"out", &out}});
  void* stream = to_stream(fn, stream_obj);
  const int version = check_version(fn, version_obj, a.dtype);
  a.out = mvoid(out);
  a.lse = mptr(lse);
  if (a.batch == 0 || a.q_len == 0) return;
  int err;
  {
    py::gil_scoped_release nogil;
    err = tg_cuda_sdpa_forward(&a, version, stream);
  }
  check_cuda(fn, err);
}

void sdpa_backward(const py::object& q, const py::object& k, const py::object& v, const py::object& mask,
                   const py::object& is_causal, const py::object& scale, const py::object& out_obj,
                   const py::object& lse_obj, const py::object& gout_obj, const py::object& delta_obj,
                   const py::object& gq_obj, const py::object& gk_obj, const py::object& gv_obj,
                   const py::object& stream_obj, const py::object& version_obj, const py::object& dtype_obj) {
  const char* fn = "tilegrad._cuda.sdpa_backward";
  Inputs in = check_inputs(fn, q, k, v, mask, is_causal, scale, dtype_obj);
  TgSdpa& a = in.a;
  const ArrayType& t = type_of(a.dtype);
  DevArray out = check_typed_array(fn, "out", out_obj, false, {t});
  DevArray lse = check_array(fn, "lse", lse_obj, false);
  DevArray gout = check_typed_array(fn, "gout", gout_obj, false, {t});
  DevArray delta = check_array(fn, "delta", delta_obj, true);
  DevArray gq = check_typed_array(fn, "gq", gq_obj, true, {t});
  DevArray gk = check_typed_array(fn, "gk", gk_obj, true, {t});
  DevArray gv = check_typed_array(fn, "gv", gv_obj, true, {t});
  const Shape rows{a.batch, a.q_len};
  check_shape(fn, "out", out, {a.batch, a.q_len, a.v_dim});
  check_shape(fn, "lse", lse, rows);
  check_shape(fn, "gout", gout, {a.batch, a.q_len, a.v_dim});
  check_shape(fn, "delta", delta, rows);
  check_shape(fn, "gq", gq, in.q.shape);
  check_shape(fn, "gk", gk, in.k.shape);
  check_shape(fn, "gv", gv, in.v.shape);
  Named ins = input_list(in);
  ins.insert(ins.end(), {{"out", &out}, {"lse", &lse}, {"gout", &gout}});
  check_disjoint(fn, {{"delta", &delta}, {"gq", &gq}, {"gk", &gk}, {"gv", &gv}}, ins);
  if (a.dtype != TG_DTYPE_F32) {
    check_half_layout(fn, a, {{"q", &in.q}, {"k", &in.k}, {"v", &in.v}, {"out", &out}, {"gout", &gout}, {"gq", &gq},
                              {"gk", &gk}, {"gv", &gv}});
  }
  void* stream = to_stream(fn, stream_obj);
  const int version = check_version(fn, version_obj, a.dtype);
  a.out = mvoid(out);
  a.lse = const_cast<float*>(cptr(lse));  // read only by the backward
  a.gout = cvoid(gout);
  a.delta = mptr(delta);
  a.gq = mvoid(gq);
  a.gk = mvoid(gk);
  a.gv = mvoid(gv);
  if (a.batch == 0 || (a.q_len == 0 && a.kv_len == 0)) return;
  int err;
  {
    py::gil_scoped_release nogil;
    err = tg_cuda_sdpa_backward(&a, version, stream);
  }
  check_cuda(fn, err);
}

}  // namespace

void tg::cuda_glue::bind_attention(py::module_& m) {
  m.def("sdpa_forward", &sdpa_forward, py::arg("q"), py::arg("k"), py::arg("v"), py::arg("mask"),
        py::arg("is_causal"), py::arg("scale"), py::arg("out"), py::arg("lse"), py::arg("stream") = 0,
        py::kw_only(), py::arg("version") = 0, py::arg("dtype") = py::none(),
        "Scaled dot-product attention on the GPU without storing the L x S scores: "
        "out = softmax(scale * q @ k^T + mask) @ v for q (B, L, E), k (B, S, E), v (B, S, Ev), "
        "E, Ev <= 128; lse (B, L) float32 receives each row's log-sum-exp. mask: None, bool (True = may "
        "attend) or float32 (added), shaped (B, L, S) with any dim 1 to broadcast. is_causal keeps "
        "key <= query (top-left). A row with no key allowed gets NaN and lse -inf. Outputs overlap "
        "nothing. float32: version 0 or 2 the tiled kernel, 1 the simple one. float16 / bfloat16: tensor "
        "cores, E == Ev == 64 or 128, 4-byte aligned q, k, v, out; version 0 or 4 the pipelined kernel, 3 "
        "the earlier one. dtype: None (from q), "
        "'float32', 'float16' or 'bfloat16'; uint16 arrays are bfloat16 and need dtype='bfloat16'.");
  m.def("sdpa_backward", &sdpa_backward, py::arg("q"), py::arg("k"), py::arg("v"), py::arg("mask"),
        py::arg("is_causal"), py::arg("scale"), py::arg("out"), py::arg("lse"), py::arg("gout"), py::arg("delta"),
        py::arg("gq"), py::arg("gk"), py::arg("gv"), py::arg("stream") = 0, py::kw_only(), py::arg("version") = 0,
        py::arg("dtype") = py::none(),
        "Gradients of sdpa_forward from its out and lse: gq, gk, gv (shaped like q, k, v). delta (B, L) "
        "float32 is scratch (receives rowsum(gout * out)). Rows with no key allowed add nothing and get "
        "gq 0. Outputs overlap nothing. float32: version 0 or 2 tiled, 1 simple. float16 / bfloat16: "
        "version 0, 3 or 4 (the same backward), tensor cores, E == Ev == 64 or 128, 4-byte aligned q, k, v, out, gout, gq, gk, gv "
        "(gradients in the input type, bit-reproducible). dtype as for sdpa_forward.");
}
