package dist

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Env is a rank's place in the job, as torchrun (and fercli train
// --nproc) describe it in environment variables; torch.distributed's
// env:// rendezvous reads the same ones (torch/distributed/rendezvous.py).
type Env struct {
	// MasterAddr:MasterPort is the TCPStore every rank rendezvous at.
	MasterAddr string
	MasterPort int
	// Rank in [0, WorldSize); LocalRank is the rank on this machine
	// (selects the CUDA device).
	Rank, WorldSize, LocalRank int
	// LocalWorldSize is the number of ranks on this machine (0: unknown).
	LocalWorldSize int
	// AgentStore (TORCHELASTIC_USE_AGENT_STORE=True) means torchrun's
	// elastic agent already serves the store at MasterAddr:MasterPort:
	// every rank, rank 0 included, is a client, and the keys live under
	// /worker/attempt_<RestartCount>.
	AgentStore   bool
	RestartCount int
}

// Variables torchrun sets for each worker.
const (
	EnvMasterAddr     = "MASTER_ADDR"
	EnvMasterPort     = "MASTER_PORT"
	EnvRank           = "RANK"
	EnvWorldSize      = "WORLD_SIZE"
	EnvLocalRank      = "LOCAL_RANK"
	EnvLocalWorldSize = "LOCAL_WORLD_SIZE"
	EnvAgentStore     = "TORCHELASTIC_USE_AGENT_STORE"
	EnvRestartCount   = "TORCHELASTIC_RESTART_COUNT"
)

// Launched reports whether this process was started as one rank of a
// job: WORLD_SIZE or RANK is set.
func Launched() bool {
	return os.Getenv(EnvWorldSize) != "" || os.Getenv(EnvRank) != ""
}

// EnvFromOS reads the job description from the environment. A missing or
// malformed variable is an error naming it.
func EnvFromOS() (Env, error) {
	return envFrom(os.Getenv)
}

func envFrom(get func(string) string) (Env, error) {
	var e Env
	need := func(name string) (string, error) {
		v := strings.TrimSpace(get(name))
		if v == "" {
			return "", fmt.Errorf("distributed training: environment variable %s expected, but not set (start the workers with `fercli train --nproc N` or torchrun, which set MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE and LOCAL_RANK)", name)
		}
		return v, nil
	}
	atoi := func(name, v string) (int, error) {
		n, err := strconv.Atoi(v)
		if err != nil {
			return 0, fmt.Errorf("distributed training: %s=%q is not an integer", name, v)
		}
		return n, nil
	}
	var err error
	var v string
	if v, err = need(EnvRank); err != nil {
		return e, err
	}
	if e.Rank, err = atoi(EnvRank, v); err != nil {
		return e, err
	}
	if v, err = need(EnvWorldSize); err != nil {
		return e, err
	}
	if e.WorldSize, err = atoi(EnvWorldSize, v); err != nil {
		return e, err
	}
	if e.MasterAddr, err = need(EnvMasterAddr); err != nil {
		return e, err
	}
	if v, err = need(EnvMasterPort); err != nil {
		return e, err
	}
	if e.MasterPort, err = atoi(EnvMasterPort, v); err != nil {
		return e, err
	}
	// LOCAL_RANK is not part of env://; torchrun always sets it. Without
	// it the rank is taken to be alone on its machine.
	if v := strings.TrimSpace(get(EnvLocalRank)); v != "" {
		if e.LocalRank, err = atoi(EnvLocalRank, v); err != nil {
			return e, err
		}
	}
	if v := strings.TrimSpace(get(EnvLocalWorldSize)); v != "" {
		if e.LocalWorldSize, err = atoi(EnvLocalWorldSize, v); err != nil {
			return e, err
		}
	}
	// rendezvous.py: os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == str(True)
	if get(EnvAgentStore) == "True" {
		e.AgentStore = true
		if v, err = need(EnvRestartCount); err != nil {
			return e, err
		}
		if e.RestartCount, err = atoi(EnvRestartCount, v); err != nil {
			return e, err
		}
	}
	return e, e.Validate()
}

// Validate checks the ranges.
func (e Env) Validate() error {
	switch {
	case e.WorldSize < 1:
		return fmt.Errorf("distributed training: WORLD_SIZE=%d, want >= 1", e.WorldSize)
	case e.Rank < 0 || e.Rank >= e.WorldSize:
		return fmt.Errorf("distributed training: RANK=%d, want 0 <= RANK < WORLD_SIZE=%d", e.Rank, e.WorldSize)
	case e.MasterPort < 0 || e.MasterPort > 65535:
		return fmt.Errorf("distributed training: MASTER_PORT=%d, want a port in [0, 65535]", e.MasterPort)
	case e.MasterAddr == "":
		return fmt.Errorf("distributed training: MASTER_ADDR is empty")
	case e.LocalRank < 0:
		return fmt.Errorf("distributed training: LOCAL_RANK=%d, want >= 0", e.LocalRank)
	}
	return nil
}
