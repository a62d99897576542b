// The binding families of tilegrad._cpu, one file each (csrc/cpu/bind_*.cpp);
// csrc/cpu_module.cpp calls them all.
#pragma once

#include <pybind11/pybind11.h>

namespace tg {
namespace cpu_glue {

void bind_core(pybind11::module_& m);  // relu, matmul
void bind_nn(pybind11::module_& m);    // softmax, activations, layer norm
void bind_conv(pybind11::module_& m);  // conv2d
void bind_attention(pybind11::module_& m);  // fused scaled dot-product attention

}  // namespace cpu_glue
}  // namespace tg
