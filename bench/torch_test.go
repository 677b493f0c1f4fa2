package bench

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeServer answers the protocol like torch_bench.py serve would, from
// a shell script: hello, a timing request, and an error for "fail".
const fakeServer = `#!/bin/sh
[ "$1" = serve ] || exit 3
while read -r line; do
  case "$line" in
    *'"op":"hello"'*) echo '{"ok":true,"torch":"9.9","torchvision":"0.1","python":"3","threads":2}' ;;
    *'"op":"train"'*) echo '{"ok":true,"times":[0.5,0.25]}' ;;
    *'"op":"fail"'*) echo 'something on stderr' >&2; echo '{"ok":false,"error":"ValueError: bad"}' ;;
    *'"op":"garbage"'*) echo 'not json' ;;
    *'"op":"quit"'*) exit 0 ;;
  esac
done
`

func TestTorchProtocol(t *testing.T) {
	script := filepath.Join(t.TempDir(), "fake.sh")
	if err := os.WriteFile(script, []byte(fakeServer), 0o755); err != nil {
		t.Fatal(err)
	}
	tp, err := StartTorch("/bin/sh", script)
	if err != nil {
		t.Fatal(err)
	}
	if tp.Info.Torch != "9.9" || tp.Info.Threads != 2 {
		t.Errorf("hello: %+v", tp.Info)
	}
	var r TimesReply
	if err := tp.Call(map[string]any{"op": "train", "warmup": 1, "steps": 2}, &r); err != nil {
		t.Fatal(err)
	}
	if len(r.Times) != 2 || r.Times[0] != 0.5 {
		t.Errorf("times %v", r.Times)
	}
	err = tp.Call(map[string]any{"op": "fail"}, nil)
	if err == nil || !strings.Contains(err.Error(), "ValueError: bad") {
		t.Errorf("error reply gave %v", err)
	}
	if err := tp.Call(map[string]any{"op": "garbage"}, nil); err == nil || !strings.Contains(err.Error(), "bad reply") {
		t.Errorf("garbage reply gave %v", err)
	}
	if err := tp.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
	if _, err := StartTorch("/bin/sh", filepath.Join(t.TempDir(), "missing.py")); err == nil {
		t.Errorf("missing script accepted")
	}
}

func TestFindRepoRoot(t *testing.T) {
	wd, _ := os.Getwd()
	root, err := FindRepoRoot(wd)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, TorchScript)); err != nil {
		t.Errorf("repo root %s has no %s: %v", root, TorchScript, err)
	}
	if _, err := FindRepoRoot(t.TempDir()); err == nil {
		t.Errorf("found a repository in a temp dir")
	}
}

func TestTailBuffer(t *testing.T) {
	b := &tailBuffer{max: 5}
	b.Write([]byte("abc"))
	b.Write([]byte("defg"))
	if b.String() != "cdefg" {
		t.Errorf("tail %q, want cdefg", b.String())
	}
}
