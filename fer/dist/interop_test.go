package dist

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

func init() {
	roles["torch_peer"] = childTorchPeer
}

// peerResult is what testdata/torch_peer.py and childTorchPeer print.
type peerResult struct {
	Rank  int       `json:"rank"`
	World int       `json:"world"`
	Sum   []float64 `json:"sum"`
	Max   []float64 `json:"max"`
	Bcast []float64 `json:"bcast"`
}

// childTorchPeer runs torch_peer.py's collectives from fer.
func childTorchPeer() error {
	pg, err := joinFromEnv(60 * time.Second)
	if err != nil {
		return err
	}
	defer pg.Close()
	r, w := pg.Rank(), pg.WorldSize()
	x := ts.MustOfSlice([]float32{float32(r + 1), float32(2 * (r + 1))})
	if err := pg.AllReduce(Sum, x); err != nil {
		return err
	}
	m := ts.MustOfSlice([]float64{float64(r)})
	if err := pg.AllReduce(Max, m); err != nil {
		return err
	}
	b := ts.MustFull([]int64{3}, ts.FloatScalar(float64(10+r)), gotch.Float, gotch.CPU)
	if err := pg.Broadcast(w-1, b); err != nil {
		return err
	}
	if err := pg.Barrier(); err != nil {
		return err
	}
	out, _ := json.Marshal(peerResult{Rank: r, World: w, Sum: values(x), Max: values(m), Bcast: values(b)})
	fmt.Println(string(out))
	return nil
}

// python returns /usr/bin/python3 if it has torch, else skips.
func python(t *testing.T) string {
	t.Helper()
	const py = "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import torch.distributed as d; assert d.is_available()").Run(); err != nil {
		t.Skipf("%s has no torch.distributed (apt install python3-torch): %v", py, err)
	}
	return py
}

func parsePeer(t *testing.T, who, out string) peerResult {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var p peerResult
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &p); err != nil {
		t.Fatalf("%s printed %q: %v", who, out, err)
	}
	return p
}

// TestTorchInterop puts a fer process and a PyTorch process (Debian's
// python3-torch) in one Gloo process group, each side once as rank 0 (the
// rank that serves the TCPStore), and checks that both compute the same
// allreduce, max-allreduce and broadcast results.
func TestTorchInterop(t *testing.T) {
	py := python(t)
	for ferRank := 0; ferRank < 2; ferRank++ {
		t.Run(fmt.Sprintf("fer_rank%d", ferRank), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
			defer cancel()
			port := freePort(t)
			f := start(t, ctx, "torch_peer", rankEnv(port, ferRank, 2))
			pc := exec.CommandContext(ctx, py, "testdata/torch_peer.py")
			pc.Env = append(os.Environ(), rankEnv(port, 1-ferRank, 2)...)
			pyOut, pyErr := pc.CombinedOutput()
			if err := f.wait(); err != nil {
				t.Fatalf("fer rank %d: %v (python: %s)", ferRank, err, pyOut)
			}
			if pyErr != nil {
				t.Fatalf("python rank %d: %v: %s", 1-ferRank, pyErr, pyOut)
			}
			fr := parsePeer(t, "fer", f.out.String())
			pr := parsePeer(t, "python", string(pyOut))
			want := peerResult{Sum: []float64{3, 6}, Max: []float64{1}, Bcast: []float64{11, 11, 11}}
			for _, got := range []peerResult{fr, pr} {
				if fmt.Sprint(got.Sum, got.Max, got.Bcast) != fmt.Sprint(want.Sum, want.Max, want.Bcast) {
					t.Errorf("rank %d: sum %v max %v bcast %v, want %v %v %v", got.Rank, got.Sum, got.Max, got.Bcast, want.Sum, want.Max, want.Bcast)
				}
			}
			if fr.Rank != ferRank || pr.Rank != 1-ferRank || fr.World != 2 || pr.World != 2 {
				t.Errorf("ranks: fer %d/%d, python %d/%d", fr.Rank, fr.World, pr.Rank, pr.World)
			}
		})
	}
}

// TestTorchrun starts two ranks of the collectives check with PyTorch's own
// launcher, `torchrun --no_python` (1.13's spelling of --no-python), once
// with its default static rendezvous (the elastic agent serves the store:
// TORCHELASTIC_USE_AGENT_STORE=True, every rank a client under
// /worker/attempt_0) and once with --standalone (c10d rendezvous: rank 0
// serves the store).
func TestTorchrun(t *testing.T) {
	py := python(t)
	for _, mode := range []string{"static", "standalone"} {
		t.Run(mode, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
			defer cancel()
			// --redirects/--tee: Debian 12's torchrun (PyTorch 1.13 on
			// Python 3.11) cannot parse their default "0" (Std.from_str
			// returns None); 1 (stdout) works.
			args := []string{"-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2", "--no_python", "--redirects", "1", "--tee", "1"}
			if mode == "standalone" {
				args = append(args, "--standalone")
			} else {
				args = append(args, "--master_addr", "127.0.0.1", "--master_port", strconv.Itoa(freePort(t)))
			}
			args = append(args, os.Args[0], "-test.run=^$")
			c := exec.CommandContext(ctx, py, args...)
			c.Env = append(os.Environ(), "FER_DIST_TEST_ROLE=collectives", "GLOO_SOCKET_IFNAME=lo", "FER_DIST_TEST_SHOW_ENV=1")
			out, err := c.CombinedOutput()
			if err != nil {
				t.Fatalf("torchrun: %v\n%s", err, out)
			}
			s := string(out)
			n := 0
			for _, l := range strings.Split(s, "\n") {
				if strings.HasSuffix(strings.TrimSpace(l), "ok") {
					n++
				}
			}
			if n != 2 {
				t.Errorf("want 2 ranks printing ok, output:\n%s", s)
			}
			wantStore := "agent_store=true"
			if mode == "standalone" {
				wantStore = "agent_store=false"
			}
			if strings.Count(s, wantStore) != 2 {
				t.Errorf("want both ranks with %s, output:\n%s", wantStore, s)
			}
		})
	}
}
