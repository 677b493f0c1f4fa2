// Package face finds faces in photos and video frames and turns them into
// model inputs: detection and 68-point landmarks (dlib through cgo),
// alignment to a dataset's template (a similarity transform, resampled
// with data/imaging's Pillow-exact warp and resize), IoU tracking, and a
// streaming pipeline that runs detection on worker goroutines while the
// caller consumes the frames in order.
//
// Detector: dlib's HOG frontal face detector (get_frontal_face_detector,
// built into libdlib) and shape_predictor_68_face_landmarks.dat (Debian's
// libdlib-data, /usr/share/dlib). Both install from Debian with no
// download at run time; README ("Faces in the wild") gives the recall
// measured on Megamind.avi and the photos this package is tested on.
//
// Landmark indices follow the iBUG 300-W 68-point layout: 0–16 jaw,
// 17–26 eyebrows, 27–35 nose (30 = tip), 36–41 the eye on the image's
// left (the subject's right eye), 42–47 the other eye, 48–67 mouth (48
// and 54 the corners).
package face
