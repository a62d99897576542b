// The binding families of tilegrad._cuda, one file each (csrc/cuda/bind_*.cpp);
// csrc/cuda_module.cpp calls them all.
#pragma once

#include <pybind11/pybind11.h>

namespace tg {
namespace cuda_glue {

void bind_core(pybind11::module_& m);    // relu
void bind_matmul(pybind11::module_& m);  // float32 matmul (transposes, bias + activation), bias_act
void bind_nn(pybind11::module_& m);      // softmax, activations, layer norm
void bind_conv(pybind11::module_& m);    // conv2d and its backwards
void bind_pool(pybind11::module_& m);    // max / avg 2-D pooling
void bind_optim(pybind11::module_& m);   // fused optimizer steps
void bind_attention(pybind11::module_& m);  // scaled dot-product attention
void bind_loss(pybind11::module_& m);    // fused cross-entropy
void bind_device(pybind11::module_& m);  // device and build queries
void bind_matmul16(pybind11::module_& m);  // float16 / bfloat16 tensor-core matmul

}  // namespace cuda_glue
}  // namespace tg
