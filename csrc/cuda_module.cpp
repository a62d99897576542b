// tilegrad._cuda: pybind11 bindings of kernels/cuda.
//
// Compiled by the host C++ compiler alone: it talks to the CUDA objects only
// through the plain C functions of tg_cuda.h. Arrays are any objects with a
// __cuda_array_interface__ (CuPy, PyTorch, ...); the dict is parsed and every
// argument checked here before any CUDA call, then the kernel is queued on the
// given stream without synchronising.
#include <pybind11/pybind11.h>

#include "cuda/bindings.h"

PYBIND11_MODULE(_cuda, m) {
  m.doc() = "tilegrad CUDA kernels. Arrays are objects with __cuda_array_interface__; "
            "launches are queued on `stream` and not synchronised.";
  tg::cuda_glue::bind_core(m);
  tg::cuda_glue::bind_matmul(m);
  tg::cuda_glue::bind_nn(m);
  tg::cuda_glue::bind_conv(m);
  tg::cuda_glue::bind_pool(m);
  tg::cuda_glue::bind_optim(m);
  tg::cuda_glue::bind_attention(m);
  tg::cuda_glue::bind_loss(m);
  tg::cuda_glue::bind_device(m);
  tg::cuda_glue::bind_matmul16(m);
}
