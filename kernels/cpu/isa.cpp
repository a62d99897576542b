// Run-time choice of the CPU instruction-set path.
#include <cstdlib>
#include <cstring>

#include <omp.h>

#include "tg_cpu.h"

namespace tg {
namespace cpu {

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::avx512: return "avx512";
    case Isa::avx2: return "avx2";
    default: return "generic";
  }
}

Isa detected_isa() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  // libgcc's checks include the OS having enabled the YMM/ZMM state (XGETBV).
  if (__builtin_cpu_supports("avx512f")) return Isa::avx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Isa::avx2;
#endif
  return Isa::generic;
}

bool parse_isa(const char* text, Isa* out) {
  if (text == nullptr) return false;
  if (std::strcmp(text, "generic") == 0) { *out = Isa::generic; return true; }
  if (std::strcmp(text, "avx2") == 0) { *out = Isa::avx2; return true; }
  if (std::strcmp(text, "avx512") == 0) { *out = Isa::avx512; return true; }
  return false;
}

static Isa resolve_active_isa() {
  Isa best = detected_isa();
  Isa cap;
  if (parse_isa(std::getenv("TILEGRAD_CPU_ISA"), &cap) && static_cast<int>(cap) < static_cast<int>(best)) {
    return cap;
  }
  return best;
}

Isa active_isa() {
  static const Isa isa = resolve_active_isa();  // thread-safe one-time init
  return isa;
}

int num_threads() { return omp_get_max_threads(); }

}  // namespace cpu
}  // namespace tg
