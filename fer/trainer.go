package fer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/fer-research/fer/fer/internal/torchx"
	"github.com/fer-research/fer/fer/optim"
	"github.com/sugarme/gotch"
)

// Names of the files a run writes into its run directory.
const (
	ConfigFile     = "config.yaml"
	MetricsFile    = "metrics.jsonl"
	LastCheckpoint = "last.ckpt"
	BestCheckpoint = "best.ckpt"
)

// Trainer runs the training loop shared by every model family: epochs of
// shuffled mini-batches, one optimisation step per batch (the model's own
// Stepper, SAM, or the default forward → loss → backward → clip →
// update), learning-rate schedule per epoch, evaluation every EvalEvery
// epochs, best-checkpoint selection, metrics.jsonl, last.ckpt every epoch
// (and every CheckpointEvery steps), exact --resume, a clean stop on NaN
// and on interruption.
//
// Determinism: weights are initialised by whoever builds the model (seed
// libtorch with SeedTorch(cfg.Seed) first; BuildRun does), the data order
// of epoch e is a function of (seed, e), the augmentation rng of batch i
// of epoch e a function of (seed, e, i), and libtorch's generator is
// re-seeded from (seed, step) before every step (dropout), so a run
// resumed from any checkpoint repeats exactly what an uninterrupted run
// does.
type Trainer struct {
	Cfg   *Config
	Model Model
	Loss  Loss
	Train Dataset
	// Val is evaluated every Cfg.EvalEvery epochs; nil disables
	// evaluation and best-checkpoint selection.
	Val Dataset
	// NewEvaluator makes the metrics accumulator for training outputs and
	// evaluation passes; nil means no metrics besides the loss.
	NewEvaluator func() Evaluator
	// Stepper overrides the step (default: the model's own if it
	// implements Stepper, SAMStep if Cfg.Optimizer.SAMRho > 0, else
	// DefaultStep).
	Stepper Stepper
	Device  gotch.Device
	// Classes, InputShape and AUs are stored in checkpoints for predict
	// and cross-database evaluation.
	Classes    []string
	InputShape []int64
	AUs        []string
	// Out receives the per-epoch log lines (default os.Stdout); Progress
	// draws a progress bar on stderr (default: when stderr is a terminal).
	Out      io.Writer
	Progress *bool
	// OnStep is called after every optimisation step with the step
	// number (after any checkpoint of that step).
	OnStep func(step int)
	// Aux is a second data stream drawn beside every labelled batch from
	// its StartEpoch on, handed to the model as Batch.Aux (aux.go); nil:
	// none.
	Aux *AuxStream

	// Overwrite lets a new run (Fit without resume) replace an earlier
	// run's results in Cfg.RunDir (RunResults); without it that is a
	// *RunDirUsedError.
	Overwrite bool
	// ResumeFrom is the checkpoint Fit(resume=true) continues from
	// (default Cfg.RunDir/last.ckpt), e.g. best.ckpt when last.ckpt is
	// damaged.
	ResumeFrom string
	// Dist is the process group of a data-parallel run (see Distributed);
	// nil trains in this process alone.
	Dist Distributed

	opt     *optim.Optimizer
	sync    GradSync // Dist's gradient synchroniser
	sam     *optim.SAM
	log     *MetricsLog
	meta    CheckpointMeta
	start   time.Time
	elapsed float64 // seconds of earlier sessions of this run
}

// FitResult summarises a finished run.
type FitResult struct {
	Epochs, Steps int
	// BestKey/Best/BestEpoch: the selected checkpoint (BestEpoch 0: no
	// evaluation ran).
	BestKey   string
	Best      float64
	BestEpoch int
	// Last are the metrics of the last evaluation ("val/uar", ...).
	Last           map[string]float64
	LastCheckpoint string
	BestCheckpoint string
	RunDir         string
}

// InterruptedError is returned when the context was cancelled (SIGINT):
// the step in progress was finished and a checkpoint written.
type InterruptedError struct {
	Step, Epoch int
	Checkpoint  string
	RunDir      string
}

func (e *InterruptedError) Error() string {
	return fmt.Sprintf("interrupted after step %d (epoch %d); state saved to %s; continue the run with: fercli train --resume %s", e.Step, e.Epoch, e.Checkpoint, e.RunDir)
}

// Optimizer is the optimiser Fit built (nil before Fit).
func (t *Trainer) Optimizer() *optim.Optimizer { return t.opt }

func (t *Trainer) path(name string) string { return filepath.Join(t.Cfg.RunDir, name) }

// Fit trains for Cfg.Epochs epochs. With resume it continues the run in
// Cfg.RunDir from last.ckpt (or ResumeFrom); without, the run directory
// must not hold an earlier run's results unless Overwrite is set.
//
// Fit holds the run directory's lock (LockRunDir) while it runs, removes
// temporary files an interrupted write left there, and writes every file
// atomically: whatever happens, the run dir holds the last complete
// checkpoint. A libtorch failure (out of memory, a shape error) comes
// back as an error.
func (t *Trainer) Fit(ctx context.Context, resume bool) (res *FitResult, err error) {
	if t.Cfg == nil || t.Model == nil || t.Train == nil {
		return nil, errors.New("trainer: Cfg, Model and Train are required")
	}
	// libtorch's grad mode is per OS thread: keep the whole run on one
	// (a no-op nesting when the caller already locked, as fercli does)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := torchx.EnableGrad(); err != nil {
		return nil, err
	}
	if err := t.Cfg.Validate(); err != nil {
		return nil, err
	}
	if t.Loss == nil {
		t.Loss = CrossEntropy{}
	}
	if t.Out == nil {
		t.Out = os.Stdout
	}
	t.quietRanks()
	if t.Train.Len() == 0 {
		return nil, errors.New("trainer: the training split is empty")
	}
	if t.Aux != nil {
		if err := t.Aux.check(); err != nil {
			return nil, err
		}
	}
	cfg := t.Cfg
	defer CatchTorch(&err, "training")
	// rank 0 owns the run dir of a data-parallel run; the others only
	// read the checkpoint it sends them
	if t.isMain() {
		lock, err := LockRunDir(cfg.RunDir)
		if err != nil {
			return nil, err
		}
		defer lock.Unlock()
		if removed, err := RemoveStaleTemps(cfg.RunDir); err != nil {
			return nil, fmt.Errorf("run dir %s: %w", cfg.RunDir, err)
		} else if len(removed) > 0 {
			fmt.Fprintf(t.Out, "removed %d temporary file(s) an interrupted write left in %s: %s\n", len(removed), cfg.RunDir, strings.Join(removed, ", "))
		}
	}
	oc := cfg.Optimizer
	t.opt, err = optim.New(t.Model.VarStore(), oc.optimConfig())
	if err != nil {
		return nil, err
	}
	if oc.SAMRho > 0 {
		t.sam = &optim.SAM{Rho: oc.SAMRho, Adaptive: oc.SAMAdaptive}
	}
	bestKey, _ := cfg.BestKey()
	cfgYAML, err := cfg.YAML()
	if err != nil {
		return nil, err
	}
	t.meta = CheckpointMeta{Model: cfg.Model.Name, Seed: cfg.Seed, BestKey: bestKey,
		Config: string(cfgYAML), Classes: t.Classes, InputShape: t.InputShape, AUs: t.AUs}

	var trainEval Evaluator
	if t.NewEvaluator != nil {
		trainEval = t.NewEvaluator()
	}
	lastPath := t.path(LastCheckpoint)
	if resume {
		from := t.ResumeFrom
		if from == "" {
			from = lastPath
		}
		if err := t.restore(from, trainEval); err != nil {
			return nil, err
		}
		if t.isMain() {
			if err := TruncateMetricsLog(t.path(MetricsFile), t.meta.Step); err != nil {
				return nil, err
			}
		}
	} else if t.isMain() {
		if files := RunResults(cfg.RunDir); len(files) > 0 {
			if !t.Overwrite {
				return nil, &RunDirUsedError{Dir: cfg.RunDir, Files: files, HasLast: slices.Contains(files, LastCheckpoint)}
			}
			fmt.Fprintf(t.Out, "--overwrite: replacing the earlier run in %s (%s)\n", cfg.RunDir, strings.Join(files, ", "))
		}
		for _, name := range runDirFiles {
			if err := os.Remove(t.path(name)); err != nil && !errors.Is(err, os.ErrNotExist) {
				return nil, err
			}
		}
	}
	if cfg.Init != "" && !resume {
		// a fer checkpoint, or published weights the model's
		// WeightsLoader reads (weights.go)
		rep, err := InitWeights(t.Model, cfg.Init, t.Classes)
		if err != nil {
			return nil, err
		}
		fmt.Fprintln(t.Out, rep)
	}
	if t.isMain() {
		if err := cfg.Save(t.path(ConfigFile)); err != nil {
			return nil, err
		}
		if err := writeRunRecords(t.Train, cfg.RunDir); err != nil {
			return nil, err
		}
		if t.log, err = OpenMetricsLog(t.path(MetricsFile)); err != nil {
			return nil, err
		}
		defer t.log.Close()
	}
	if err := t.distSetup(trainEval); err != nil {
		return nil, err
	}
	defer t.closeDist()
	t.start = time.Now()
	t.elapsed = t.meta.ElapsedS

	stepper := t.Stepper
	if stepper == nil {
		if s, ok := t.Model.(Stepper); ok {
			stepper = s
		} else if t.sam != nil {
			stepper = StepFunc(SAMStep)
		} else {
			stepper = StepFunc(DefaultStep)
		}
	}

	if t.meta.Epoch >= cfg.Epochs {
		// resumed a finished run: report what the checkpoint holds
		fmt.Fprintf(t.Out, "run %s already finished its %d epochs\n", cfg.RunDir, cfg.Epochs)
	}
	for epoch := t.meta.Epoch; epoch < cfg.Epochs; epoch++ {
		if err := t.runEpoch(ctx, epoch, stepper, trainEval); err != nil {
			return nil, err
		}
	}
	res = &FitResult{Epochs: t.meta.Epoch, Steps: t.meta.Step, BestKey: bestKey, Best: t.meta.Best,
		BestEpoch: t.meta.BestEpoch, Last: t.meta.Metrics, LastCheckpoint: lastPath, RunDir: cfg.RunDir}
	if t.meta.BestEpoch > 0 {
		res.BestCheckpoint = t.path(BestCheckpoint)
	}
	return res, nil
}

// RunRecorder is implemented by a training split that records files of
// its own in the run directory (a semi-supervised run's labelled subset,
// LabelledFile): name → content, written atomically when training starts.
type RunRecorder interface {
	RunRecords() map[string][]byte
}

func writeRunRecords(d Dataset, dir string) error {
	r, ok := d.(RunRecorder)
	if !ok {
		return nil
	}
	for name, b := range r.RunRecords() {
		if err := WriteFileAtomic(filepath.Join(dir, name), func(w io.Writer) error {
			_, err := w.Write(b)
			return err
		}); err != nil {
			return fmt.Errorf("run dir %s: %w", dir, err)
		}
	}
	return nil
}

// restore loads last.ckpt into the model, optimiser and counters.
func (t *Trainer) restore(path string, trainEval Evaluator) error {
	lc, err := t.loadCheckpoint(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("--resume: %s has no %s to resume from%s", t.Cfg.RunDir, filepath.Base(path), recoveryHint(t.Cfg.RunDir, path))
		}
		return fmt.Errorf("--resume: %w%s", err, recoveryHint(t.Cfg.RunDir, path))
	}
	defer lc.Drop()
	m := lc.Meta
	if !strings.EqualFold(m.Model, t.Cfg.Model.Name) {
		return fmt.Errorf("--resume: %s holds model %s, the config says %s", path, m.Model, t.Cfg.Model.Name)
	}
	if m.Seed != t.Cfg.Seed {
		return fmt.Errorf("--resume: %s was trained with seed %d, the config says %d (an exact resume needs the same seed)", path, m.Seed, t.Cfg.Seed)
	}
	if err := lc.LoadWeights(t.Model.VarStore()); err != nil {
		return err
	}
	if err := lc.LoadOptimizer(t.opt); err != nil {
		return err
	}
	t.meta.Epoch, t.meta.Batch, t.meta.Step = m.Epoch, m.Batch, m.Step
	t.meta.Best, t.meta.BestEpoch, t.meta.Metrics = m.Best, m.BestEpoch, m.Metrics
	t.meta.ElapsedS = m.ElapsedS
	t.meta.Train = m.Train
	if m.BestKey != "" && m.BestKey != t.meta.BestKey && m.BestEpoch > 0 {
		return fmt.Errorf("--resume: %s selected its best checkpoint by %s, the config says %s", path, m.BestKey, t.meta.BestKey)
	}
	if m.Train != nil && trainEval != nil && len(m.Train.Eval) > 0 {
		if err := trainEval.SetState(m.Train.Eval); err != nil {
			return fmt.Errorf("--resume: %w", err)
		}
	}
	fmt.Fprintf(t.Out, "resuming %s at epoch %d, batch %d (step %d)\n", t.Cfg.RunDir, m.Epoch+1, m.Batch, m.Step)
	return nil
}

// RNG streams (see NewRand): data order, batch augmentation.
const (
	streamOrder   = 1 << 40
	streamAugment = 2 << 40
)

// EpochOrder is the training order of epoch (0-based): the data set's
// own sampler if it has one, else a permutation seeded by (seed, epoch).
func EpochOrder(ds Dataset, seed int64, epoch int) []int {
	rng := NewRand(seed, streamOrder+uint64(epoch))
	if s, ok := ds.(EpochSampler); ok {
		return s.EpochIndices(epoch, rng)
	}
	return rng.Perm(ds.Len())
}

// BatchRand is the augmentation rng of batch (0-based) of epoch.
func BatchRand(seed int64, epoch, batch int) *rand.Rand {
	return NewRand(seed, streamAugment+uint64(epoch)<<20+uint64(batch))
}

// StepSeed is the libtorch seed set before step (1-based).
func StepSeed(seed int64, step int) int64 {
	// splitmix64 finaliser: nearby steps get unrelated seeds
	z := uint64(seed) + uint64(step)*0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return int64((z ^ (z >> 31)) >> 1)
}

// Chunks cuts an index order into batches of size n; n < 1 gives no
// batch (callers check the batch size and report it).
func Chunks(order []int, n int, dropLast bool) [][]int {
	if n < 1 {
		return nil
	}
	var out [][]int
	for i := 0; i < len(order); i += n {
		j := min(i+n, len(order))
		if dropLast && j-i < n {
			break
		}
		out = append(out, order[i:j])
	}
	return out
}

func (t *Trainer) runEpoch(ctx context.Context, epoch int, stepper Stepper, trainEval Evaluator) error {
	cfg := t.Cfg
	lr := cfg.Schedule.LR(cfg.Optimizer.LR, epoch, cfg.Epochs)
	t.opt.SetLR(lr)
	batches := t.epochBatches(epoch)
	if len(batches) == 0 {
		return fmt.Errorf("epoch %d: no training batch (%d samples, batch_size %d, drop_last %v)", epoch+1, t.Train.Len(), cfg.BatchSize, cfg.DropLast)
	}
	acc := &TrainAccum{}
	first := 0
	if t.meta.Batch > 0 && t.meta.Train != nil {
		// resuming mid-epoch
		acc = t.meta.Train
		first = t.meta.Batch
	} else if trainEval != nil {
		trainEval.Reset()
	}
	epochStart := time.Now()
	timeBefore := acc.TimeS
	bar := newBar(len(batches), fmt.Sprintf("epoch %d/%d", epoch+1, cfg.Epochs), t.Progress)
	bar.Set(first)
	sc := &StepContext{Model: t.Model, Loss: t.Loss, Opt: t.opt, SAM: t.sam,
		ClipGradNorm: cfg.Optimizer.ClipGradNorm, Epoch: epoch + 1, Sync: t.sync}
	snapshot := func(done int) error {
		acc.TimeS = timeBefore + time.Since(epochStart).Seconds()
		if trainEval != nil {
			st, err := trainEval.State()
			if err != nil {
				return err
			}
			acc.Eval = st
		}
		t.meta.Epoch, t.meta.Batch = epoch, done
		// the sums over every rank in a data-parallel run
		all, _, err := t.reduceTrain(acc, trainEval)
		if err != nil {
			return err
		}
		t.meta.Train = all
		return t.save(t.path(LastCheckpoint))
	}
	for bi := first; bi < len(batches); bi++ {
		stop, err := t.stopRequested(ctx)
		if err != nil {
			bar.Finish()
			return fmt.Errorf("epoch %d, batch %d: %w", epoch+1, bi+1, err)
		}
		if stop {
			bar.Finish()
			if err := snapshot(bi); err != nil {
				return fmt.Errorf("interrupted, and saving the checkpoint failed: %w", err)
			}
			return &InterruptedError{Step: t.meta.Step, Epoch: epoch + 1, Checkpoint: t.path(LastCheckpoint), RunDir: cfg.RunDir}
		}
		idx := batches[bi]
		b, err := t.Train.Batch(idx, true, t.batchRand(epoch, bi), t.Device)
		if err == nil {
			if err = t.attachAux(b, epoch, bi); err != nil {
				b.Drop()
			}
		}
		if err != nil {
			bar.Finish()
			return fmt.Errorf("epoch %d, batch %d: %w", epoch+1, bi+1, err)
		}
		step := t.meta.Step + 1
		SeedTorch(t.stepSeed(step))
		sc.Batch, sc.Step = bi, step
		if t.sync != nil {
			if err := t.sync.BeforeForward(); err != nil {
				b.Drop()
				bar.Finish()
				return fmt.Errorf("epoch %d, batch %d (step %d): %w", epoch+1, bi+1, step, err)
			}
		}
		r, err := runStep(stepper, sc, b)
		if err != nil {
			b.Drop()
			bar.Finish()
			var nf *NonFiniteError
			if errors.As(err, &nf) {
				return t.nonFinite(err)
			}
			if IsOutOfMemory(err) {
				return fmt.Errorf("epoch %d, batch %d (step %d): %w; lower batch_size (now %d) or the input size; %s", epoch+1, bi+1, step, err, cfg.BatchSize, t.lastGood())
			}
			return fmt.Errorf("epoch %d, batch %d (step %d): %w", epoch+1, bi+1, step, err)
		}
		n := b.Size
		acc.N += n
		acc.Batches++
		acc.LossSum += r.Loss * float64(n)
		acc.PartSums = sumParts(acc.PartSums, r.Parts, n)
		if trainEval != nil && r.Outputs != nil {
			if err := trainEval.Add(r.Outputs, b); err != nil {
				r.Outputs.Drop()
				b.Drop()
				bar.Finish()
				return fmt.Errorf("epoch %d, batch %d: %w", epoch+1, bi+1, err)
			}
		}
		r.Outputs.Drop()
		b.Drop()
		t.meta.Step = step
		bar.Describe(fmt.Sprintf("epoch %d/%d loss %.4f", epoch+1, cfg.Epochs, acc.LossSum/float64(acc.N)))
		bar.Add(1)
		if cfg.LogEvery > 0 && step%cfg.LogEvery == 0 {
			vals := map[string]float64{"loss": r.Loss, "lr": lr, "grad_norm": r.GradNorm}
			for k, v := range r.Parts {
				vals["loss/"+k] = v
			}
			if err := t.log.Write(Record{Epoch: epoch + 1, Step: step, Split: "train_step", Values: vals}); err != nil {
				return err
			}
		}
		// A step checkpoint on the epoch's last batch would precede the
		// epoch's records; the epoch-end checkpoint covers that step.
		if cfg.CheckpointEvery > 0 && step%cfg.CheckpointEvery == 0 && bi+1 < len(batches) {
			if err := snapshot(bi + 1); err != nil {
				return err
			}
		}
		if t.OnStep != nil {
			t.OnStep(step)
		}
	}
	bar.Finish()
	acc.TimeS = timeBefore + time.Since(epochStart).Seconds()
	acc, evalMetrics, err := t.reduceTrain(acc, trainEval)
	if err != nil {
		return err
	}

	trainVals := map[string]float64{"loss": acc.LossSum / float64(acc.N), "lr": lr, "time_s": acc.TimeS}
	for k, v := range acc.PartSums {
		trainVals["loss/"+k] = v / float64(acc.N)
	}
	for k, v := range evalMetrics {
		trainVals[k] = v
	}
	if err := t.log.Write(Record{Epoch: epoch + 1, Step: t.meta.Step, Split: "train", Values: trainVals}); err != nil {
		return err
	}
	line := fmt.Sprintf("epoch %d/%d  step %d  lr %.3g  train %s", epoch+1, cfg.Epochs, t.meta.Step, lr, fmtMetrics(trainVals, "lr", "time_s"))

	t.meta.Epoch, t.meta.Batch, t.meta.Train = epoch+1, 0, nil
	isLast := epoch+1 == cfg.Epochs
	if t.Val != nil && cfg.EvalEvery > 0 && ((epoch+1)%cfg.EvalEvery == 0 || isLast) {
		var ev Evaluator
		if t.NewEvaluator != nil {
			ev = t.NewEvaluator()
		}
		start := time.Now()
		SeedTorch(StepSeed(cfg.Seed, -(epoch + 1)))
		// evaluation is short: an interrupt waits for it and stops before
		// the next batch, after the epoch-end checkpoint
		vals, err := t.evaluate(context.WithoutCancel(ctx), ev)
		if err != nil {
			return fmt.Errorf("epoch %d: evaluation: %w", epoch+1, err)
		}
		vals["time_s"] = time.Since(start).Seconds()
		if err := t.log.Write(Record{Epoch: epoch + 1, Step: t.meta.Step, Split: "val", Values: vals}); err != nil {
			return err
		}
		t.meta.Metrics = map[string]float64{}
		for k, v := range vals {
			if k != "time_s" && !math.IsNaN(v) && !math.IsInf(v, 0) {
				t.meta.Metrics["val/"+k] = v
			}
		}
		line += "  val " + fmtMetrics(vals, "time_s")
		key, maximize := cfg.BestKey()
		v, ok := t.meta.Metrics[key]
		if !ok {
			return fmt.Errorf("best_metric %s: evaluation reports %s", key, strings.Join(prefixed("val/", sortedKeys(vals)), ", "))
		}
		if t.meta.BestEpoch == 0 || (maximize && v > t.meta.Best) || (!maximize && v < t.meta.Best) {
			t.meta.Best, t.meta.BestEpoch = v, epoch+1
			if err := t.save(t.path(BestCheckpoint)); err != nil {
				return err
			}
			line += "  *best*"
		}
	}
	if err := t.save(t.path(LastCheckpoint)); err != nil {
		return err
	}
	fmt.Fprintf(t.Out, "%s  %.1fs\n", line, acc.TimeS)
	return nil
}

func prefixed(p string, ks []string) []string {
	out := make([]string, len(ks))
	for i, k := range ks {
		out[i] = p + k
	}
	return out
}

// fmtMetrics prints "loss 0.512 acc 0.831 ..." in a fixed order: loss
// first, then the rest sorted, skipping the given keys.
func fmtMetrics(vals map[string]float64, skip ...string) string {
	keys := make([]string, 0, len(vals))
	for k := range vals {
		if k == "loss" || containsStr(skip, k) {
			continue
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if _, ok := vals["loss"]; ok {
		keys = append([]string{"loss"}, keys...)
	}
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s %.4f", k, vals[k])
	}
	return b.String()
}

func containsStr(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}

func (t *Trainer) save(path string) error {
	if !t.isMain() {
		return nil
	}
	t.meta.ElapsedS = t.elapsed + time.Since(t.start).Seconds()
	return SaveCheckpoint(path, t.Model, t.opt, t.meta)
}

// runStep is one stepper call with libtorch failures as errors.
func runStep(s Stepper, sc *StepContext, b *Batch) (r StepResult, err error) {
	defer CatchTorch(&err, "training step")
	return s.Step(sc, b)
}

// lastGood says where the run can be continued from after a failed step:
// the last checkpoint, or, when none was written, how to start again.
func (t *Trainer) lastGood() string {
	last := t.path(LastCheckpoint)
	if m, e := ReadCheckpointMeta(last); e == nil {
		return fmt.Sprintf("the last good checkpoint is %s (step %d): continue with fercli train --resume %s (with --set for the change)", last, m.Step, t.Cfg.RunDir)
	}
	if len(RunResults(t.Cfg.RunDir)) > 0 {
		return fmt.Sprintf("no checkpoint was written yet: start the run again with --overwrite (run dir %s)", t.Cfg.RunDir)
	}
	return fmt.Sprintf("no checkpoint was written yet: start the run again (run dir %s)", t.Cfg.RunDir)
}

// nonFinite turns a NaN/Inf step into the run's final error, pointing at
// the last good checkpoint (which is left as it was).
func (t *Trainer) nonFinite(err error) error {
	return fmt.Errorf("training stopped: %w; the parameters were not updated with it. Lower optimizer.lr or set optimizer.clip_grad_norm; %s", err, t.lastGood())
}

// Evaluate runs model over every sample of ds in order (no gradients,
// eval mode) and returns the mean loss ("loss", when loss is non-nil) and
// the evaluator's metrics. desc labels the progress bar.
func Evaluate(ctx context.Context, m Model, loss Loss, ds Dataset, ev Evaluator, batchSize int, dev gotch.Device, desc string, progress *bool) (vals map[string]float64, err error) {
	if ds.Len() == 0 {
		return nil, errors.New("evaluate: empty split")
	}
	if batchSize < 1 {
		return nil, fmt.Errorf("evaluate: batch size %d, want >= 1", batchSize)
	}
	defer func() {
		if IsOutOfMemory(err) {
			err = fmt.Errorf("%w; lower the evaluation batch size (now %d: eval_batch_size, or --batch-size of fercli eval)", err, batchSize)
		}
	}()
	defer CatchTorch(&err, "evaluation")
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if ev != nil {
		ev.Reset()
	}
	order := make([]int, ds.Len())
	for i := range order {
		order[i] = i
	}
	batches := Chunks(order, batchSize, false)
	bar := newBar(len(batches), desc, progress)
	defer bar.Finish()
	var lossSum float64
	n := 0
	rng := NewRand(0, 0) // eval batches are not augmented
	err = torchx.NoGrad(func() error {
		for bi, idx := range batches {
			if err := ctx.Err(); err != nil {
				return err
			}
			b, err := ds.Batch(idx, false, rng, dev)
			if err != nil {
				return fmt.Errorf("batch %d: %w", bi+1, err)
			}
			out, err := m.Forward(b, false)
			if err != nil {
				b.Drop()
				return fmt.Errorf("batch %d: forward: %w", bi+1, err)
			}
			if loss != nil {
				lv, err := loss.Loss(out, b)
				if err != nil {
					out.Drop()
					b.Drop()
					return fmt.Errorf("batch %d: loss: %w", bi+1, err)
				}
				v, err := torchx.Item(torchx.Handle(lv.Total))
				lv.Drop()
				if err != nil {
					out.Drop()
					b.Drop()
					return err
				}
				lossSum += v * float64(b.Size)
			}
			if ev != nil {
				if err := ev.Add(out, b); err != nil {
					out.Drop()
					b.Drop()
					return fmt.Errorf("batch %d: %w", bi+1, err)
				}
			}
			n += b.Size
			out.Drop()
			b.Drop()
			bar.Add(1)
		}
		return nil
	})
	runtime.KeepAlive(m)
	if err != nil {
		return nil, err
	}
	vals = map[string]float64{}
	if loss != nil && n > 0 {
		vals["loss"] = lossSum / float64(n)
	}
	if ev != nil {
		for k, v := range ev.Metrics() {
			vals[k] = v
		}
	}
	return vals, nil
}
