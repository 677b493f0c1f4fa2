package data

import (
	"slices"
	"testing"

	"github.com/sugarme/gotch"
)

func TestBatchTensors(t *testing.T) {
	b := &Batch{Shape: []int{2, 3, 1, 2, 2}, Labels: []int64{6, 1}, IDs: []string{"a", "b"}}
	for i := range 2 * 3 * 1 * 2 * 2 {
		b.Data = append(b.Data, float32(i)/8)
	}
	x, y, err := b.Tensors(gotch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	defer x.MustDrop()
	defer y.MustDrop()
	if got := x.MustSize(); !slices.Equal(got, []int64{2, 3, 1, 2, 2}) || x.DType() != gotch.Float {
		t.Fatalf("x: shape %v dtype %v", got, x.DType())
	}
	if got := y.MustSize(); !slices.Equal(got, []int64{2}) || y.DType() != gotch.Int64 {
		t.Fatalf("y: shape %v dtype %v", got, y.DType())
	}
	// element [1,2,0,1,0] is flat index 1·12 + 2·4 + 0 + 1·2 + 0 = 22
	if v := x.MustFloat64Value([]int64{1, 2, 0, 1, 0}); v != 22.0/8 {
		t.Errorf("x[1,2,0,1,0] = %v, want %v", v, 22.0/8)
	}
	if v := y.MustInt64Value([]int64{0}); v != 6 {
		t.Errorf("y[0] = %v", v)
	}
	b.Labels = b.Labels[:1]
	if _, _, err := b.Tensors(gotch.CPU); err == nil {
		t.Error("label/shape mismatch accepted")
	}
}
