package face

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fer-research/fer/data/imaging"
)

// opencvData returns a file of Debian's opencv-doc examples (Megamind.avi,
// messi5.jpg), skipping the test when the package is missing
// (setup-gotch.sh installs it).
func opencvData(t testing.TB, name string) string {
	t.Helper()
	p := filepath.Join("/usr/share/doc/opencv-doc/examples/data", name)
	if _, err := os.Stat(p); err == nil {
		return p
	}
	out, _ := exec.Command("dpkg", "-L", "opencv-doc").Output()
	for _, l := range strings.Split(string(out), "\n") {
		if filepath.Base(l) == name {
			return l
		}
	}
	t.Skipf("%s not found: install Debian's opencv-doc (./setup-gotch.sh does)", name)
	return ""
}

// astronaut returns skimage's astronaut.png (NASA, public domain), which
// setup-gotch.sh takes out of Debian's python3-skimage package into
// $FER_CACHE/testdata (default ~/.cache/fer/testdata).
func astronaut(t testing.TB) string {
	t.Helper()
	dirs := []string{"/usr/lib/python3/dist-packages/skimage/data"}
	if c := os.Getenv("FER_CACHE"); c != "" {
		dirs = append(dirs, filepath.Join(c, "testdata"))
	}
	if h, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(h, ".cache", "fer", "testdata"))
	}
	for _, d := range dirs {
		p := filepath.Join(d, "astronaut.png")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Skipf("astronaut.png not found in %v: run ./setup-gotch.sh (it extracts it from Debian's python3-skimage)", dirs)
	return ""
}

func decode(t testing.TB, path string) *imaging.RGB {
	t.Helper()
	var img imaging.RGB
	if err := imaging.DecodeFile(path, &img); err != nil {
		t.Fatal(err)
	}
	return &img
}

func detector(t testing.TB, o Options) *Detector {
	t.Helper()
	d, err := NewDetector(o)
	if err != nil {
		t.Fatal(err)
	}
	return d
}
