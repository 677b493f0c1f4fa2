// C interface to dlib's HOG frontal face detector and 68-point shape
// predictor, for data/face (cgo cannot call C++ directly).
#ifndef FER_DLIB_SHIM_H
#define FER_DLIB_SHIM_H

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fer_dlib_detector fer_dlib_detector;
typedef struct fer_dlib_predictor fer_dlib_predictor;

// A detection: box [left, top, right, bottom] in pixels (dlib's
// inclusive right/bottom), the SVM score and which of the detector's five
// HOG filters fired (0 front, 1 left, 2 right, 3 front rotated left,
// 4 front rotated right).
typedef struct {
	long left, top, right, bottom;
	double score;
	int filter;
} fer_dlib_det;

// Every function returns 0 on success and -1 on failure with a message in
// err (errlen bytes, NUL-terminated); no C++ exception crosses the
// boundary.
int fer_dlib_detector_new(fer_dlib_detector **out, char *err, int errlen);
void fer_dlib_detector_free(fer_dlib_detector *d);

// Detects faces in a packed RGB image (w*h*3 bytes, rows w*3 bytes apart),
// upsampled upsample times (each doubles the side, finding faces half as
// large; dlib's Python API's second argument), keeping detections whose
// score exceeds threshold (dlib's adjust_threshold, 0 by default). Writes
// at most cap detections, strongest first; *n is the number found.
int fer_dlib_detect(fer_dlib_detector *d, const unsigned char *rgb, int w, int h, int upsample,
                    double threshold, fer_dlib_det *out, int cap, int *n, char *err, int errlen);

int fer_dlib_predictor_new(const char *path, fer_dlib_predictor **out, int *parts, char *err, int errlen);
void fer_dlib_predictor_free(fer_dlib_predictor *p);

// Places the predictor's landmarks in box [left, top, right, bottom] of the
// RGB image; xy receives 2*parts doubles (x0, y0, x1, y1, ...).
int fer_dlib_landmarks(const fer_dlib_predictor *p, const unsigned char *rgb, int w, int h,
                       long left, long top, long right, long bottom, double *xy, char *err, int errlen);

#ifdef __cplusplus
}
#endif
#endif
