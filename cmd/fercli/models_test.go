package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

// runModels runs `fercli models args...` (without the runtime set-up of
// main: counting needs no libtorch state) and returns its output.
func runModels(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var cmd *cli.Command
	for _, c := range commands {
		if c.Name == "models" {
			cmd = c
		}
	}
	if cmd == nil {
		t.Fatal("models command not registered")
	}
	var out bytes.Buffer
	app := &cli.App{Name: "fercli", Commands: []*cli.Command{cmd}, Writer: &out, ErrWriter: &out}
	err := app.Run(append([]string{"fercli", "models"}, args...))
	return out.String(), err
}

func TestModelsCommand(t *testing.T) {
	out, err := runModels(t)
	if err != nil {
		t.Fatal(err)
	}
	// torchvision's published counts, VGG-Face's 2622-way head, timm's B2
	for _, row := range [][]string{
		{"resnet18", "11,689,512", "3×224×224", "512", "1000"},
		{"resnet50", "25,557,032", "2048"},
		{"vgg16", "138,357,544", "4096"},
		{"vggface", "145,002,878", "2622"},
		{"ir50", "17,611,968", "3×112×112", "256"},
		{"effnet_b2", "9,109,994", "3×260×260", "1408"},
	} {
		line := lineStarting(out, row[0]+" ")
		for _, cell := range row[1:] {
			if !strings.Contains(line, cell) {
				t.Errorf("row %q lacks %q:\n%s", row[0], cell, out)
			}
		}
	}
	if !strings.Contains(out, "timm tf_efficientnet_b2_ns") {
		t.Errorf("layout list missing:\n%s", out)
	}

	// a 7-class head: resnet18 fc = 512·7 + 7
	out, err = runModels(t, "--classes", "7")
	if err != nil {
		t.Fatal(err)
	}
	if line := lineStarting(out, "resnet18 "); !strings.Contains(line, "11,180,103") || !strings.Contains(line, " 7") {
		t.Errorf("--classes 7: %q", line)
	}
	if _, err := runModels(t, "--classes", "-5"); err == nil {
		t.Error("--classes -5 accepted")
	}
}

func lineStarting(out, prefix string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return ""
}
