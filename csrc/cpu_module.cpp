// tilegrad._cpu: pybind11 bindings of kernels/cpu.
//
// Arguments are taken as plain objects and checked here (no implicit
// conversion or copy): float32 numpy arrays, C-contiguous, aligned, shapes as
// each op requires, out writeable. Kernels run with the GIL released.
#include <pybind11/pybind11.h>

#include <cstdlib>
#include <string>

#include "cpu/bindings.h"
#include "tg_cpu.h"

namespace py = pybind11;

PYBIND11_MODULE(_cpu, m) {
  m.doc() = "tilegrad CPU kernels (C++, OpenMP, AVX2/AVX-512 chosen at run time).";

  const char* env = std::getenv("TILEGRAD_CPU_ISA");
  tg::cpu::Isa ignored;
  if (env != nullptr && *env != '\0' && !tg::cpu::parse_isa(env, &ignored)) {
    const std::string msg = std::string("TILEGRAD_CPU_ISA='") + env +
                            "' is not one of generic, avx2, avx512; ignoring it";
    if (PyErr_WarnEx(PyExc_RuntimeWarning, msg.c_str(), 1) < 0) throw py::error_already_set();
  }

  tg::cpu_glue::bind_core(m);
  tg::cpu_glue::bind_nn(m);
  tg::cpu_glue::bind_conv(m);
  tg::cpu_glue::bind_optim(m);
  tg::cpu_glue::bind_epilogue(m);
  tg::cpu_glue::bind_host_cache(m);
  tg::cpu_glue::bind_pool(m);
  tg::cpu_glue::bind_loss(m);
  tg::cpu_glue::bind_attention(m);
  m.def("isa", [] { return std::string(tg::cpu::isa_name(tg::cpu::active_isa())); },
        "The CPU path the kernels run: 'avx512', 'avx2' or 'generic' (capped by TILEGRAD_CPU_ISA).");
  m.def("num_threads", &tg::cpu::num_threads, "OpenMP threads the kernels use.");
}
