package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/fer-research/fer/data/synth"
	"github.com/fer-research/fer/internal/rmsetfixture"
)

// README's examples run as written (issue #11). The test reads every
// ```sh block of README.md, in order, and runs each fercli command line in
// one working directory, through the real CLI. Three things are adapted,
// and only these:
//
//   - shrink: training commands get flags appended that make them a
//     seconds-long run (fewer and smaller samples, one epoch, a narrow
//     network); everything else about the line is as written;
//   - paths: the placeholder data roots (/data/DFEW, /data/AFEW; in
//     RMFER's lines /data/RAF-DB/basic and /data/rmset) point at fixtures
//     in the real on-disk layouts, and face.png / faces/ exist;
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

var fercliLine = regexp.MustCompile(`^(bin/)?fercli( |$)`)

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
	paths := strings.NewReplacer("/data/DFEW", dfew, "/data/AFEW", afew)
	rm := filepath.Join(work, "rmset-fixture")
	rmsetfixture.Synthetic{Videos: 1, People: 4, Frames: 70, Size: 32}.Write(t, rm)
	rmferPaths := strings.NewReplacer("/data/RAF-DB/basic", writeRAFDBFaces(t), "/data/rmset", rm)

	ran := 0
	for _, line := range cmds {
		if reason, ok := readmeSkipped[line]; ok {
			t.Logf("skipped: %s (%s)", line, reason)
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
		args, err := shellWords(paths.Replace(line))
		if err != nil {
			t.Errorf("README line %q: %v", line, err)
			continue
		}
		args = args[1:] // fercli
		cmdline := strings.Join(args, " ")
		for _, p := range readmeRMFERLines {
			if strings.HasPrefix(cmdline, p) {
				for i := range args {
					args[i] = rmferPaths.Replace(args[i])
				}
			}
		}
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
