package dist

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fer-research/fer/internal/testenv"
	lib "github.com/sugarme/gotch/libtch"
)

// The tests start ranks as child processes: the test binary itself with
// FER_DIST_TEST_ROLE naming the child function (roles below), joined over
// loopback (MASTER_ADDR=127.0.0.1, Gloo on "lo"). Every child and every
// wait is bounded by a timeout, so a broken collective fails the test
// instead of hanging it.
func TestMain(m *testing.M) {
	testenv.PassiveOMP()
	runtime.LockOSThread()
	lib.FerSetNumThreads(1)
	if role := os.Getenv("FER_DIST_TEST_ROLE"); role != "" {
		f, ok := roles[role]
		if !ok {
			fmt.Fprintf(os.Stderr, "unknown test role %q\n", role)
			os.Exit(2)
		}
		if err := f(); err != nil {
			fmt.Fprintln(os.Stderr, "ERROR:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// roles are the child-process entry points, by name.
var roles = map[string]func() error{}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// rankEnv is the environment of rank r of world over loopback.
func rankEnv(port, r, world int) []string {
	return []string{
		"MASTER_ADDR=127.0.0.1", "MASTER_PORT=" + strconv.Itoa(port),
		"RANK=" + strconv.Itoa(r), "WORLD_SIZE=" + strconv.Itoa(world),
		"LOCAL_RANK=" + strconv.Itoa(r), "LOCAL_WORLD_SIZE=" + strconv.Itoa(world),
		"GLOO_SOCKET_IFNAME=lo",
	}
}

// proc is a started child.
type proc struct {
	cmd      *exec.Cmd
	out, err bytes.Buffer
}

// start runs the role as rank r (extra env after the rank's).
func start(t *testing.T, ctx context.Context, role string, env []string) *proc {
	t.Helper()
	p := &proc{cmd: exec.CommandContext(ctx, os.Args[0], "-test.run=^$")}
	p.cmd.Env = append(append(os.Environ(), "FER_DIST_TEST_ROLE="+role), env...)
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.err
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return p
}

// wait waits for p and describes its end.
func (p *proc) wait() error {
	err := p.cmd.Wait()
	if err != nil {
		return fmt.Errorf("%v; stderr: %s", err, strings.TrimSpace(p.err.String()))
	}
	return nil
}

// runRanks runs role as every rank of world and returns their stdouts.
func runRanks(t *testing.T, role string, world int, timeout time.Duration, extra ...string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	port := freePort(t)
	ps := make([]*proc, world)
	for r := range ps {
		ps[r] = start(t, ctx, role, append(rankEnv(port, r, world), extra...))
	}
	outs := make([]string, world)
	for r, p := range ps {
		if err := p.wait(); err != nil {
			t.Fatalf("rank %d: %v", r, err)
		}
		outs[r] = strings.TrimSpace(p.out.String())
	}
	return outs
}
