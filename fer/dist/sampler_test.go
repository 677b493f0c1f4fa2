package dist

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"testing"

	"github.com/fer-research/fer/fer"
)

// TestShardOrderMatchesDistributedSampler compares fer.ShardOrder with
// PyTorch's DistributedSampler (shuffle=False, so both shard the identity
// order; with shuffling each shards its own permutation) for sizes that
// need no padding, some, and more than one full repeat.
func TestShardOrderMatchesDistributedSampler(t *testing.T) {
	py := python(t)
	specs := []string{"12:2", "13:2", "10:3", "7:4", "2:5", "1:1"}
	out, err := exec.Command(py, append([]string{"testdata/sampler_shards.py"}, specs...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != len(specs) {
		t.Fatalf("python printed %d lines for %d cases:\n%s", len(lines), len(specs), out)
	}
	for _, l := range lines {
		var ref struct {
			N, World int
			Shards   [][]int
		}
		if err := json.Unmarshal([]byte(l), &ref); err != nil {
			t.Fatal(err)
		}
		order := make([]int, ref.N)
		for i := range order {
			order[i] = i
		}
		for r := range ref.World {
			if got := fer.ShardOrder(order, r, ref.World); fmt.Sprint(got) != fmt.Sprint(ref.Shards[r]) {
				t.Errorf("n=%d world=%d rank %d: fer %v, PyTorch %v", ref.N, ref.World, r, got, ref.Shards[r])
			}
		}
	}
}
