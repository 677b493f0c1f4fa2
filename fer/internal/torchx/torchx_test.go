package torchx

import (
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/fer-research/fer/internal/testenv"
	"github.com/sugarme/gotch/ts"
)

func TestMain(m *testing.M) {
	testenv.PassiveOMP()
	os.Exit(m.Run())
}

// lockThread pins the test's goroutine to its OS thread (libtorch's last
// error and grad mode are per thread).
func lockThread(t *testing.T) {
	runtime.LockOSThread()
	t.Cleanup(runtime.UnlockOSThread)
}

func vec(t *testing.T, v ...float32) *ts.Tensor {
	t.Helper()
	x, err := ts.OfSlice(v)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

func values(t *testing.T, x *ts.Tensor) []float64 {
	t.Helper()
	return x.Float64Values(false)
}

func wantValues(t *testing.T, op string, x *ts.Tensor, want ...float64) {
	t.Helper()
	if got := values(t, x); !slices.Equal(got, want) {
		t.Errorf("%s = %v, want %v", op, got, want)
	}
}

// The scalar-factor ops through fer's wrapper entry points, on values
// whose results are exact in float32.
func TestScalarFactorOps(t *testing.T) {
	lockThread(t)
	x := vec(t, 1, 2, 3, 4)
	a := vec(t, 2, 4, 6, 8)
	b := vec(t, 0.5, 0.25, 2, 4)

	if err := AddcmulValue_(Handle(x), Handle(a), Handle(b), 0.5); err != nil {
		t.Fatal(err)
	}
	wantValues(t, "x + 0.5·a·b", x, 1.5, 2.5, 9, 20)

	if err := AddcdivValue_(Handle(x), Handle(a), Handle(b), -0.25); err != nil {
		t.Fatal(err)
	}
	wantValues(t, "x − 0.25·a/b", x, 0.5, -1.5, 8.25, 19.5)

	if err := AddScaled_(Handle(x), Handle(b), -2); err != nil {
		t.Fatal(err)
	}
	wantValues(t, "x − 2·b", x, -0.5, -2, 4.25, 11.5)

	r, err := AddScaled(Handle(a), Handle(b), 4)
	if err != nil {
		t.Fatal(err)
	}
	sum := ts.New(r)
	defer sum.MustDrop()
	wantValues(t, "a + 4·b", sum, 4, 5, 14, 24)
	wantValues(t, "a after AddScaled", a, 2, 4, 6, 8)

	// alpha = 1 takes the plain add path
	if err := AddScaled_(Handle(a), Handle(b), 1); err != nil {
		t.Fatal(err)
	}
	wantValues(t, "a + b", a, 2.5, 4.25, 8, 12)
	runtime.KeepAlive([]*ts.Tensor{x, a, b})
}

// A libtorch failure comes back as an error naming the op, leaves self
// as it was, and does not poison the next call on the thread.
func TestScalarFactorOpsErrors(t *testing.T) {
	lockThread(t)
	x := vec(t, 1, 2, 3, 4)
	short := vec(t, 1, 2, 3)
	ints, err := ts.OfSlice([]int64{1, 2, 3, 4})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		op, want string
		call     func() error
	}{
		{"addcmul_", "size", func() error { return AddcmulValue_(Handle(x), Handle(x), Handle(short), 2) }},
		{"addcdiv_", "size", func() error { return AddcdivValue_(Handle(x), Handle(short), Handle(x), 2) }},
		// torch refuses integer division in addcdiv
		{"addcdiv_", "Integer division", func() error { return AddcdivValue_(Handle(ints), Handle(ints), Handle(ints), 1) }},
		{"add_", "size", func() error { return AddScaled_(Handle(x), Handle(short), 3) }},
		{"add", "size", func() error {
			r, err := AddScaled(Handle(short), Handle(x), 3)
			Free(r)
			return err
		}},
	}
	for _, c := range cases {
		err := c.call()
		if err == nil {
			t.Fatalf("%s: no error", c.op)
		}
		msg := err.Error()
		t.Logf("%s: %v", c.op, err)
		if !strings.HasPrefix(msg, c.op+": ") || !strings.Contains(msg, c.want) || strings.Contains(msg, "\n") {
			t.Errorf("%s: error %q, want %q prefix and %q on one line", c.op, msg, c.op+": ", c.want)
		}
	}
	wantValues(t, "x after failed ops", x, 1, 2, 3, 4)
	if err := AddcmulValue_(Handle(x), Handle(x), Handle(x), 1); err != nil {
		t.Fatalf("after the errors: %v", err)
	}
	wantValues(t, "x + x·x", x, 2, 6, 12, 20)
	runtime.KeepAlive([]*ts.Tensor{x, short, ints})
}
