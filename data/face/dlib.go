package face

/*
#cgo CXXFLAGS: -std=c++14 -O2 -Wno-deprecated-declarations
// dlib's headers call CBLAS/LAPACK inline (its config.h sets DLIB_USE_BLAS):
// link the runtime libraries libdlib19.1 depends on by their sonames.
// (Debian's dlib-1.pc names the -dev symlinks libblas.so/liblapack.so,
// which libdlib-dev does not install.)
#cgo LDFLAGS: -ldlib -l:libblas.so.3 -l:liblapack.so.3
#include <stdlib.h>
#include "dlib_shim.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"image"
	"os"
	"runtime"
	"strings"
	"sync"
	"unsafe"

	"github.com/fer-research/fer/data/imaging"
)

// DefaultShapePredictor is where Debian's libdlib-data installs dlib's
// 68-point landmark model (iBUG 300-W layout). FER_DLIB_SHAPE_PREDICTOR
// overrides it.
const DefaultShapePredictor = "/usr/share/dlib/shape_predictor_68_face_landmarks.dat"

// errLen is the size of the C error buffers.
const errLen = 512

// Detection is one face found by the detector.
type Detection struct {
	// Box is the face rectangle in image pixels (Max exclusive). dlib's
	// HOG boxes are square and tight: eyebrows to chin.
	Box image.Rectangle
	// Score is the detector's SVM score (higher = more confident; 0 is
	// dlib's default threshold).
	Score float64
	// Filter is which of the detector's five HOG filters fired: 0 front,
	// 1 left profile, 2 right profile, 3 front rotated left, 4 front
	// rotated right.
	Filter int
}

// hogDetector is dlib's frontal_face_detector (HOG + linear SVM, five
// filters, sliding over an image pyramid with a 6/5 step). One per
// goroutine: dlib's object_detector keeps per-call state.
type hogDetector struct {
	p    *C.fer_dlib_detector
	dets []C.fer_dlib_det
}

func newHOGDetector() (*hogDetector, error) {
	var p *C.fer_dlib_detector
	var msg [errLen]C.char
	if C.fer_dlib_detector_new(&p, &msg[0], errLen) != 0 {
		return nil, errors.New(cmsg(&msg[0]))
	}
	d := &hogDetector{p: p, dets: make([]C.fer_dlib_det, 64)}
	runtime.SetFinalizer(d, (*hogDetector).free)
	return d, nil
}

func (d *hogDetector) free() {
	if d.p != nil {
		C.fer_dlib_detector_free(d.p)
		d.p = nil
	}
}

// detect runs the detector on img upsampled upsample times and returns the
// detections scoring above threshold, strongest first.
func (d *hogDetector) detect(img *imaging.RGB, upsample int, threshold float64) ([]Detection, error) {
	if err := checkRGB(img); err != nil {
		return nil, err
	}
	var msg [errLen]C.char
	var n C.int
	for {
		rc := C.fer_dlib_detect(d.p, (*C.uchar)(unsafe.Pointer(&img.Pix[0])), C.int(img.W), C.int(img.H),
			C.int(upsample), C.double(threshold), &d.dets[0], C.int(len(d.dets)), &n, &msg[0], errLen)
		if rc != 0 {
			return nil, errors.New(cmsg(&msg[0]))
		}
		if int(n) <= len(d.dets) {
			break
		}
		d.dets = make([]C.fer_dlib_det, int(n))
	}
	runtime.KeepAlive(img)
	out := make([]Detection, int(n))
	for i := range out {
		c := d.dets[i]
		// dlib rectangles include their right and bottom pixels.
		out[i] = Detection{
			Box:    image.Rect(int(c.left), int(c.top), int(c.right)+1, int(c.bottom)+1),
			Score:  float64(c.score),
			Filter: int(c.filter),
		}
	}
	return out, nil
}

// shapePredictor is dlib's ensemble-of-regression-trees landmark model
// (Kazemi & Sullivan 2014). Safe for concurrent use.
type shapePredictor struct {
	p     *C.fer_dlib_predictor
	parts int
}

var (
	predictorMu sync.Mutex
	predictors  = map[string]*shapePredictor{}
)

// shapePredictorPath is FER_DLIB_SHAPE_PREDICTOR or DefaultShapePredictor.
func shapePredictorPath() string {
	if p := os.Getenv("FER_DLIB_SHAPE_PREDICTOR"); p != "" {
		return p
	}
	return DefaultShapePredictor
}

// loadShapePredictor loads a 68-point model once per process (~100 MB,
// about a second) and shares it.
func loadShapePredictor(path string) (*shapePredictor, error) {
	predictorMu.Lock()
	defer predictorMu.Unlock()
	if p := predictors[path]; p != nil {
		return p, nil
	}
	if st, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("landmark model %s: %w (install Debian's libdlib-data: ./setup-gotch.sh does, or set FER_DLIB_SHAPE_PREDICTOR)", path, err)
	} else if st.IsDir() {
		return nil, fmt.Errorf("landmark model %s: is a folder", path)
	}
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	var p *C.fer_dlib_predictor
	var parts C.int
	var msg [errLen]C.char
	if C.fer_dlib_predictor_new(cpath, &p, &parts, &msg[0], errLen) != 0 {
		return nil, fmt.Errorf("load landmark model: %s (is it dlib's shape_predictor_68_face_landmarks.dat?)", cmsg(&msg[0]))
	}
	if parts != NumLandmarks {
		C.fer_dlib_predictor_free(p)
		return nil, fmt.Errorf("landmark model %s has %d points, fer needs the 68-point model", path, int(parts))
	}
	sp := &shapePredictor{p: p, parts: int(parts)}
	predictors[path] = sp
	return sp, nil
}

// landmarks places the 68 points inside box.
func (s *shapePredictor) landmarks(img *imaging.RGB, box image.Rectangle) (Landmarks, error) {
	var lm Landmarks
	if err := checkRGB(img); err != nil {
		return lm, err
	}
	var xy [2 * NumLandmarks]C.double
	var msg [errLen]C.char
	rc := C.fer_dlib_landmarks(s.p, (*C.uchar)(unsafe.Pointer(&img.Pix[0])), C.int(img.W), C.int(img.H),
		C.long(box.Min.X), C.long(box.Min.Y), C.long(box.Max.X-1), C.long(box.Max.Y-1), &xy[0], &msg[0], errLen)
	runtime.KeepAlive(img)
	if rc != 0 {
		return lm, errors.New(cmsg(&msg[0]))
	}
	for i := range lm {
		lm[i] = Point{X: float64(xy[2*i]), Y: float64(xy[2*i+1])}
	}
	return lm, nil
}

// cmsg is a C error message on one line (dlib's span several).
func cmsg(m *C.char) string { return strings.Join(strings.Fields(C.GoString(m)), " ") }

func checkRGB(img *imaging.RGB) error {
	if img == nil || img.W < 1 || img.H < 1 || len(img.Pix) < 3*img.W*img.H {
		return errors.New("face: empty or short RGB image")
	}
	return nil
}
