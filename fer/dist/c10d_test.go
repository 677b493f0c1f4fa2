package dist

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

func init() {
	roles["collectives"] = childCollectives
	roles["reducer"] = func() error { return childGradSync(true) }
	roles["after_backward"] = func() error { return childGradSync(false) }
	roles["die"] = childDie
}

// joinFromEnv joins the group the environment describes (test timeout).
func joinFromEnv(timeout time.Duration) (*ProcessGroup, error) {
	env, err := EnvFromOS()
	if err != nil {
		return nil, err
	}
	if os.Getenv("FER_DIST_TEST_SHOW_ENV") != "" {
		fmt.Fprintf(os.Stderr, "rank %d agent_store=%v restart=%d\n", env.Rank, env.AgentStore, env.RestartCount)
	}
	return NewProcessGroup(env, Gloo, GlooDevice{Interfaces: os.Getenv("GLOO_SOCKET_IFNAME")}, timeout)
}

func values(t *ts.Tensor) []float64 {
	d := t.MustTotype(gotch.Double, false)
	defer d.MustDrop()
	return d.Float64Values()
}

func same(got, want []float64) error {
	if len(got) != len(want) {
		return fmt.Errorf("got %v, want %v", got, want)
	}
	for i := range got {
		if math.Abs(got[i]-want[i]) > 1e-6 {
			return fmt.Errorf("got %v, want %v", got, want)
		}
	}
	return nil
}

// childCollectives checks every collective of ProcessGroup on this rank.
func childCollectives() error {
	pg, err := joinFromEnv(20 * time.Second)
	if err != nil {
		return err
	}
	defer pg.Close()
	r, w := float64(pg.Rank()), float64(pg.WorldSize())
	// sum over ranks of (r+1) = w(w+1)/2
	tri := w * (w + 1) / 2
	x := ts.MustOfSlice([]float32{float32(r + 1), float32(2 * (r + 1))})
	if err := pg.AllReduce(Sum, x); err != nil {
		return err
	}
	if err := same(values(x), []float64{tri, 2 * tri}); err != nil {
		return fmt.Errorf("allreduce sum: %w", err)
	}
	m := ts.MustOfSlice([]float64{r, -r})
	if err := pg.AllReduce(Max, m); err != nil {
		return err
	}
	if err := same(values(m), []float64{w - 1, 0}); err != nil {
		return fmt.Errorf("allreduce max: %w", err)
	}
	b := ts.MustOfSlice([]float32{float32(r), float32(r)})
	c := ts.MustOfSlice([]int64{int64(10 * r)})
	if err := pg.BroadcastCoalesced(1, 1<<20, b, c); err != nil {
		return err
	}
	if err := same(values(b), []float64{1, 1}); err != nil {
		return fmt.Errorf("broadcast from 1: %w", err)
	}
	if err := same(values(c), []float64{10}); err != nil {
		return fmt.Errorf("broadcast from 1 (int64): %w", err)
	}
	if err := pg.Barrier(); err != nil {
		return err
	}
	f := []float64{r, 1, 0.5}
	if err := pg.AllReduceFloat64(Sum, f); err != nil {
		return err
	}
	if err := same(f, []float64{tri - w, w, w / 2}); err != nil {
		return fmt.Errorf("allreduce float64: %w", err)
	}
	got, err := pg.BroadcastBytes(0, []byte(fmt.Sprintf("from rank %d", pg.Rank())))
	if err != nil {
		return err
	}
	if string(got) != "from rank 0" {
		return fmt.Errorf("broadcast bytes: got %q", got)
	}
	all, err := pg.AllGatherBytes(bytes.Repeat([]byte{byte('a' + pg.Rank())}, pg.Rank()+1))
	if err != nil {
		return err
	}
	for q, bs := range all {
		if want := strings.Repeat(string(rune('a'+q)), q+1); string(bs) != want {
			return fmt.Errorf("allgather bytes: rank %d sent %q, want %q", q, bs, want)
		}
	}
	fmt.Println("ok")
	return nil
}

// childGradSync back-propagates sum(W·x_r) with x_r = (r+1)·[1 2 3] on
// every rank, three times, and checks that W's gradient is the mean over
// ranks, (w+1)/2·[1 2 3], with DDP's Reducer (overlap) or the bucketed
// allreduce after backward.
func childGradSync(overlap bool) error {
	pg, err := joinFromEnv(20 * time.Second)
	if err != nil {
		return err
	}
	defer pg.Close()
	r, w := float64(pg.Rank()), float64(pg.WorldSize())
	W := ts.MustZeros([]int64{3}, gotch.Float, gotch.CPU).MustSetRequiresGrad(true, false)
	B := ts.MustZeros([]int64{1}, gotch.Float, gotch.CPU).MustSetRequiresGrad(true, false)
	params := []*ts.Tensor{W, B}
	var red *Reducer
	if overlap {
		// first bucket 4 bytes: after the rebuild W and B sit in
		// separate buckets
		if red, err = pg.NewReducer(params, []string{"w", "b"}, 8, 4, false); err != nil {
			return err
		}
		defer red.Close()
	}
	x := ts.MustOfSlice([]float32{1, 2, 3}).MustMulScalar(ts.FloatScalar(r+1), true)
	for it := 0; it < 3; it++ {
		for _, p := range params {
			if g := p.MustGrad(false); g.MustDefined() {
				g.MustZero_()
			}
		}
		loss := W.MustMul(x, false).MustSum(gotch.Float, true).MustAdd(B.MustMulScalar(ts.FloatScalar(r), false), true)
		if overlap {
			if err := red.PrepareForward(); err != nil {
				return err
			}
			if err := red.PrepareBackward(); err != nil {
				return err
			}
		}
		if err := loss.Backward(); err != nil {
			return err
		}
		if overlap {
			if err := red.AfterBackward(); err != nil {
				return err
			}
		} else if err := pg.AllReduceGradients(25<<20, params...); err != nil {
			return err
		}
		k := (w + 1) / 2
		if err := same(values(W.MustGrad(false)), []float64{k, 2 * k, 3 * k}); err != nil {
			return fmt.Errorf("iteration %d: W.grad: %w", it, err)
		}
		if err := same(values(B.MustGrad(false)), []float64{(w - 1) / 2}); err != nil {
			return fmt.Errorf("iteration %d: B.grad: %w", it, err)
		}
	}
	fmt.Println("ok")
	return nil
}

// childDie: rank 1 leaves the job right after joining; the others must
// fail their next collective with an error, not hang.
func childDie() error {
	pg, err := joinFromEnv(15 * time.Second)
	if err != nil {
		return err
	}
	if pg.Rank() == 1 {
		os.Exit(3)
	}
	x := ts.MustOnes([]int64{1 << 16}, gotch.Float, gotch.CPU)
	start := time.Now()
	for i := 0; i < 100; i++ {
		if err := pg.AllReduce(Sum, x); err != nil {
			fmt.Printf("%.1f %s\n", time.Since(start).Seconds(), err)
			return nil
		}
	}
	return fmt.Errorf("100 allreduces succeeded with rank 1 gone")
}

func TestCollectivesTwoRanks(t *testing.T) {
	for r, out := range runRanks(t, "collectives", 2, 90*time.Second) {
		if out != "ok" {
			t.Errorf("rank %d: %q", r, out)
		}
	}
}

func TestReducerAveragesGradients(t *testing.T) {
	for _, role := range []string{"reducer", "after_backward"} {
		for r, out := range runRanks(t, role, 2, 90*time.Second) {
			if out != "ok" {
				t.Errorf("%s rank %d: %q", role, r, out)
			}
		}
	}
}

func TestDeadRankFailsOthers(t *testing.T) {
	outs := func() []string {
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		port := freePort(t)
		p0 := start(t, ctx, "die", rankEnv(port, 0, 2))
		p1 := start(t, ctx, "die", rankEnv(port, 1, 2))
		if err := p1.wait(); err == nil || !strings.Contains(err.Error(), "exit status 3") {
			t.Fatalf("rank 1: %v, want exit status 3", err)
		}
		if err := p0.wait(); err != nil {
			t.Fatalf("rank 0: %v", err)
		}
		return []string{strings.TrimSpace(p0.out.String())}
	}()
	var secs float64
	var msg string
	if _, err := fmt.Sscanf(outs[0], "%f", &secs); err != nil {
		t.Fatalf("rank 0 printed %q", outs[0])
	}
	msg = outs[0]
	t.Logf("rank 0: %s", msg)
	if secs > 15 {
		t.Errorf("rank 0 noticed the dead rank after %.1f s, beyond the 15 s timeout", secs)
	}
	if !strings.Contains(msg, "rank 0: allreduce:") {
		t.Errorf("error %q does not say which rank and collective failed", msg)
	}
}

func TestUnreachableMasterTimesOut(t *testing.T) {
	port := freePort(t) // nobody listens there
	start := time.Now()
	_, err := NewProcessGroup(Env{MasterAddr: "127.0.0.1", MasterPort: port, Rank: 1, WorldSize: 2}, Gloo, GlooDevice{Interfaces: "lo"}, 2*time.Second)
	took := time.Since(start)
	if err == nil {
		t.Fatal("joined a group whose master does not exist")
	}
	t.Logf("%v after %v", err, took)
	if took > 20*time.Second {
		t.Errorf("took %v with a 2 s timeout", took)
	}
	for _, want := range []string{"rank 1 of 2", fmt.Sprintf("127.0.0.1:%d", port), "timeout 2s"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}
