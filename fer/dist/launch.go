package dist

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// LaunchOptions describe a single-machine job for Launch.
type LaunchOptions struct {
	// NProc is the number of worker processes (ranks).
	NProc int
	// Exe and Args are the worker command (Args without the program
	// name); every worker runs the same command.
	Exe  string
	Args []string
	// Env is the workers' base environment (nil: this process's).
	Env []string
	// MasterPort is the rendezvous port on 127.0.0.1 (0: a free one).
	MasterPort int
	// Stdout and Stderr receive the workers' output; lines of ranks
	// other than 0 are prefixed with "[rank N] ".
	Stdout, Stderr io.Writer
	// Grace is how long workers get to finish (write a checkpoint) after
	// SIGTERM before they are killed (0: 30 s).
	Grace time.Duration
}

// WorkerError reports the first worker that failed.
type WorkerError struct {
	Rank int
	// Code is its exit status (-1 when killed by a signal).
	Code int
	Err  error
	// Interrupted: the launcher was interrupted and stopped the workers.
	Interrupted bool
}

func (e *WorkerError) Error() string {
	if e.Interrupted {
		return fmt.Sprintf("interrupted: the workers were stopped (rank %d: %v)", e.Rank, e.Err)
	}
	return fmt.Sprintf("rank %d failed (%v); the other workers were stopped", e.Rank, e.Err)
}

func (e *WorkerError) Unwrap() error { return e.Err }

// Launch runs NProc copies of the worker command on this machine as one
// job, the way torchrun --standalone does: each gets MASTER_ADDR=127.0.0.1,
// MASTER_PORT, RANK = LOCAL_RANK = its index, WORLD_SIZE = LOCAL_WORLD_SIZE
// = NProc (and GLOO_SOCKET_IFNAME=lo unless set: the job is on one
// machine). Rank 0 serves the TCPStore. When a worker fails the others get
// SIGTERM (they checkpoint and stop, or fail their next collective) and,
// after Grace, SIGKILL; Launch returns a *WorkerError for the first one.
// Cancelling ctx (SIGINT/SIGTERM to the launcher) forwards SIGTERM to
// every worker. Workers die with the launcher (Pdeathsig).
func Launch(ctx context.Context, o LaunchOptions) error {
	if o.NProc < 1 {
		return fmt.Errorf("launch: --nproc %d, want >= 1", o.NProc)
	}
	if o.Grace <= 0 {
		o.Grace = 30 * time.Second
	}
	if o.Stdout == nil {
		o.Stdout = os.Stdout
	}
	if o.Stderr == nil {
		o.Stderr = os.Stderr
	}
	port := o.MasterPort
	if port == 0 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return fmt.Errorf("launch: finding a free port: %w", err)
		}
		port = l.Addr().(*net.TCPAddr).Port
		l.Close()
	}
	base := o.Env
	if base == nil {
		base = os.Environ()
	}
	if os.Getenv("GLOO_SOCKET_IFNAME") == "" {
		base = append(base[:len(base):len(base)], "GLOO_SOCKET_IFNAME=lo")
	}
	type result struct {
		rank int
		err  error
		at   time.Time
	}
	done := make(chan result, o.NProc)
	cmds := make([]*exec.Cmd, o.NProc)
	var outs sync.WaitGroup
	for r := range cmds {
		c := exec.Command(o.Exe, o.Args...)
		c.Env = append(base[:len(base):len(base)],
			"MASTER_ADDR=127.0.0.1", "MASTER_PORT="+strconv.Itoa(port),
			"RANK="+strconv.Itoa(r), "LOCAL_RANK="+strconv.Itoa(r),
			"WORLD_SIZE="+strconv.Itoa(o.NProc), "LOCAL_WORLD_SIZE="+strconv.Itoa(o.NProc),
			"TORCHELASTIC_USE_AGENT_STORE=False")
		c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
		if r == 0 {
			c.Stdout, c.Stderr = o.Stdout, o.Stderr
		} else {
			so, err := c.StdoutPipe()
			if err != nil {
				return err
			}
			se, err := c.StderrPipe()
			if err != nil {
				return err
			}
			prefix := fmt.Sprintf("[rank %d] ", r)
			outs.Add(2)
			go copyPrefixed(&outs, o.Stdout, so, prefix)
			go copyPrefixed(&outs, o.Stderr, se, prefix)
		}
		if err := c.Start(); err != nil {
			for _, s := range cmds[:r] {
				s.Process.Kill()
			}
			return fmt.Errorf("launch: starting rank %d: %w", r, err)
		}
		cmds[r] = c
	}
	for r, c := range cmds {
		go func() {
			err := c.Wait()
			done <- result{r, err, time.Now()}
		}()
	}
	exited := make([]bool, o.NProc)
	signalAll := func(sig syscall.Signal) {
		for r, c := range cmds {
			if !exited[r] {
				c.Process.Signal(sig)
			}
		}
	}
	// The first failure is reported; a worker that exited with
	// ExitPeerLost failed because another one did, so it is reported only
	// when no other failed. Exits are collected for a moment after the
	// first failure, since the cause and its consequence end within
	// milliseconds of each other.
	var failures []result
	var interrupted bool
	var kill, settle <-chan time.Time
	ctxDone := ctx.Done()
	for left := o.NProc; left > 0; {
		select {
		case res := <-done:
			left--
			exited[res.rank] = true
			if res.err == nil {
				continue
			}
			failures = append(failures, res)
			if len(failures) == 1 && !interrupted {
				settle = time.After(500 * time.Millisecond)
			}
		case <-settle:
			settle = nil
			signalAll(syscall.SIGTERM)
			kill = time.After(o.Grace)
		case <-ctxDone:
			ctxDone = nil
			interrupted = true
			signalAll(syscall.SIGTERM)
			kill = time.After(o.Grace)
		case <-kill:
			kill = nil
			signalAll(syscall.SIGKILL)
		}
	}
	var first *WorkerError
	for _, f := range failures {
		code := -1
		var ee *exec.ExitError
		if errors.As(f.err, &ee) {
			code = ee.ExitCode()
		}
		if first == nil || (first.Code == ExitPeerLost && code != ExitPeerLost) {
			first = &WorkerError{Rank: f.rank, Code: code, Err: f.err, Interrupted: interrupted}
		}
	}
	outs.Wait()
	if first != nil {
		return first
	}
	return nil
}

// copyPrefixed copies r to w line by line with prefix.
func copyPrefixed(wg *sync.WaitGroup, w io.Writer, r io.Reader, prefix string) {
	defer wg.Done()
	s := bufio.NewScanner(r)
	s.Buffer(make([]byte, 64<<10), 1<<20)
	for s.Scan() {
		fmt.Fprintf(w, "%s%s\n", prefix, s.Text())
	}
	io.Copy(io.Discard, r)
}
