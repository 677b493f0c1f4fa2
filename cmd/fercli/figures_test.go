package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"image/png"
	"os"
	"path/filepath"
	"testing"

	"github.com/fer-research/fer/fer"
	"github.com/fer-research/fer/fer/featfile"
)

// The README figures (plots/examples/make_readme_figures.sh):
//
//	go test ./cmd/fercli -run TestREADMEFigures -figures.demo runs/demo -figures.out docs/figures
//
// draws, from a finished `fercli demo` run folder, tsne.png, mds.png,
// confusion.png, curves.png and gradcam.png with the plot commands. It is
// skipped without -figures.demo.
var (
	figDemo = flag.String("figures.demo", "", "fercli demo run folder to draw the README figures from")
	figOut  = flag.String("figures.out", "docs/figures", "folder for the README figures")
)

func TestREADMEFigures(t *testing.T) {
	if *figDemo == "" {
		t.Skip("no -figures.demo run folder")
	}
	lockTorch(t)
	demo, out := *figDemo, *figOut
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	ckpt := filepath.Join(demo, fer.BestCheckpoint)
	r, meta, err := fer.LoadRun(ckpt, "device=cpu")
	if err != nil {
		t.Fatal(err)
	}
	// What `fercli eval --dump-features` writes: the test split's features.
	f, err := fer.ExtractFeatures(context.Background(), r.Model, r.Data.Test, r.Data.Classes, 256, r.Device)
	if err != nil {
		t.Fatal(err)
	}
	f.Model, f.Dataset = fmt.Sprintf("%s (epoch %d)", r.Cfg.Model.Name, meta.Epoch), "synth test set"
	feats := filepath.Join(t.TempDir(), "test.safetensors")
	if err := featfile.Save(feats, f); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) {
		t.Helper()
		o, err := runPlot(t, args...)
		if err != nil {
			t.Fatalf("fercli plot %v: %v\n%s", args, err, o)
		}
		t.Logf("fercli plot %v\n%s", args, o)
	}
	run("tsne", "-o", filepath.Join(out, "tsne.png"), feats)
	run("mds", "-o", filepath.Join(out, "mds.png"), feats)
	run("confusion", "-o", filepath.Join(out, "confusion.png"), feats)
	run("curves", "-o", filepath.Join(out, "curves.png"), demo)

	// Grad-CAM of one test face of each of four expressions.
	sd, ok := r.Data.Test.(*fer.SynthDataset)
	if !ok {
		t.Fatalf("the demo's test split is %T, not the synth set", r.Data.Test)
	}
	samples, err := sd.Samples()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var faces []string
	for _, want := range []string{"happy", "sad", "surprise", "anger"} {
		for i, s := range samples {
			if r.Data.Classes[s.Label] != want || f.Preds[i] != s.Label {
				continue
			}
			p := filepath.Join(dir, "true-"+want+".png") // caption "true-sad: sad (p = …)"
			var buf bytes.Buffer
			if err := png.Encode(&buf, s.Image()); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			faces = append(faces, p)
			break
		}
	}
	run(append([]string{"gradcam", "--checkpoint", ckpt, "-o", filepath.Join(out, "gradcam.png")}, faces...)...)
	for _, n := range []string{"tsne", "mds", "confusion", "curves", "gradcam"} {
		st, err := os.Stat(filepath.Join(out, n+".png"))
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s.png: %d KB", n, st.Size()/1024)
	}
}
