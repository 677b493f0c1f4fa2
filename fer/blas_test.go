package fer

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	lib "github.com/sugarme/gotch/libtch"
)

// TestBLASIsOpenMPBuild fails when this binary (linked like fercli)
// runs its matrix products on the pthreads OpenBLAS, or not on the OpenMP
// build setup-gotch.sh linked it to.
func TestBLASIsOpenMPBuild(t *testing.T) {
	b := BLAS()
	t.Logf("BLAS: %s; loaded %v", b, b.Loaded)
	if b.Parallel == BLASPthreads {
		t.Fatalf("BLAS is the pthreads OpenBLAS: %s", b)
	}
	if p := b.Problem(); p != "" {
		t.Fatal(p)
	}
	if lib.FerBLASDir == "" {
		t.Logf("this libtorch does not load libblas.so.3 or libopenblas0-openmp was missing at set-up")
		return
	}
	if b.Parallel != BLASOpenMP || !strings.HasPrefix(b.Library, lib.FerBLASDir+"/") {
		t.Fatalf("BLAS %s, want the OpenMP OpenBLAS in %s", b, lib.FerBLASDir)
	}
}

// The check above can fail: with the pthreads build forced in (LD_PRELOAD
// beats the DT_RPATH) BLAS() says so and Problem() objects.
func TestBLASDetectsPthreads(t *testing.T) {
	if os.Getenv("FER_BLAS_CHILD") == "1" {
		json.NewEncoder(os.Stdout).Encode(BLAS())
		return
	}
	dir := PthreadsOpenBLASDir()
	if dir == "" {
		t.Skip("no pthreads OpenBLAS here (Debian's libopenblas0-pthread, or FER_OPENBLAS_PTHREAD_DIR=its extracted directory) to check the detection against")
	}
	cmd := exec.Command(os.Args[0], "-test.run", "^TestBLASDetectsPthreads$", "-test.v")
	// both objects: Debian's libblas.so.3 is a thin layer over
	// libopenblas.so.0, which LD_LIBRARY_PATH (the OpenMP build's, set by
	// testenv) would otherwise supply
	cmd.Env = append(os.Environ(), "FER_BLAS_CHILD=1", "LD_PRELOAD="+filepath.Join(dir, "libopenblas.so.0")+" "+filepath.Join(dir, "libblas.so.3"))
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	var got BLASInfo
	line := out
	if i := strings.IndexByte(string(out), '{'); i >= 0 {
		line = out[i:]
	}
	if err := json.NewDecoder(strings.NewReader(string(line))).Decode(&got); err != nil {
		t.Fatalf("child output %q: %v", out, err)
	}
	if got.Parallel != BLASPthreads || got.Problem() == "" || !strings.HasPrefix(got.Library, dir) {
		t.Fatalf("with %s preloaded: %s, problem %q", dir, got, got.Problem())
	}
}
