// The binding families of tilegrad._cpu, one file each (csrc/cpu/bind_*.cpp);
// csrc/cpu_module.cpp calls them all.
#pragma once

#include <pybind11/pybind11.h>

namespace tg {
namespace cpu_glue {

void bind_core(pybind11::module_& m);  // relu, matmul
void bind_nn(pybind11::module_& m);    // softmax, activations, layer norm
void bind_conv(pybind11::module_& m);  // conv2d
void bind_optim(pybind11::module_& m); // optimizer steps
void bind_epilogue(pybind11::module_& m);  // bias + activation epilogue
void bind_host_cache(pybind11::module_& m);  // NumPy allocator with a cache of large blocks
void bind_pool(pybind11::module_& m);  // max / average 2-D pooling
void bind_loss(pybind11::module_& m);  // fused cross-entropy
void bind_attention(pybind11::module_& m);  // fused scaled dot-product attention

}  // namespace cpu_glue
}  // namespace tg
