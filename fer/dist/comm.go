package dist

import (
	"fmt"

	"github.com/fer-research/fer/fer"
	"github.com/sugarme/gotch/ts"
)

// DDP's defaults (torch.nn.parallel.DistributedDataParallel).
const (
	// DefaultBucketBytes is bucket_cap_mb = 25.
	DefaultBucketBytes = 25 << 20
	// DefaultFirstBucketBytes is dist._DEFAULT_FIRST_BUCKET_BYTES.
	DefaultFirstBucketBytes = 1 << 20
	// broadcastBucketBytes is DDP's broadcast_bucket_size (250 MiB).
	broadcastBucketBytes = 250 << 20
)

// Comm is a ProcessGroup as fer.Trainer's Distributed.
type Comm struct {
	PG *ProcessGroup
	// AfterBackward all-reduces the gradient buckets once the backward
	// pass is over instead of with DDP's Reducer, which overlaps them
	// with the backward pass (the default).
	AfterBackward bool
	// BucketBytes is the gradient bucket size (0: DDP's 25 MiB).
	BucketBytes int64
	// FindUnused is DDP's find_unused_parameters: before each backward
	// pass the graph is searched for parameters that get no gradient
	// (needed when some parameters take no part in some steps; costs a
	// graph traversal per step). Overlapped mode only: after-backward
	// mode treats a missing gradient as zeros.
	FindUnused bool
}

var _ fer.Distributed = (*Comm)(nil)

// Rank implements fer.Distributed.
func (c *Comm) Rank() int { return c.PG.Rank() }

// WorldSize implements fer.Distributed.
func (c *Comm) WorldSize() int { return c.PG.WorldSize() }

// BroadcastTensors implements fer.Distributed (DDP's
// _sync_params_and_buffers: coalesced broadcasts from rank 0).
func (c *Comm) BroadcastTensors(tensors []*ts.Tensor) error {
	if len(tensors) == 0 {
		return nil
	}
	return c.PG.BroadcastCoalesced(0, broadcastBucketBytes, tensors...)
}

// AllReduceFloat64 implements fer.Distributed.
func (c *Comm) AllReduceFloat64(vals []float64, max bool) error {
	op := Sum
	if max {
		op = Max
	}
	return c.PG.AllReduceFloat64(op, vals)
}

// BroadcastBytes implements fer.Distributed.
func (c *Comm) BroadcastBytes(b []byte) ([]byte, error) { return c.PG.BroadcastBytes(0, b) }

// AllGatherBytes implements fer.Distributed.
func (c *Comm) AllGatherBytes(b []byte) ([][]byte, error) { return c.PG.AllGatherBytes(b) }

// NewGradSync implements fer.Distributed.
func (c *Comm) NewGradSync(params []*ts.Tensor, names []string, buffers []*ts.Tensor) (fer.GradSync, error) {
	bucket := c.BucketBytes
	if bucket <= 0 {
		bucket = DefaultBucketBytes
	}
	g := &gradSync{pg: c.PG, params: params, buffers: buffers, bucket: bucket, findUnused: c.FindUnused}
	if c.AfterBackward {
		if err := c.PG.VerifyParams(params...); err != nil {
			return nil, err
		}
	} else {
		// the Reducer verifies the parameters itself
		r, err := c.PG.NewReducer(params, names, bucket, DefaultFirstBucketBytes, c.FindUnused)
		if err != nil {
			return nil, err
		}
		g.red = r
	}
	return g, nil
}

type gradSync struct {
	pg         *ProcessGroup
	red        *Reducer // nil: after-backward mode
	params     []*ts.Tensor
	buffers    []*ts.Tensor
	bucket     int64
	findUnused bool
}

// BeforeForward is DDP.forward's prologue: iteration bookkeeping and the
// buffers (BatchNorm running statistics) from rank 0.
func (g *gradSync) BeforeForward() error {
	if g.red != nil {
		if err := g.red.PrepareForward(); err != nil {
			return err
		}
	}
	if len(g.buffers) > 0 {
		if err := g.pg.BroadcastCoalesced(0, broadcastBucketBytes, g.buffers...); err != nil {
			return fmt.Errorf("broadcasting rank 0's buffers: %w", err)
		}
	}
	return nil
}

func (g *gradSync) BeforeBackward(loss *ts.Tensor) error {
	if g.red == nil {
		return nil
	}
	if g.findUnused {
		return g.red.PrepareBackward(loss)
	}
	return g.red.PrepareBackward()
}

func (g *gradSync) AfterBackward() error {
	if g.red != nil {
		return g.red.AfterBackward()
	}
	return g.pg.AllReduceGradients(g.bucket, g.params...)
}

func (g *gradSync) Close() {
	if g.red != nil {
		g.red.Close()
	}
}
