// tilegrad._cuda bindings: device and build queries (never raise without a GPU).
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

#ifndef TG_CUDA_ARCHS
#define TG_CUDA_ARCHS
#endif
#define TG_STR2(...) #__VA_ARGS__
#define TG_STR(...) TG_STR2(__VA_ARGS__)

namespace py = pybind11;
using tg::glue::Shape;
using namespace tg::cuda_glue;

namespace {

int device_count() {
  int count = 0;
  int err = tg_cuda_device_count(&count);
  if (err != 0) {
    if (tg_cuda_is_no_device_error(err)) return 0;
    check_cuda("tilegrad._cuda.device_count", err);
  }
  return count;
}

bool is_available() {
  int count = 0;
  return tg_cuda_device_count(&count) == 0 && count > 0;
}

int checked_device(const char* fn, int device) {
  const int count = device_count();
  if (device < 0 || device >= count) {
    throw py::value_error(std::string(fn) + ": device index " + std::to_string(device) +
                          " out of range (" + std::to_string(count) + " CUDA devices)");
  }
  return device;
}

std::string device_name(int device) {
  const char* fn = "tilegrad._cuda.device_name";
  char buf[256];
  check_cuda(fn, tg_cuda_device_name(checked_device(fn, device), buf, sizeof(buf)));
  return buf;
}

py::tuple compute_capability(int device) {
  const char* fn = "tilegrad._cuda.compute_capability";
  int major = 0, minor = 0;
  check_cuda(fn, tg_cuda_compute_capability(checked_device(fn, device), &major, &minor));
  return py::make_tuple(major, minor);
}

int runtime_version() {
  int v = 0;
  check_cuda("tilegrad._cuda.runtime_version", tg_cuda_runtime_version(&v));
  return v;
}

int driver_version() {
  int v = 0;
  if (tg_cuda_driver_version(&v) != 0) return 0;
  return v;
}

std::vector<std::string> compiled_archs() {
  std::vector<std::string> out;
  std::istringstream in(TG_STR(TG_CUDA_ARCHS));
  for (std::string s; in >> s;) out.push_back(s);
  return out;
}

}  // namespace

void tg::cuda_glue::bind_device(py::module_& m) {
  m.def("is_available", &is_available, "True when a CUDA device can be used; never raises.");
  m.def("device_count", &device_count, "Number of CUDA devices (0 without a GPU or driver).");
  m.def("device_name", &device_name, py::arg("device") = 0);
  m.def("compute_capability", &compute_capability, py::arg("device") = 0,
        "(major, minor) of the device.");
  m.def("runtime_version", &runtime_version, "CUDA runtime version linked in, e.g. 13000.");
  m.def("driver_version", &driver_version, "CUDA version the driver supports; 0 without a driver.");
  m.def("compiled_archs", &compiled_archs, "GPU code embedded in the module, e.g. ['sm_80', 'sm_90', 'compute_90', 'sm_90a'] (sm_90a: "
        "the wgmma matmul only).");
}
