// tilegrad._cpu bindings: the host caching allocator (kernels/cpu/host_cache.cpp)
// installed as NumPy's data allocator (NEP 49, NumPy >= 1.22), so the arrays the
// kernels return, and every other large NumPy array of the installing context,
// reuse freed blocks instead of page-faulting fresh memory.
#define NPY_NO_DEPRECATED_API NPY_1_22_API_VERSION
#include <pybind11/pybind11.h>

#include <numpy/arrayobject.h>

#include <cstring>
#include <limits>
#include <string>

#include "bindings.h"
#include "host_cache.h"

namespace py = pybind11;

namespace {

void* cache_malloc(void*, size_t size) { return tg::cpu::host_cache().allocate(size); }

void* cache_calloc(void*, size_t nelem, size_t elsize) {
  if (elsize != 0 && nelem > std::numeric_limits<size_t>::max() / elsize) return nullptr;
  const size_t bytes = nelem * elsize;
  void* p = tg::cpu::host_cache().allocate(bytes);
  if (p != nullptr) std::memset(p, 0, bytes == 0 ? 1 : bytes);
  return p;
}

void* cache_realloc(void*, void* ptr, size_t size) { return tg::cpu::host_cache().reallocate(ptr, size); }

void cache_free(void*, void* ptr, size_t) { tg::cpu::host_cache().deallocate(ptr); }

PyDataMem_Handler handler = {
    "tilegrad_host_cache", 1, {nullptr, cache_malloc, cache_calloc, cache_realloc, cache_free}};

void ensure_numpy_api() {
  static bool ready = false;
  if (!ready) {
    if (_import_array() < 0) throw py::error_already_set();
    ready = true;
  }
}

// Sets NumPy's allocator of the current context (PyDataMem_SetHandler) to the cache, or back
// to NumPy's default; arrays keep the allocator that made them, so switching is always safe.
void set_numpy_allocator(bool use_cache) {
  ensure_numpy_api();
  PyObject* capsule = nullptr;
  if (use_cache) {
    capsule = PyCapsule_New(&handler, "mem_handler", nullptr);
    if (capsule == nullptr) throw py::error_already_set();
  }
  PyObject* old = PyDataMem_SetHandler(capsule);
  Py_XDECREF(capsule);
  if (old == nullptr) throw py::error_already_set();
  Py_DECREF(old);
}

}  // namespace

void tg::cpu_glue::bind_host_cache(py::module_& m) {
  m.def("host_cache_install", [] { set_numpy_allocator(true); },
        "Make the host cache NumPy's data allocator in the current context (thread / task).");
  m.def("host_cache_uninstall", [] { set_numpy_allocator(false); },
        "Restore NumPy's default allocator in the current context.");
  m.def("host_cache_release", [] { tg::cpu::host_cache().release(); },
        "Free every cached block (blocks in use are untouched).");
  m.def("host_cache_set_limit", [](py::object limit) {
          if (PyBool_Check(limit.ptr()) || !PyLong_Check(limit.ptr())) {
            throw py::type_error("tilegrad._cpu.host_cache_set_limit: limit must be an int (bytes)");
          }
          const long long v = limit.cast<long long>();
          if (v < 0) throw py::value_error("tilegrad._cpu.host_cache_set_limit: limit must be >= 0");
          tg::cpu::host_cache().set_limit(static_cast<size_t>(v));
        }, py::arg("limit"), "Most bytes of freed blocks to keep (0: keep none).");
  m.def("host_cache_stats", [] {
          const auto s = tg::cpu::host_cache().stats();
          py::dict d;
          d["cached_bytes"] = s.cached_bytes;
          d["live_bytes"] = s.live_bytes;
          d["limit_bytes"] = s.limit_bytes;
          d["hits"] = s.hits;
          d["misses"] = s.misses;
          return d;
        }, "Counters of the host cache: cached, live and limit bytes; hits and misses of large requests.");
}
