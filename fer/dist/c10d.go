package dist

// The include path is Debian's libtorch-dev layout (c10d headers under
// /usr/include/torch/csrc/distributed/c10d, Gloo's from libgloo-dev). For
// another libtorch, add its include directories (and its
// -D_GLIBCXX_USE_CXX11_ABI=0 if it uses the old ABI) with CGO_CPPFLAGS;
// linking uses the libraries gotch's patched lib.go already names.
// compat/ supplies the one header Debian's package lacks (see there).

/*
#cgo CPPFLAGS: -I/usr/include/torch/csrc/api/include -I${SRCDIR}/compat
#cgo CXXFLAGS: -std=c++17 -O2
#cgo LDFLAGS: -ltorch_cpu -lc10
#include <stdlib.h>
#include "shim.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"time"
	"unsafe"

	"github.com/sugarme/gotch/ts"
)

// Backend names a c10d process group implementation.
type Backend string

const (
	// Gloo runs collectives over TCP on CPU tensors (and CUDA tensors
	// through host copies).
	Gloo Backend = "gloo"
	// NCCL runs collectives on CUDA devices; it needs fer built with
	// -tags nccl against a CUDA libtorch.
	NCCL Backend = "nccl"
)

// ReduceOp is a c10d reduction.
type ReduceOp int

// c10d::ReduceOp::RedOpType values.
const (
	Sum ReduceOp = 0
	Min ReduceOp = 3
	Max ReduceOp = 4
)

// cerr turns a shim error string into a Go error (and frees it).
func cerr(what string, p *C.char) error {
	if p == nil {
		return nil
	}
	msg := strings.TrimSpace(C.GoString(p))
	C.fer_c10d_free(unsafe.Pointer(p))
	return fmt.Errorf("%s: %s", what, msg)
}

// ProcessGroup is a c10d process group: this process's membership in a
// group of WorldSize processes that run collectives together. Every rank
// must call the same collectives in the same order.
type ProcessGroup struct {
	p       unsafe.Pointer
	rank    int
	size    int
	backend Backend
	timeout time.Duration
}

// GlooDevice chooses the network device Gloo uses: Interfaces (names,
// as GLOO_SOCKET_IFNAME), else Hostname (a name or address to bind),
// else the address this host's name resolves to (Gloo's default device).
type GlooDevice struct {
	Interfaces string
	Hostname   string
}

// cudaDevice is the GPU an NCCL group's own buffers (metrics, checkpoint
// bytes) go to: LOCAL_RANK's, -1 for Gloo (CPU).
func cudaDevice(env Env, b Backend) C.int {
	if b == NCCL {
		return C.int(env.LocalRank)
	}
	return -1
}

// NewProcessGroup joins the process group described by env, as
// torch.distributed.init_process_group(backend, init_method="env://",
// timeout=timeout) does, so fer and PyTorch processes can be members of
// the same group. It fails (never hangs past timeout) when the master is
// unreachable or a rank does not arrive.
func NewProcessGroup(env Env, backend Backend, dev GlooDevice, timeout time.Duration) (*ProcessGroup, error) {
	if err := env.Validate(); err != nil {
		return nil, err
	}
	var b C.int
	switch backend {
	case Gloo:
		b = 0
	case NCCL:
		b = 1
	default:
		return nil, fmt.Errorf("distributed backend %q: want gloo or nccl", backend)
	}
	if timeout <= 0 {
		return nil, fmt.Errorf("distributed timeout %v: want > 0", timeout)
	}
	addr := C.CString(env.MasterAddr)
	defer C.free(unsafe.Pointer(addr))
	ifn := C.CString(dev.Interfaces)
	defer C.free(unsafe.Pointer(ifn))
	host := C.CString(dev.Hostname)
	defer C.free(unsafe.Pointer(host))
	var p unsafe.Pointer
	e := C.fer_c10d_init_process_group(addr, C.int(env.MasterPort), C.int(env.Rank), C.int(env.WorldSize),
		cbool(env.AgentStore), C.int(env.RestartCount), b, C.int64_t(timeout.Milliseconds()), ifn, host, cudaDevice(env, backend), &p)
	if err := cerr(fmt.Sprintf("rank %d of %d: joining the %s process group at %s:%d (timeout %v)",
		env.Rank, env.WorldSize, backend, env.MasterAddr, env.MasterPort, timeout), e); err != nil {
		return nil, err
	}
	pg := &ProcessGroup{p: p, rank: env.Rank, size: env.WorldSize, backend: backend, timeout: timeout}
	runtime.SetFinalizer(pg, (*ProcessGroup).Close)
	return pg, nil
}

func cbool(b bool) C.int {
	if b {
		return 1
	}
	return 0
}

// Rank is this process's rank in [0, WorldSize).
func (pg *ProcessGroup) Rank() int { return pg.rank }

// WorldSize is the number of processes in the group.
func (pg *ProcessGroup) WorldSize() int { return pg.size }

// Backend is the group's backend.
func (pg *ProcessGroup) Backend() Backend { return pg.backend }

// Timeout is the group's collective timeout.
func (pg *ProcessGroup) Timeout() time.Duration { return pg.timeout }

// Close leaves the group (frees the process group and, on the rank that
// serves it, the store). Collectives after Close fail.
func (pg *ProcessGroup) Close() {
	if pg == nil || pg.p == nil {
		return
	}
	C.fer_c10d_pg_free(pg.p)
	pg.p = nil
	runtime.SetFinalizer(pg, nil)
}

var errClosed = errors.New("process group is closed")

// ErrPeerLost is wrapped by the error of a collective that failed because
// another rank closed its connection (it exited or crashed): the cause is
// that rank's own error.
var ErrPeerLost = errors.New("another rank has exited or lost its connection")

// ExitPeerLost is the exit status of a worker that stopped because
// another rank was lost (fercli train uses it), so a launcher can report
// the rank that failed first.
const ExitPeerLost = 75

func (pg *ProcessGroup) check() error {
	if pg == nil || pg.p == nil {
		return errClosed
	}
	return nil
}

// handles returns the libtorch handles of ts in a C-allocated array
// (free it with C.free).
func handles(tensors []*ts.Tensor) (*unsafe.Pointer, C.int, func()) {
	if len(tensors) == 0 {
		return nil, 0, func() {}
	}
	arr := (*[1 << 28]unsafe.Pointer)(C.malloc(C.size_t(len(tensors)) * C.size_t(unsafe.Sizeof(unsafe.Pointer(nil)))))
	for i, t := range tensors {
		arr[i] = unsafe.Pointer(t.Ctensor())
	}
	return &arr[0], C.int(len(tensors)), func() {
		C.free(unsafe.Pointer(&arr[0]))
		runtime.KeepAlive(tensors)
	}
}

func (pg *ProcessGroup) errf(op string, p *C.char) error {
	err := cerr(fmt.Sprintf("rank %d: %s", pg.rank, op), p)
	if err != nil {
		for _, s := range []string{"Connection closed by peer", "Connection reset by peer", "Broken pipe"} {
			if strings.Contains(err.Error(), s) {
				return fmt.Errorf("%w (%w: see its own error)", err, ErrPeerLost)
			}
		}
	}
	return err
}

// AllReduce reduces each tensor in place across the group: afterwards
// every rank holds op over all ranks' values.
func (pg *ProcessGroup) AllReduce(op ReduceOp, tensors ...*ts.Tensor) error {
	if err := pg.check(); err != nil {
		return err
	}
	h, n, free := handles(tensors)
	defer free()
	return pg.errf("allreduce", C.fer_c10d_allreduce(pg.p, h, n, C.int(op)))
}

// Broadcast overwrites each tensor with root's.
func (pg *ProcessGroup) Broadcast(root int, tensors ...*ts.Tensor) error {
	if err := pg.check(); err != nil {
		return err
	}
	h, n, free := handles(tensors)
	defer free()
	return pg.errf("broadcast", C.fer_c10d_broadcast(pg.p, h, n, C.int(root)))
}

// BroadcastCoalesced is Broadcast with the tensors flattened into buckets
// of at most bucketBytes (one broadcast per bucket), as DDP broadcasts
// parameters and buffers.
func (pg *ProcessGroup) BroadcastCoalesced(root int, bucketBytes int64, tensors ...*ts.Tensor) error {
	if err := pg.check(); err != nil {
		return err
	}
	h, n, free := handles(tensors)
	defer free()
	return pg.errf("broadcast", C.fer_c10d_broadcast_coalesced(pg.p, h, n, C.int(root), C.int64_t(bucketBytes)))
}

// Barrier returns when every rank has entered it.
func (pg *ProcessGroup) Barrier() error {
	if err := pg.check(); err != nil {
		return err
	}
	return pg.errf("barrier", C.fer_c10d_barrier(pg.p))
}

// AllReduceFloat64 reduces vals in place across the group.
func (pg *ProcessGroup) AllReduceFloat64(op ReduceOp, vals []float64) error {
	if err := pg.check(); err != nil {
		return err
	}
	if len(vals) == 0 {
		return nil
	}
	buf := (*[1 << 28]C.double)(C.malloc(C.size_t(len(vals)) * 8))[:len(vals):len(vals)]
	defer C.free(unsafe.Pointer(&buf[0]))
	for i, v := range vals {
		buf[i] = C.double(v)
	}
	if err := pg.errf("allreduce", C.fer_c10d_allreduce_f64(pg.p, &buf[0], C.int(len(vals)), C.int(op))); err != nil {
		return err
	}
	for i := range vals {
		vals[i] = float64(buf[i])
	}
	return nil
}

// BroadcastBytes returns root's b on every rank (b is ignored elsewhere).
func (pg *ProcessGroup) BroadcastBytes(root int, b []byte) ([]byte, error) {
	if err := pg.check(); err != nil {
		return nil, err
	}
	in := C.CBytes(b)
	defer C.free(in)
	var out *C.uint8_t
	var n C.int64_t
	if err := pg.errf("broadcast", C.fer_c10d_broadcast_bytes(pg.p, C.int(root), (*C.uint8_t)(in), C.int64_t(len(b)), &out, &n)); err != nil {
		return nil, err
	}
	defer C.free(unsafe.Pointer(out))
	return C.GoBytes(unsafe.Pointer(out), C.int(n)), nil
}

// AllGatherBytes returns every rank's b, indexed by rank.
func (pg *ProcessGroup) AllGatherBytes(b []byte) ([][]byte, error) {
	if err := pg.check(); err != nil {
		return nil, err
	}
	in := C.CBytes(b)
	defer C.free(in)
	lens := (*[1 << 20]C.int64_t)(C.malloc(C.size_t(pg.size) * 8))[:pg.size:pg.size]
	defer C.free(unsafe.Pointer(&lens[0]))
	var out *C.uint8_t
	if err := pg.errf("allgather", C.fer_c10d_allgather_bytes(pg.p, (*C.uint8_t)(in), C.int64_t(len(b)), &out, &lens[0])); err != nil {
		return nil, err
	}
	defer C.free(unsafe.Pointer(out))
	res := make([][]byte, pg.size)
	off := 0
	for r := range res {
		n := int(lens[r])
		res[r] = C.GoBytes(unsafe.Add(unsafe.Pointer(out), off), C.int(n))
		off += n
	}
	return res, nil
}

// AllReduceGradients averages the gradients of params across the group
// after a backward pass, in buckets of at most bucketBytes whose
// allreduces run concurrently. A parameter without a gradient counts as
// zeros.
func (pg *ProcessGroup) AllReduceGradients(bucketBytes int64, params ...*ts.Tensor) error {
	if err := pg.check(); err != nil {
		return err
	}
	h, n, free := handles(params)
	defer free()
	return pg.errf("gradient allreduce", C.fer_c10d_allreduce_grads(pg.p, h, n, C.int64_t(bucketBytes)))
}

// VerifyParams checks that every rank's params have rank 0's count,
// shapes, dtypes and layouts (a model built differently on some rank).
func (pg *ProcessGroup) VerifyParams(params ...*ts.Tensor) error {
	if err := pg.check(); err != nil {
		return err
	}
	h, n, free := handles(params)
	defer free()
	return pg.errf("checking the parameters against rank 0's", C.fer_c10d_verify_params(pg.p, h, n))
}

// Reducer is the c10d Reducer that torch.nn.parallel.DistributedDataParallel
// uses: autograd hooks on the parameters' gradient accumulators copy each
// gradient into its bucket as soon as backward produces it, and a bucket's
// allreduce starts as soon as it is full, so communication overlaps the
// rest of the backward pass; the engine's end-of-backward callback waits
// for every bucket and writes the averaged gradients back.
type Reducer struct {
	p       unsafe.Pointer
	pg      *ProcessGroup
	params  []*ts.Tensor
	rebuilt bool
}

// NewReducer builds the Reducer over params (names for messages), with
// DDP's bucket sizes: bucketBytes (DDP's bucket_cap_mb, default 25 MiB)
// and a first bucket of firstBucketBytes (1 MiB). It checks that every
// rank has the same parameter shapes (verify_params_across_processes).
// findUnused searches the graph before each backward for parameters
// that will get no gradient (DDP's find_unused_parameters).
func (pg *ProcessGroup) NewReducer(params []*ts.Tensor, names []string, bucketBytes, firstBucketBytes int64, findUnused bool) (*Reducer, error) {
	if err := pg.check(); err != nil {
		return nil, err
	}
	if len(params) == 0 || len(names) != len(params) {
		return nil, fmt.Errorf("reducer: %d parameters, %d names", len(params), len(names))
	}
	h, n, free := handles(params)
	defer free()
	cn := make([]*C.char, len(names))
	for i, s := range names {
		cn[i] = C.CString(s)
	}
	cnArr := (*[1 << 28]*C.char)(C.malloc(C.size_t(len(cn)) * C.size_t(unsafe.Sizeof(cn[0]))))
	copy(cnArr[:len(cn)], cn)
	defer func() {
		for _, p := range cn {
			C.free(unsafe.Pointer(p))
		}
		C.free(unsafe.Pointer(&cnArr[0]))
	}()
	var p unsafe.Pointer
	if err := pg.errf("DDP reducer", C.fer_c10d_reducer_new(pg.p, h, &cnArr[0], n, C.int64_t(bucketBytes),
		C.int64_t(firstBucketBytes), cbool(findUnused), &p)); err != nil {
		return nil, err
	}
	r := &Reducer{p: p, pg: pg, params: params}
	runtime.SetFinalizer(r, (*Reducer).Close)
	return r, nil
}

// PrepareForward is DDP.forward's prologue (iteration bookkeeping).
func (r *Reducer) PrepareForward() error {
	return r.pg.errf("DDP reducer", C.fer_c10d_reducer_prepare_forward(r.p))
}

// PrepareBackward arms the hooks for the next backward pass; outputs
// (used with findUnused) are the tensors backward starts from.
func (r *Reducer) PrepareBackward(outputs ...*ts.Tensor) error {
	h, n, free := handles(outputs)
	defer free()
	return r.pg.errf("DDP reducer", C.fer_c10d_reducer_prepare_backward(r.p, h, n))
}

// AfterBackward rebuilds the buckets in gradient-ready order once, after
// the first backward pass (DDP does it at the next forward; doing it here
// lets a step run several backward passes, as SAM does).
func (r *Reducer) AfterBackward() error {
	if r.rebuilt {
		return nil
	}
	r.rebuilt = true
	return r.pg.errf("DDP reducer", C.fer_c10d_reducer_rebuild_buckets(r.p))
}

// Close frees the Reducer and removes its hooks.
func (r *Reducer) Close() {
	if r == nil || r.p == nil {
		return
	}
	C.fer_c10d_reducer_free(r.p)
	r.p = nil
	runtime.SetFinalizer(r, nil)
	runtime.KeepAlive(r.params)
}
