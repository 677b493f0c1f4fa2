package data

import (
	"fmt"
	"unsafe"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// Tensors copies the batch into libtorch tensors on dev: x float32 with
// shape Shape ([B,T,3,H,W] or [B,3,H,W]) and y int64 labels [B]. The
// caller owns (and must Drop) both. Call it on the goroutine that does the
// torch work (GOTCH.md: one locked OS thread).
func (b *Batch) Tensors(dev gotch.Device) (x, y *ts.Tensor, err error) {
	shape := make([]int64, len(b.Shape))
	n := 1
	for i, s := range b.Shape {
		shape[i] = int64(s)
		n *= s
	}
	if n != len(b.Data) || len(b.Labels) != b.Shape[0] {
		return nil, nil, fmt.Errorf("batch tensors: %d values and %d labels for shape %v", len(b.Data), len(b.Labels), b.Shape)
	}
	if x, err = toDevice(b.Data, shape, dev); err != nil {
		return nil, nil, fmt.Errorf("batch tensors: inputs: %w", err)
	}
	if y, err = toDevice(b.Labels, []int64{int64(len(b.Labels))}, dev); err != nil {
		x.Drop()
		return nil, nil, fmt.Errorf("batch tensors: labels: %w", err)
	}
	return x, y, nil
}

// toDevice makes a CPU tensor of data with the given shape and moves it to
// dev. The slice is handed to libtorch as raw bytes (ts.OfDataSize, one
// copy): gotch's OfSlice/NewTensorFromData walk the values one by one
// with reflection, far too slow for a 77 MB clip batch.
func toDevice[T float32 | int64](data []T, shape []int64, dev gotch.Device) (*ts.Tensor, error) {
	dtype := gotch.Float
	var zero T
	if _, ok := any(zero).(int64); ok {
		dtype = gotch.Int64
	}
	raw := unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(data))), len(data)*int(unsafe.Sizeof(zero)))
	t, err := ts.OfDataSize(raw, shape, dtype)
	if err != nil {
		return nil, err
	}
	if dev.IsCuda() {
		return t.To(dev, true)
	}
	return t, nil
}
