package losses

import (
	"fmt"

	"github.com/sugarme/gotch/ts"
)

// scope chains libtorch ops with one sticky error and frees every
// intermediate tensor at the end: the formulas below then read as
// formulas. Each op runs only while no earlier op failed; the first error
// is wrapped with the op's name.
type scope struct {
	what    string // the loss, for messages
	tensors []*ts.Tensor
	err     error
}

// do runs f and records its result for free, unless an earlier op failed.
func (s *scope) do(step string, f func() (*ts.Tensor, error)) *ts.Tensor {
	if s.err != nil {
		return nil
	}
	t, err := f()
	if err != nil {
		s.err = fmt.Errorf("%s: %s: %w", s.what, step, err)
		return nil
	}
	s.tensors = append(s.tensors, t)
	return t
}

// keep removes t from the tensors free will drop (a result the caller
// owns) and returns it.
func (s *scope) keep(t *ts.Tensor) *ts.Tensor {
	for i, x := range s.tensors {
		if x == t {
			s.tensors = append(s.tensors[:i], s.tensors[i+1:]...)
			break
		}
	}
	return t
}

func (s *scope) free() {
	for _, t := range s.tensors {
		t.Drop()
	}
	s.tensors = nil
}
