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
// dev. The tensor is allocated uninitialised (torch.empty) and data is
// copied into its storage once. gotch's OfDataSize would copy three times
// (into a bytes.Buffer, into C memory, into the tensor) and its C side
// zero-fills the tensor first with an OpenMP parallel fill, whose
// spinning threads then steal the cores from the loader's decoders; its
// OfSlice walks the values one by one with reflection.
func toDevice[T float32 | int64](data []T, shape []int64, dev gotch.Device) (*ts.Tensor, error) {
	dtype := gotch.Float
	var zero T
	if _, ok := any(zero).(int64); ok {
		dtype = gotch.Int64
	}
	t, err := ts.Empty(shape, dtype, gotch.CPU)
	if err != nil {
		return nil, err
	}
	if len(data) > 0 {
		ptr, err := t.DataPtr()
		if err != nil {
			t.Drop()
			return nil, err
		}
		copy(unsafe.Slice((*T)(ptr), len(data)), data)
	}
	if dev.IsCuda() {
		return t.To(dev, true)
	}
	return t, nil
}
