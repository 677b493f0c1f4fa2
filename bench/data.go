package bench

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/fer-research/fer/data"
	"github.com/sugarme/gotch"
)

// DataConfig describes a data-pipeline measurement: decode + augment
// (random resized crop + horizontal flip, pixel/255) + batch + copy into a
// libtorch tensor, from a JPEG fixture on disk.
type DataConfig struct {
	// Clips selects the DFEW-layout clip fixture (16-frame 8×2 segment
	// sampling, one crop/flip per clip); otherwise the ImageFolder fixture.
	Clips bool
	// Root is the fixture (WriteImageFolder's dir or WriteDFEWTree's
	// root).
	Root string
	// Size is the output side; Frames the clip length (clips only).
	Size, Frames int
	Batch        int
	// Workers is the number of loading goroutines (PyTorch: DataLoader
	// worker processes).
	Workers int
	Device  gotch.Device
	Seed    int64
}

// SegmentsFor is the segment sampler that yields frames frames: 2 frames
// per segment (Former-DFER's duration) when frames is even, else 1.
func SegmentsFor(frames int) data.SegmentSampler {
	if frames%2 == 0 {
		return data.SegmentSampler{NumSegments: frames / 2, Duration: 2}
	}
	return data.SegmentSampler{NumSegments: frames, Duration: 1}
}

// DataPipe is fer's training data pipeline over a fixture.
type DataPipe struct {
	Cfg    DataConfig
	loader *data.Loader
	epoch  int
}

// OpenDataPipe opens the fixture with fer's data sets and loader
// (shuffled, drop-last, training-mode augmentation).
func OpenDataPipe(cfg DataConfig) (*DataPipe, error) {
	t := data.Transform{Size: cfg.Size}
	var ds data.Dataset
	if cfg.Clips {
		d, err := data.OpenDFEW(cfg.Root, 1, "train", data.DFEWOptions{
			Version:     data.DFEWClips,
			ClipOptions: data.ClipOptions{Sampler: SegmentsFor(cfg.Frames), Transform: t},
		})
		if err != nil {
			return nil, err
		}
		ds = d
	} else {
		d, err := OpenImageFolder(cfg.Root, t)
		if err != nil {
			return nil, err
		}
		ds = d
	}
	l, err := data.NewLoader(ds, data.LoaderConfig{
		BatchSize: cfg.Batch, Workers: cfg.Workers, Shuffle: true, DropLast: true, Train: true, Seed: cfg.Seed,
	})
	if err != nil {
		return nil, err
	}
	return &DataPipe{Cfg: cfg, loader: l}, nil
}

// ItemsPerStep is the number of images (frames for clips) per batch.
func (p *DataPipe) ItemsPerStep() int {
	if p.Cfg.Clips {
		return p.Cfg.Batch * p.Cfg.Frames
	}
	return p.Cfg.Batch
}

// Run starts a fresh epoch (workers start, nothing prefetched), takes
// skip batches untimed to fill the pipeline, times the next n (the time
// from asking for a batch to holding it as a tensor on the device) and
// stops the workers, so that nothing runs in the background while the
// other framework is measured. An epoch that runs out continues with the
// next one.
func (p *DataPipe) Run(skip, n int) ([]float64, error) {
	ep := p.loader.Epoch(p.epoch)
	defer func() { ep.Close() }()
	next := func() error {
		b, err := ep.Next()
		if errors.Is(err, io.EOF) {
			ep.Close()
			p.epoch++
			ep = p.loader.Epoch(p.epoch)
			b, err = ep.Next()
		}
		if err != nil {
			return err
		}
		x, y, err := b.Tensors(p.Cfg.Device)
		if err != nil {
			return err
		}
		x.Drop()
		y.Drop()
		return nil
	}
	defer func() { p.epoch++ }()
	for i := 0; i < skip; i++ {
		if err := next(); err != nil {
			return nil, fmt.Errorf("data warm-up batch %d: %w", i+1, err)
		}
	}
	out := make([]float64, 0, n)
	for i := 0; i < n; i++ {
		t0 := time.Now()
		if err := next(); err != nil {
			return nil, fmt.Errorf("data batch %d: %w", i+1, err)
		}
		out = append(out, time.Since(t0).Seconds())
	}
	return out, nil
}
