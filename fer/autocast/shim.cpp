// C entry points for libtorch's autocast switches. gotch's C wrapper has
// at_autocast_set_enabled & co., but they toggle CUDA autocast only and
// gotch does not expose them in Go; CPU autocast (set_cpu_enabled,
// set_autocast_cpu_dtype) is not wrapped at all. These functions are
// declared here instead of including <ATen/autocast_mode.h> so the shim
// compiles in a second without libtorch's include paths; the declarations
// are those of libtorch 1.13–2.x (ATen/autocast_mode.h), and a libtorch
// without them fails at link time, not at run time.
#include <cstdint>

namespace c10 {
enum class ScalarType : int8_t;
}

namespace at {
namespace autocast {
bool is_enabled();
void set_enabled(bool enabled);
bool is_cpu_enabled();
void set_cpu_enabled(bool enabled);
c10::ScalarType get_autocast_gpu_dtype();
c10::ScalarType get_autocast_cpu_dtype();
void set_autocast_gpu_dtype(c10::ScalarType dtype);
void set_autocast_cpu_dtype(c10::ScalarType dtype);
int increment_nesting();
int decrement_nesting();
void clear_cache();
}  // namespace autocast
}  // namespace at

extern "C" {

int fer_autocast_is_enabled(int cuda) {
  try {
    return cuda ? at::autocast::is_enabled() : at::autocast::is_cpu_enabled();
  } catch (...) {
    return -1;
  }
}

int fer_autocast_get_dtype(int cuda) {
  try {
    return static_cast<int>(cuda ? at::autocast::get_autocast_gpu_dtype() : at::autocast::get_autocast_cpu_dtype());
  } catch (...) {
    return -1;
  }
}

int fer_autocast_set(int cuda, int enabled, int dtype) {
  try {
    auto st = static_cast<c10::ScalarType>(static_cast<int8_t>(dtype));
    if (cuda) {
      at::autocast::set_autocast_gpu_dtype(st);
      at::autocast::set_enabled(enabled != 0);
    } else {
      at::autocast::set_autocast_cpu_dtype(st);
      at::autocast::set_cpu_enabled(enabled != 0);
    }
    return 0;
  } catch (...) {
    return -1;
  }
}

int fer_autocast_increment_nesting() {
  try {
    return at::autocast::increment_nesting();
  } catch (...) {
    return -1;
  }
}

int fer_autocast_decrement_nesting() {
  try {
    return at::autocast::decrement_nesting();
  } catch (...) {
    return -1;
  }
}

void fer_autocast_clear_cache() {
  try {
    at::autocast::clear_cache();
  } catch (...) {
  }
}

}  // extern "C"
