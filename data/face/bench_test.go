package face

import (
	"io"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/fer-research/fer/data/imaging"
	"github.com/fer-research/fer/data/media"
)

// megamindFrames decodes frames 10, 13, ... of Megamind.avi (faces in
// nearly all) into memory, once.
var megamindFrames = sync.OnceValues(func() ([]*imaging.RGB, error) {
	r, err := media.Open("/usr/share/doc/opencv-doc/examples/data/Megamind.avi", media.Options{Every: 3})
	if err != nil {
		return nil, err
	}
	defer r.Close()
	var out []*imaging.RGB
	var f media.Frame
	for {
		if err := r.Next(&f); err == io.EOF {
			return out, nil
		} else if err != nil {
			return nil, err
		}
		if f.Index >= 10 {
			m := f.RGB
			m.Pix = append([]byte(nil), f.RGB.Pix...)
			out = append(out, &m)
		}
	}
})

// BenchmarkFacePipeline: detection + 68 landmarks + ArcFace 112×112
// alignment per Megamind.avi frame (720×528), one goroutine and one per
// core; reports frames/s and faces/s.
//
//	go test ./data/face -run XXX -bench FacePipeline -benchtime 60x
func BenchmarkFacePipeline(b *testing.B) {
	frames, err := megamindFrames()
	if err != nil {
		b.Skip(err)
	}
	for _, c := range []struct {
		name     string
		opts     Options
		parallel bool
	}{
		{"full-res/1-goroutine", Options{}, false},
		{"full-res/all-cores", Options{}, true},
		{"max-side-360/all-cores", Options{MaxSide: 360}, true},
	} {
		b.Run(c.name, func(b *testing.B) {
			var faces, n atomic.Int64
			work := func(d *Detector, cr *Cropper, i int, out *imaging.RGB) {
				fs, err := d.Detect(frames[i%len(frames)])
				if err != nil {
					b.Error(err)
					return
				}
				for k := range fs {
					if err := cr.Crop(frames[i%len(frames)], &fs[k], out); err != nil {
						b.Error(err)
					}
				}
				faces.Add(int64(len(fs)))
				n.Add(1)
			}
			if _, err := NewDetector(c.opts); err != nil { // load the landmark model outside the timing
				b.Fatal(err)
			}
			b.ResetTimer()
			if !c.parallel {
				d, _ := NewDetector(c.opts)
				cr := &Cropper{Style: StyleArcFace}
				var out imaging.RGB
				for i := range b.N {
					work(d, cr, i, &out)
				}
			} else {
				var next atomic.Int64
				b.RunParallel(func(pb *testing.PB) {
					d, _ := NewDetector(c.opts)
					cr := &Cropper{Style: StyleArcFace}
					var out imaging.RGB
					for pb.Next() {
						work(d, cr, int(next.Add(1)), &out)
					}
				})
			}
			s := b.Elapsed().Seconds()
			b.ReportMetric(float64(n.Load())/s, "frames/s")
			b.ReportMetric(float64(faces.Load())/s, "faces/s")
		})
	}
}
