package face

import (
	"fmt"
	"io"
	"runtime"
	"sync"

	"github.com/fer-research/fer/data/imaging"
	"github.com/fer-research/fer/data/media"
)

// Source yields frames in order; io.EOF ends it (media.Reader is one).
type Source interface {
	Next(f *media.Frame) error
}

// Job is one frame going through Stream. Its buffers are reused for later
// frames once the consumer returns: copy what must outlive the call.
type Job struct {
	// Seq counts the frames of the stream from 0.
	Seq int
	// Frame is the decoded frame (index, time, pixels).
	Frame media.Frame
	// Faces are filled by the worker.
	Faces []Face
	// Crops are the worker's crops, one per face (reused buffers).
	Crops []imaging.RGB
	// Inputs are the worker's model inputs, one per face (reused).
	Inputs [][]float32
	// Data is free for the worker's own results.
	Data any
}

// Worker processes one job on a worker goroutine: detection, landmarks,
// crops, preprocessing. Each goroutine gets its own Worker.
type Worker func(j *Job) error

// StreamOptions configure Stream.
type StreamOptions struct {
	// Workers is the number of worker goroutines (0: one per core).
	Workers int
	// NewWorker makes one goroutine's worker (its own Detector, Cropper).
	NewWorker func() (Worker, error)
	// Depth is the number of frames in flight, decoded, being processed
	// or waiting for the consumer (0: 2·Workers + 2). Memory is Depth
	// frames, whatever the video's length.
	Depth int
}

// Stream decodes frames from src on one goroutine, runs the workers on
// Workers goroutines, and calls consume for each frame in order on the
// calling goroutine (the one that owns libtorch's thread), while the next
// frames are decoded and processed. It stops at the end of src, at the
// first error of src, a worker or consume, and returns that error (a
// worker's names the frame). Frames consumed before an error of src stay
// consumed.
func Stream(src Source, o StreamOptions, consume func(j *Job) error) error {
	if o.Workers <= 0 {
		o.Workers = runtime.NumCPU()
	}
	if o.Depth <= 0 {
		o.Depth = 2*o.Workers + 2
	}
	o.Depth = max(o.Depth, o.Workers+1)
	workers := make([]Worker, o.Workers)
	for i := range workers {
		w, err := o.NewWorker()
		if err != nil {
			return err
		}
		workers[i] = w
	}
	free := make(chan *Job, o.Depth)
	for range o.Depth {
		free <- &Job{}
	}
	todo := make(chan *Job, o.Depth)
	stop := make(chan struct{})
	type result struct {
		job *Job
		err error
	}
	results := make(chan result, o.Depth)
	var srcErr error
	go func() {
		defer close(todo)
		for seq := 0; ; seq++ {
			var j *Job
			select {
			case j = <-free:
			case <-stop:
				return
			}
			j.Seq, j.Faces, j.Data = seq, j.Faces[:0], nil
			if err := src.Next(&j.Frame); err != nil {
				if err != io.EOF {
					srcErr = err
				}
				return
			}
			todo <- j
		}
	}()
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range todo {
				err := w(j)
				if err != nil {
					err = fmt.Errorf("frame %d: %w", j.Frame.Index, err)
				}
				results <- result{j, err}
			}
		}()
	}
	go func() {
		wg.Wait()
		close(results)
	}()
	pending := map[int]result{}
	next := 0
	var err error
	stopped := false
	for r := range results {
		if stopped {
			continue // drain
		}
		pending[r.job.Seq] = r
		for {
			p, ok := pending[next]
			if !ok {
				break
			}
			delete(pending, next)
			next++
			err = p.err
			if err == nil {
				err = consume(p.job)
			}
			if err != nil {
				close(stop)
				stopped = true
				break
			}
			free <- p.job
		}
	}
	if err != nil {
		return err
	}
	return srcErr
}
