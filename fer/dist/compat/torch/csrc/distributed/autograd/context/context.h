// Debian's libtorch-dev 1.13.1 ships c10d/reducer.hpp but not the header it
// includes for two type names, torch/csrc/distributed/autograd/context/context.h.
// This file supplies exactly those two names, with upstream v1.13.1's
// definitions; a libtorch that has the real header gets the real one
// (#include_next). Nothing here is instantiated:
// the Reducer only stores a std::shared_ptr to the context type, whose
// size and layout do not depend on the class's members.
#pragma once

#if __has_include_next(<torch/csrc/distributed/autograd/context/context.h>)
#include_next <torch/csrc/distributed/autograd/context/context.h>
#else

#include <functional>
#include <memory>

#include <ATen/core/Tensor.h>

namespace torch {
namespace distributed {
namespace autograd {

class DistAutogradContext {
 public:
  using GradCallback = std::function<bool(at::Tensor&)>;
};

using ContextPtr = std::shared_ptr<DistAutogradContext>;

} // namespace autograd
} // namespace distributed
} // namespace torch

#endif
