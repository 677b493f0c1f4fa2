// Package dist is fer's data-parallel training over libtorch's own
// torch.distributed core (c10d).
package dist
