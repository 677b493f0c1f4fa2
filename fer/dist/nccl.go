//go:build nccl

package dist

// Built with -tags nccl, the shim compiles ProcessGroupNCCL (shim.cpp,
// FER_WITH_NCCL). It needs a CUDA libtorch (gotch patched for it by
// setup-gotch.sh, which links libtorch_cuda) and the CUDA and NCCL headers
// on the include path, e.g.
//
//	CGO_CPPFLAGS="-I$LIBTORCH/include -I$LIBTORCH/include/torch/csrc/api/include -I/usr/local/cuda/include -I$NCCL_HOME/include" \
//	  go build -tags nccl -o bin/fercli ./cmd/fercli

// #cgo CPPFLAGS: -DFER_WITH_NCCL
// #cgo LDFLAGS: -ltorch_cuda -lc10_cuda
import "C"
