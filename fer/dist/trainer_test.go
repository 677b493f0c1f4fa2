package dist

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fer-research/fer/fer"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"
)

// Data-parallel training through fer.Trainer. The child role "train"
// trains a small model on a fixed in-memory data set as configured by
// FER_T_* variables, as one rank of a job when the launcher's variables
// are set and as a single process otherwise, and writes every variable's
// final values to $FER_T_OUT.rank<r>.json.

func init() {
	roles["train"] = childTrain
}

const (
	dataN, dataD, dataC = 48, 6, 3
	valN                = 20
)

// blobs is a fixed classification set: x ~ N(0, 1)^D, y = argmax(A·x).
type blobs struct {
	x []float32
	y []int64
}

func newBlobs(n int, seed uint64) *blobs {
	rng := rand.New(rand.NewPCG(seed, 99))
	a := make([]float64, dataC*dataD)
	for i := range a {
		a[i] = rng.NormFloat64()
	}
	b := &blobs{x: make([]float32, n*dataD), y: make([]int64, n)}
	for i := range n {
		best, arg := math.Inf(-1), 0
		for c := range dataC {
			s := 0.0
			for d := range dataD {
				if c == 0 {
					b.x[i*dataD+d] = float32(rng.NormFloat64())
				}
				s += a[c*dataD+d] * float64(b.x[i*dataD+d])
			}
			if s > best {
				best, arg = s, c
			}
		}
		b.y[i] = int64(arg)
	}
	return b
}

func (b *blobs) Len() int { return len(b.y) }

func (b *blobs) Batch(idx []int, _ bool, _ *rand.Rand, dev gotch.Device) (*fer.Batch, error) {
	x := make([]float32, 0, len(idx)*dataD)
	y := make([]int64, len(idx))
	ids := make([]string, len(idx))
	for k, i := range idx {
		x = append(x, b.x[i*dataD:(i+1)*dataD]...)
		y[k] = b.y[i]
		ids[k] = strconv.Itoa(i)
	}
	return fer.NewBatch(dev, ids, [][]float32{x}, [][]int64{{int64(len(idx)), dataD}}, map[string]any{fer.TargetLabel: y})
}

// mlp is linear → (batch norm) → tanh → linear; unused, when set, is a
// layer the forward pass never uses (no gradient).
type mlp struct {
	fc1, fc2, unused *nn.Linear
	bn               *nn.BatchNorm
}

func (m *mlp) ForwardT(x *ts.Tensor, train bool) *ts.Tensor {
	h := m.fc1.Forward(x)
	if m.bn != nil {
		b := m.bn.ForwardT(h, train)
		h.MustDrop()
		h = b
	}
	a := h.MustTanh(true)
	out := m.fc2.Forward(a)
	a.MustDrop()
	return out
}

func newMLP(withBN bool, hidden int64) fer.Model {
	fer.SeedTorch(11)
	vs := nn.NewVarStore(gotch.CPU)
	p := vs.Root()
	m := &mlp{fc1: nn.NewLinear(p.Sub("fc1"), dataD, hidden, nn.DefaultLinearConfig()),
		fc2: nn.NewLinear(p.Sub("fc2"), hidden, dataC, nn.DefaultLinearConfig())}
	if withBN {
		m.bn = nn.BatchNorm1D(p.Sub("bn"), hidden, nn.DefaultBatchNormConfig())
	}
	if os.Getenv("FER_T_UNUSED") == "1" {
		m.unused = nn.NewLinear(p.Sub("unused"), 4, 4, nn.DefaultLinearConfig())
	}
	return fer.NewClassifier(m, vs)
}

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return n
	}
	return def
}

// childTrain is the "train" role (see the top of this file).
func childTrain() error {
	runtime.LockOSThread()
	cfg := fer.DefaultConfig()
	cfg.Model.Name, cfg.Data.Name = "test-mlp", "blobs"
	cfg.Epochs = envInt("FER_T_EPOCHS", 2)
	cfg.BatchSize = envInt("FER_T_BATCH", 8)
	cfg.EvalEvery = 1
	cfg.BestMetric = "val/acc"
	cfg.Seed = 5
	cfg.Device = "cpu"
	cfg.RunDir = os.Getenv("FER_T_RUNDIR")
	cfg.CheckpointEvery = envInt("FER_T_CKPT_EVERY", 0)
	switch os.Getenv("FER_T_OPT") {
	case "adam":
		cfg.Optimizer = fer.OptimizerConfig{Name: "adam", LR: 0.01, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 1e-4}
	default:
		cfg.Optimizer = fer.OptimizerConfig{Name: "sgd", LR: 0.1, Momentum: 0.9, WeightDecay: 5e-4}
	}
	hidden := int64(16)
	if os.Getenv("RANK") == "1" {
		hidden = int64(envInt("FER_T_HIDDEN_RANK1", 16))
	}
	m := newMLP(os.Getenv("FER_T_MODEL") == "bn", hidden)
	tr := &fer.Trainer{Cfg: &cfg, Model: m, Train: newBlobs(dataN, 1), Val: newBlobs(valN, 2),
		NewEvaluator: func() fer.Evaluator { return fer.NewClassificationEvaluator(dataC) }, Device: gotch.CPU}
	rank := 0
	if Launched() {
		pg, err := joinFromEnv(20 * time.Second)
		if err != nil {
			return err
		}
		defer pg.Close()
		rank = pg.Rank()
		tr.Dist = &Comm{PG: pg, AfterBackward: os.Getenv("FER_T_AFTER_BACKWARD") == "1", FindUnused: os.Getenv("FER_T_FIND_UNUSED") == "1"}
	}
	// SIGTERM (from Launch) stops training as fercli's does
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer cancel()
	stopAt, dieAt := envInt("FER_T_STOP_AT", 0), envInt("FER_T_DIE_AT", 0)
	tr.OnStep = func(step int) {
		if step == stopAt && rank == 0 {
			cancel() // only rank 0 is told: the others must stop with it
		}
		if step == dieAt && rank == 1 {
			os.Exit(7)
		}
	}
	_, err := tr.Fit(ctx, os.Getenv("FER_T_RESUME") == "1")
	var ie *fer.InterruptedError
	if errors.Is(err, ErrPeerLost) {
		fmt.Fprintln(os.Stderr, "ERROR:", err)
		os.Exit(ExitPeerLost)
	}
	if err != nil && !errors.As(err, &ie) {
		return err
	}
	vals := map[string][]float64{}
	for name, t := range m.VarStore().Variables() {
		vals[name] = t.Float64Values()
	}
	runtime.KeepAlive(m)
	b, _ := json.Marshal(vals)
	if err := os.WriteFile(fmt.Sprintf("%s.rank%d.json", os.Getenv("FER_T_OUT"), rank), b, 0o644); err != nil {
		return err
	}
	if ie != nil {
		fmt.Println("interrupted at step", ie.Step)
		if stopAt == 0 { // by a signal: exit as fercli does
			os.Exit(130)
		}
	}
	return nil
}

func readWeights(t *testing.T, path string) map[string][]float64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var w map[string][]float64
	if err := json.Unmarshal(b, &w); err != nil {
		t.Fatal(err)
	}
	return w
}

// maxDiff is the largest |a − b| over the variables whose name passes keep.
func maxDiff(t *testing.T, a, b map[string][]float64, keep func(string) bool) float64 {
	t.Helper()
	d := 0.0
	n := 0
	for name, va := range a {
		if !keep(name) {
			continue
		}
		vb, ok := b[name]
		if !ok || len(vb) != len(va) {
			t.Fatalf("variable %s: %d vs %d values", name, len(va), len(vb))
		}
		for i := range va {
			d = max(d, math.Abs(va[i]-vb[i]))
		}
		n++
	}
	if n == 0 {
		t.Fatal("no variable compared")
	}
	return d
}

func all(string) bool { return true }

// trainJob runs the train role as world ranks (world 0: one process
// without the launcher's variables) and returns the output prefix.
func trainJob(t *testing.T, world int, runDir string, env ...string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "w")
	env = append(env, "FER_T_RUNDIR="+runDir, "FER_T_OUT="+out)
	if world == 0 {
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		p := start(t, ctx, "train", env)
		if err := p.wait(); err != nil {
			t.Fatalf("single process: %v", err)
		}
		return out
	}
	runRanks(t, "train", world, 120*time.Second, env...)
	return out
}

func readMetrics(t *testing.T, runDir, split string) []fer.Record {
	t.Helper()
	recs, err := fer.ReadMetricsLog(filepath.Join(runDir, fer.MetricsFile))
	if err != nil {
		t.Fatal(err)
	}
	var out []fer.Record
	for _, r := range recs {
		if r.Split == split {
			out = append(out, r)
		}
	}
	return out
}

// TestDataParallelMatchesBigBatch: 2 processes with batch B end with the
// same weights as 1 process with batch 2B (same seed, same data order),
// after 6 steps of SGD (momentum, weight decay) and of Adam, with the
// Reducer (overlapped) and with after-backward buckets; the training and
// validation metrics agree too.
func TestDataParallelMatchesBigBatch(t *testing.T) {
	for _, tc := range []struct{ opt, mode string }{{"sgd", "overlap"}, {"adam", "overlap"}, {"sgd", "after_backward"}} {
		t.Run(tc.opt+"_"+tc.mode, func(t *testing.T) {
			env := []string{"FER_T_OPT=" + tc.opt}
			if tc.mode == "after_backward" {
				env = append(env, "FER_T_AFTER_BACKWARD=1")
			}
			oneDir, twoDir := filepath.Join(t.TempDir(), "one"), filepath.Join(t.TempDir(), "two")
			one := readWeights(t, trainJob(t, 0, oneDir, append(env, "FER_T_BATCH=16")...)+".rank0.json")
			two := trainJob(t, 2, twoDir, append(env, "FER_T_BATCH=8")...)
			r0, r1 := readWeights(t, two+".rank0.json"), readWeights(t, two+".rank1.json")
			if d := maxDiff(t, r0, r1, all); d != 0 {
				t.Errorf("ranks 0 and 1 differ by %g", d)
			}
			d := maxDiff(t, one, r0, all)
			t.Logf("max |w(1 proc, batch 16) − w(2 procs, batch 8)| = %g", d)
			if d > 1e-6 {
				t.Errorf("2 processes × batch 8 differ from 1 × batch 16 by %g > 1e-6", d)
			}
			for _, split := range []string{"train", "val"} {
				a, b := readMetrics(t, oneDir, split), readMetrics(t, twoDir, split)
				if len(a) != 2 || len(b) != 2 {
					t.Fatalf("%s records: %d and %d, want 2", split, len(a), len(b))
				}
				for i := range a {
					for _, k := range []string{"loss", "acc", "uar"} {
						if math.Abs(a[i].Values[k]-b[i].Values[k]) > 1e-5 {
							t.Errorf("epoch %d %s %s: 1 process %v, 2 processes %v", i+1, split, k, a[i].Values[k], b[i].Values[k])
						}
					}
					if a[i].Step != b[i].Step {
						t.Errorf("epoch %d: step %d vs %d", i+1, a[i].Step, b[i].Step)
					}
				}
			}
			if _, err := os.Stat(filepath.Join(twoDir, fer.LastCheckpoint)); err != nil {
				t.Errorf("rank 0 wrote no checkpoint: %v", err)
			}
		})
	}
}

// TestDataParallelBatchNorm: with BatchNorm (local batch statistics, as
// DDP) the ranks still agree on every parameter and, after the final
// evaluation (which starts from rank 0's buffers), on the running stats.
func TestDataParallelBatchNorm(t *testing.T) {
	out := trainJob(t, 2, filepath.Join(t.TempDir(), "run"), "FER_T_MODEL=bn", "FER_T_OPT=sgd")
	r0, r1 := readWeights(t, out+".rank0.json"), readWeights(t, out+".rank1.json")
	if _, ok := r0["bn.running_mean"]; !ok {
		t.Fatalf("no BatchNorm buffers among %v", r0)
	}
	if d := maxDiff(t, r0, r1, all); d != 0 {
		t.Errorf("ranks differ by %g", d)
	}
	one := readWeights(t, trainJob(t, 0, filepath.Join(t.TempDir(), "one"), "FER_T_MODEL=bn", "FER_T_OPT=sgd", "FER_T_BATCH=16")+".rank0.json")
	// local statistics over 8 samples are not those over 16: the runs
	// must differ (else the BN path was not exercised)
	if d := maxDiff(t, one, r0, func(n string) bool { return strings.HasPrefix(n, "fc1") }); d == 0 {
		t.Errorf("BatchNorm model: 2 × 8 equals 1 × 16 exactly; batch statistics are not local")
	}
}

// TestDataParallelResume: a 2-process run stopped mid-epoch (only rank 0
// is interrupted; both stop at the same step) and restarted with --resume
// on both ranks ends exactly where an uninterrupted run ends, with the same
// epoch metrics.
func TestDataParallelResume(t *testing.T) {
	full := filepath.Join(t.TempDir(), "full")
	want := readWeights(t, trainJob(t, 2, full, "FER_T_OPT=adam")+".rank0.json")
	dir := filepath.Join(t.TempDir(), "stopped")
	stopped := trainJob(t, 2, dir, "FER_T_OPT=adam", "FER_T_STOP_AT=4")
	_ = stopped
	m, err := fer.ReadCheckpointMeta(filepath.Join(dir, fer.LastCheckpoint))
	if err != nil {
		t.Fatal(err)
	}
	if m.Step != 4 || m.Epoch != 1 || m.Batch != 1 {
		t.Fatalf("checkpoint at step %d (epoch %d, batch %d), want step 4, epoch 1, batch 1", m.Step, m.Epoch, m.Batch)
	}
	out := trainJob(t, 2, dir, "FER_T_OPT=adam", "FER_T_RESUME=1")
	for r := 0; r < 2; r++ {
		got := readWeights(t, fmt.Sprintf("%s.rank%d.json", out, r))
		if d := maxDiff(t, want, got, all); d > 1e-6 {
			t.Errorf("rank %d after resume differs from the uninterrupted run by %g", r, d)
		}
	}
	a, b := readMetrics(t, full, "train"), readMetrics(t, dir, "train")
	if len(a) != 2 || len(b) != 2 {
		t.Fatalf("train records: %d and %d", len(a), len(b))
	}
	if math.Abs(a[1].Values["loss"]-b[1].Values["loss"]) > 1e-6 || a[1].Values["acc"] != b[1].Values["acc"] {
		t.Errorf("resumed epoch 2: loss %v acc %v, uninterrupted %v %v", b[1].Values["loss"], b[1].Values["acc"], a[1].Values["loss"], a[1].Values["acc"])
	}
}

// TestDataParallelModelMismatch: a rank that built another model (here a
// wider hidden layer) stops the job with an error saying so, in both
// gradient modes.
func TestDataParallelModelMismatch(t *testing.T) {
	for _, after := range []string{"0", "1"} {
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		port := freePort(t)
		var ps []*proc
		for r := range 2 {
			ps = append(ps, start(t, ctx, "train", append(rankEnv(port, r, 2), "FER_T_HIDDEN_RANK1=17", "FER_T_AFTER_BACKWARD="+after,
				"FER_T_RUNDIR="+filepath.Join(t.TempDir(), "run"), "FER_T_OUT="+filepath.Join(t.TempDir(), "w"))))
		}
		var msgs []string
		for _, p := range ps {
			if err := p.wait(); err == nil {
				t.Errorf("after_backward=%s: a rank succeeded with mismatched models", after)
			} else {
				msgs = append(msgs, err.Error())
			}
		}
		cancel()
		all := strings.Join(msgs, "\n")
		t.Logf("after_backward=%s:\n%s", after, all)
		if !strings.Contains(all, "checking the parameters against rank 0's") && !strings.Contains(all, "DDP reducer") {
			t.Errorf("after_backward=%s: no rank names the model mismatch:\n%s", after, all)
		}
	}
}

// TestDataParallelUnusedParameter: a parameter that gets no gradient
// stops DDP's Reducer with its own advice (find_unused_parameters) at the
// next step; with FindUnused the run trains, the unused parameter stays
// as initialised and the others agree across ranks.
func TestDataParallelUnusedParameter(t *testing.T) {
	out := trainJob(t, 2, filepath.Join(t.TempDir(), "run"), "FER_T_UNUSED=1", "FER_T_FIND_UNUSED=1", "FER_T_EPOCHS=1")
	r0, r1 := readWeights(t, out+".rank0.json"), readWeights(t, out+".rank1.json")
	if d := maxDiff(t, r0, r1, all); d != 0 {
		t.Errorf("ranks differ by %g", d)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	t.Setenv("FER_T_UNUSED", "1")
	init := newMLP(false, 16)
	w, ok := init.VarStore().Variables()["unused.weight"]
	if !ok {
		t.Fatal("the model has no unused layer")
	}
	if d := maxDiff(t, map[string][]float64{"unused.weight": w.Float64Values()}, r0, func(n string) bool { return n == "unused.weight" }); d != 0 {
		t.Errorf("the unused parameter moved by %g", d)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	port := freePort(t)
	var ps []*proc
	for r := range 2 {
		ps = append(ps, start(t, ctx, "train", append(rankEnv(port, r, 2), "FER_T_UNUSED=1", "FER_T_EPOCHS=1",
			"FER_T_RUNDIR="+filepath.Join(t.TempDir(), "run"), "FER_T_OUT="+filepath.Join(t.TempDir(), "w"))))
	}
	for r, p := range ps {
		err := p.wait()
		if err == nil || !strings.Contains(err.Error(), "find_unused_parameters") {
			t.Errorf("rank %d without FindUnused: %v", r, err)
		}
	}
}

// TestLaunchRankDies: Launch starts a job of the train role; rank 1
// exits in step 2; rank 0 fails its next collective with an error naming
// itself and the lost peer, within the group's timeout, and Launch
// reports rank 1's exit status.
func TestLaunchRankDies(t *testing.T) {
	var out, errs syncBuffer
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	start := time.Now()
	err := Launch(ctx, LaunchOptions{NProc: 2, Exe: os.Args[0], Args: []string{"-test.run=^$"},
		Env: append(os.Environ(), "FER_DIST_TEST_ROLE=train", "FER_T_DIE_AT=2", "FER_T_EPOCHS=20",
			"FER_T_RUNDIR="+filepath.Join(t.TempDir(), "run"), "FER_T_OUT="+filepath.Join(t.TempDir(), "w")),
		Stdout: &out, Stderr: &errs, Grace: 20 * time.Second})
	took := time.Since(start)
	var we *WorkerError
	if !errors.As(err, &we) || we.Rank != 1 || we.Code != 7 {
		t.Fatalf("Launch: %v, want rank 1 failing with status 7; stderr:\n%s", err, errs.String())
	}
	t.Logf("after %v: %v; stderr:\n%s", took, err, errs.String())
	if e := errs.String(); !strings.Contains(e, "rank 0:") || !strings.Contains(e, "another rank has exited") {
		t.Errorf("rank 0's error does not say what happened:\n%s", errs.String())
	}
	if took > 60*time.Second {
		t.Errorf("the job took %v to end after a rank died (timeout 20 s)", took)
	}
}

// TestLaunchInterrupt: cancelling Launch's context (the launcher's
// SIGINT/SIGTERM) sends SIGTERM to every worker; the ranks agree on the
// step to stop at, rank 0 writes last.ckpt, all exit with status 130.
func TestLaunchInterrupt(t *testing.T) {
	var errs syncBuffer
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	lctx, interrupt := context.WithCancel(ctx)
	out := &watchBuffer{want: "epoch 1/", then: interrupt}
	run := filepath.Join(t.TempDir(), "run")
	err := Launch(lctx, LaunchOptions{NProc: 2, Exe: os.Args[0], Args: []string{"-test.run=^$"},
		Env: append(os.Environ(), "FER_DIST_TEST_ROLE=train", "FER_T_EPOCHS=200",
			"FER_T_RUNDIR="+run, "FER_T_OUT="+filepath.Join(t.TempDir(), "w")),
		Stdout: out, Stderr: &errs, Grace: 30 * time.Second})
	var we *WorkerError
	if !errors.As(err, &we) || !we.Interrupted || we.Code != 130 {
		t.Fatalf("Launch: %v, want an interrupted job with status 130; stderr:\n%s", err, errs.String())
	}
	m, err := fer.ReadCheckpointMeta(filepath.Join(run, fer.LastCheckpoint))
	if err != nil {
		t.Fatal(err)
	}
	if m.Epoch < 1 || m.Epoch >= 200 {
		t.Errorf("checkpoint after %d epochs", m.Epoch)
	}
	steps := strings.Count(out.String(), fmt.Sprintf("interrupted at step %d", m.Step))
	if steps != 2 {
		t.Errorf("want both ranks stopped at step %d:\n%s", m.Step, out.String())
	}
}

// syncBuffer is a goroutine-safe strings.Builder.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// watchBuffer calls then once want has been written.
type watchBuffer struct {
	syncBuffer
	want string
	then func()
	once sync.Once
}

func (w *watchBuffer) Write(p []byte) (int, error) {
	n, err := w.syncBuffer.Write(p)
	if strings.Contains(w.String(), w.want) {
		w.once.Do(w.then)
	}
	return n, err
}
