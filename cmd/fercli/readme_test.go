package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/fer-research/fer/data/synth"
	"github.com/fer-research/fer/internal/abawfixture"
	"github.com/fer-research/fer/internal/rmsetfixture"
	fx "github.com/fer-research/fer/internal/staticfixtures"
)

// README's examples run as written (issue #11). The test reads every
// ```sh block of README.md, in order, and runs each fercli command line in
// one working directory, through the real CLI. Three things are adapted,
// and only these:
//
//   - shrink: training commands get flags appended that make them a
//     seconds-long run (fewer and smaller samples, one epoch, a narrow
//     network); everything else about the line is as written;
//   - paths: the placeholder data roots (/data/DFEW, /data/AFEW,
//     /data/RAF-DB/basic, /data/FERPlus, /data/AffectNet, /data/Aff-Wild2)
//     point at fixtures in the real on-disk layouts, face.png / faces/
//     exist (RMFER's lines: /data/RAF-DB/basic is a larger RAF-DB
//     fixture and /data/rmset a synthetic RMset), and repository paths (docs/...) are read from the checkout;
//   - shell: a `NAME=value` line sets a variable that later lines use as
//     $NAME, and `ffmpeg` lines (making an example video) run through
//     bash;
//   - skipped: lines that are not fercli commands run by this test
//     (set-up, the test suite itself, scripts of multi-day runs) are
//     listed in readmeSkipped with the reason.
//
// A new README command is therefore run by this test, or the test fails
// until it is listed in readmeSkipped with a reason (or gets a fixture).
// The test takes ~30 s of CPU; FER_SKIP_README_TEST=1 skips it.

// readmeSkipped are the README lines this test does not run, with why.
var readmeSkipped = map[string]string{
	"./setup-gotch.sh": "installs system packages and builds fercli: it is what .ci/run does before this test",
	"go test ./...":    "the test suite this test is part of",
	"LIBTORCH=$(python3 -c 'import torch,os;print(os.path.dirname(torch.__file__))') ./setup-gotch.sh": "needs a second libtorch (a Python torch package with its C++ libraries) and rebuilds gotch",
	"repro/stt_dfew.sh /data/DFEW": "5 folds × 100 epochs on the real DFEW; TestReproSTTDFEWScript runs the script on a fixture",
	"torchrun --nproc_per_node 2 --no_python --redirects 1 --tee 1  bin/fercli train --model smallcnn --data synth --epochs 1 --run-dir runs/dp-torchrun":                                                                                                   "TestTrainTorchrun runs fercli under Debian's torchrun (as /usr/bin/python3 -m torch.distributed.run; the torchrun script may be absent from PATH)",
	"/usr/bin/python3 -m torch.distributed.run --nnodes 2 --node_rank $NODE  --nproc_per_node 2 --master_addr $MASTER --master_port 29500  --no_python --redirects 1 --tee 1  bin/fercli train --model smallcnn --data synth --epochs 2 --run-dir runs/dp4": "needs two machines",
	"repro/affwild2.sh /data/Aff-Wild2": "the five models on the real Aff-Wild2; TestTrainAffWild2AllModels runs the script on an ABAW fixture",
	"repro/qcs.sh /data/QCS":            "10 runs of 50-200 epochs on the real RAF-DB, FERPlus and AffectNet; TestReproQCSScript runs the script on a fixture",
	"go test ./data -run '^$' -fuzz '^FuzzAffectNetCSV$' -fuzztime 5m -parallel 1":                                                                 "fuzzes for 5 minutes; plain go test runs every target's seed corpus",
	"fercli train rmfer --rafdb --data-root /data/RAF-DB/basic --rmset /data/rmset --set data.options.labelled=4000 --run-dir runs/rmfer_rafdb_4k": "needs at least 4,000 training images; TestReproRMFERScript runs the protocol with LABELLED=14 on a fixture, fer's TestStaticLabelledSubset checks the subset",
	"fercli train rmfer --affectnet8 --data-root /data/AffectNet --rmset /data/rmset --init enet_b2_8.pt":                                          "needs HSEmotion's enet_b2_8.pt, which cannot be downloaded here; TestRMFERWeightsLoader loads a file the reference script writes in that format",
	"fercli predict --model effnet_b2 --weights enet_b2_8.pt --data affectnet8 face.png":                                                           "needs HSEmotion's enet_b2_8.pt, which cannot be downloaded here; TestEffNetClassifierWeights loads a file the reference script writes in that format",
	"repro/rmfer.sh rafdb /data/RAF-DB/basic /data/rmset":                                                                                          "3-4 runs × 15 epochs on the real RAF-DB; TestReproRMFERScript runs the script on fixtures",
}

// readmeShrink are the flags appended to a command to make it a small run,
// chosen by the first words of the command after "fercli".
var readmeShrink = []struct {
	prefix string
	flags  []string
}{
	{"demo", []string{"--train-n", "70", "--val-n", "35", "--test-n", "35", "--size", "32", "--crop", "0", "--width", "4", "--epochs", "1", "--batch-size", "16", "--progress=false"}},
	{"train stt", append([]string{}, tinySTT...)},
	{"train --model smallcnn --data synth", []string{"--epochs", "1", "--batch-size", "16", "--progress=false",
		"--set", "data.options={train_n: 48, val_n: 14, test_n: 14, size: 32, crop: 0}", "--set", "model.options.width=4"}},
	{"train --resume", []string{"--progress=false"}},
	{"train mt-vgg ", tinyAffWild2("mt-vgg")},
	{"train mt-vgg-rnn ", tinyAffWild2("mt-vgg-rnn")},
	{"train av-mt-vgg-rnn ", tinyAffWild2("av-mt-vgg-rnn")},
	{"train mt-arcres --init", []string{"--set", "data.options={frames: 2, duration: 1, size: 32, workers: 2}", "--epochs", "1", "--batch-size", "4", "--best-metric", "val/acc", "--progress=false"}},
	{"train mt-arcres ", tinyAffWild2("mt-arcres")},
	{"train mt-arcvgg ", tinyAffWild2("mt-arcvgg")},
	{"eval --ckpt runs/mt-arcres_affwild2/best.ckpt --data dfew", []string{"--set", "data.options={frames: 2, duration: 1, size: 32, workers: 2}", "--progress=false"}},
	{"train resnet18 --rafdb", tinyStatic},
	{"train effnet_b2 --affectnet8", tinyStatic},
	{"train smallcnn --ferplus", []string{"--epochs", "1", "--batch-size", "8", "--progress=false", "--set", "model.options.width=4"}},
	{"predict --ckpt runs/demo/best.ckpt -o megamind.csv", []string{"--every", "10"}},
	// QCS and DCS at the size of the reference's published stand-ins
	{"train qcs", append(append([]string{}, qcsTiny...), tinyStatic...)},
	{"train dcs", append(append([]string{}, qcsTiny...), tinyStatic...)},
	{"predict --model qcs", append([]string{}, qcsTiny...)},
	{"train rmfer", append([]string{}, tinyRMFER...)},
}

// readmeRMFERLines are the command prefixes whose /data/RAF-DB/basic and
// /data/rmset point at fixtures (RMFER's section; other sections' lines
// with those roots get none).
var readmeRMFERLines = []string{"train rmfer", "rmset attention"}

// readmeCommands extracts the command lines of the ```sh blocks: comments
// removed, continuation lines joined.
func readmeCommands(t *testing.T) []string {
	b, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	var cmds []string
	in := false
	cont := ""
	for _, line := range strings.Split(string(b), "\n") {
		trimmed := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(trimmed, "```"):
			in = !in && trimmed == "```sh"
			continue
		case !in:
			continue
		}
		if i := strings.Index(line, " #"); i >= 0 {
			line = line[:i]
		}
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		line = cont + strings.TrimSpace(line)
		cont = ""
		if strings.HasSuffix(line, `\`) {
			cont = strings.TrimSuffix(line, `\`) + " "
			continue
		}
		if line != "" {
			cmds = append(cmds, line)
		}
	}
	return cmds
}

var (
	fercliLine = regexp.MustCompile(`^(bin/)?fercli( |$)`)
	goTestLine = regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_]*=\S+ )*go test `)
	assignment = regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_]*)=(\S+)$`)
)

func TestReadmeExamplesRun(t *testing.T) {
	if os.Getenv("FER_SKIP_README_TEST") == "1" {
		t.Skip("FER_SKIP_README_TEST=1")
	}
	cmds := readmeCommands(t)
	if len(cmds) < 10 {
		t.Fatalf("found %d README commands: is README.md's ```sh fencing intact?", len(cmds))
	}
	work := t.TempDir()
	dfew := writeDFEWFixture(t)
	afew := writeAFEWFixture(t)
	faces := filepath.Join(work, "faces")
	samples, err := synth.Generate(synth.Config{N: 3, Size: 48, Seed: 11})
	if err != nil {
		t.Fatal(err)
	}
	if err := synth.WritePNGs(faces, samples); err != nil {
		t.Fatal(err)
	}
	first, _ := filepath.Glob(filepath.Join(faces, "*.png"))
	copyFile(t, first[0], filepath.Join(work, "face.png"))
	rafdb, ferplus, affectnet := t.TempDir(), t.TempDir(), t.TempDir()
	n := fx.Counts{Train: 2, Test: 2}
	fx.RAFDB(t, rafdb, n)
	fx.FERPlus(t, ferplus, n)
	fx.AffectNet(t, affectnet, n, 8)
	abaw, err := abawfixture.Write(t.TempDir(), abawfixture.Options{Size: 32, Frames: 12, Videos: true})
	if err != nil {
		t.Fatal(err)
	}
	// /data/QCS: the public QCS code's datas/ layout; ir50.pth,
	// QCS_RAF-DB.pth and QCS_affect-8.pth (here any QCS checkpoint: only
	// its IR-50 is used) are the reference's reduced published files
	qcsRoot := t.TempDir()
	fx.QCSList(t, filepath.Join(qcsRoot, "RAF-DB"), "raf_db_basic_train.txt", "raf_db_basic_test.txt", "basic", 7, fx.Counts{Train: 2, Test: 1}, ".png")
	fx.QCSList(t, filepath.Join(qcsRoot, "AffectNet"), "affectnet_training-cls8-v7.txt", "affectnet_validation-cls8.txt", "Manually_trainval_croped", 8, fx.Counts{Train: 2, Test: 1}, ".jpg")
	qcsFiles := qcsPublished.available(t)
	if qcsFiles {
		for link, file := range map[string]string{"ir50.pth": "ir50.pth", "QCS_RAF-DB.pth": "QCS_RAF-DB.pth", "QCS_affect-8.pth": "QCS_RAF-DB.pth"} {
			if err := os.Symlink(qcsPublished.file(file), filepath.Join(work, link)); err != nil {
				t.Fatal(err)
			}
		}
	}
	repo, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	paths := strings.NewReplacer("/data/DFEW", dfew, "/data/AFEW", afew, "/data/RAF-DB/basic", rafdb,
		"/data/FERPlus", ferplus, "/data/AffectNet", affectnet, "/data/Aff-Wild2", abaw.Root,
		"/data/QCS", qcsRoot,
		" docs/", " "+filepath.Join(repo, "docs")+"/")
	vars := map[string]string{}
	rm := filepath.Join(work, "rmset-fixture")
	rmsetfixture.Synthetic{Videos: 1, People: 4, Frames: 70, Size: 32}.Write(t, rm)
	rmferPaths := strings.NewReplacer("/data/RAF-DB/basic", writeRAFDBFaces(t), "/data/rmset", rm)

	ran := 0
	for _, line := range cmds {
		if goTestLine.MatchString(line) {
			t.Logf("skipped: %s (a go test command: part of the test suite)", line)
			continue
		}
		if reason, ok := readmeSkipped[line]; ok {
			t.Logf("skipped: %s (%s)", line, reason)
			continue
		}
		if !qcsFiles && (strings.Contains(line, "ir50.pth") || strings.Contains(line, "QCS_")) {
			t.Logf("skipped: %s (the PyTorch reference that writes the published files is unavailable)", line)
			continue
		}
		if m := assignment.FindStringSubmatch(line); m != nil {
			vars[m[1]] = m[2]
			continue
		}
		line = os.Expand(line, func(k string) string {
			if v, ok := vars[k]; ok {
				return v
			}
			return "$" + k
		})
		if strings.HasPrefix(line, "ffmpeg ") {
			cmd := exec.Command("bash", "-c", paths.Replace(line))
			cmd.Dir = work
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("README line %q failed (%v):\n%s", line, err, out)
			}
			continue
		}
		if !fercliLine.MatchString(line) {
			t.Errorf("README line %q is neither a fercli command this test runs nor listed in readmeSkipped with a reason", line)
			continue
		}
		if strings.ContainsAny(line, "|&;<>$`") {
			t.Errorf("README line %q uses shell syntax this test does not run: list it in readmeSkipped", line)
			continue
		}
		src := line
		for _, p := range readmeRMFERLines {
			if strings.Contains(line, "fercli "+p) {
				src = rmferPaths.Replace(line)
				break
			}
		}
		args, err := shellWords(paths.Replace(src))
		if err != nil {
			t.Errorf("README line %q: %v", line, err)
			continue
		}
		args = args[1:] // fercli
		cmdline := strings.Join(args, " ")
		for _, s := range readmeShrink {
			if strings.HasPrefix(cmdline, s.prefix) {
				args = append(args, s.flags...)
				break
			}
		}
		cmd := fercli(append([]string{"--device", "cpu"}, args...)...)
		cmd.Dir = work
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("README line %q failed (%v):\n%s", line, err, out)
			continue
		}
		ran++
	}
	t.Logf("ran %d README commands", ran)
}

// shellWords splits a command line at spaces, honouring single and double
// quotes.
func shellWords(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	var quote rune
	for _, r := range s {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case r == '\'' || r == '"':
			quote, inWord = r, true
		case r == ' ' || r == '\t':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("unterminated %c quote", quote)
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// writeAFEWFixture writes an AFEW 7.0 tree: Train and Val with one clip
// folder of 6 random 32×32 JPEG frames per emotion.
func writeAFEWFixture(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	dfew := writeDFEWFixture(t) // reuse its frames
	frames, _ := filepath.Glob(filepath.Join(dfew, "Clip", "clip_224x224", "00001", "*.jpg"))
	for _, split := range []string{"Train", "Val"} {
		for _, e := range []string{"Angry", "Disgust", "Fear", "Happy", "Neutral", "Sad", "Surprise"} {
			dir := filepath.Join(root, split, e, "000123")
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			for k, f := range frames[:6] {
				copyFile(t, f, filepath.Join(dir, fmt.Sprintf("%03d.jpg", k)))
			}
		}
	}
	return root
}
