// The dlib side of data/face: dlib's C++ API behind the C functions of
// dlib_shim.h. Images are packed RGB buffers owned by Go, wrapped without
// copying in rgb_view (dlib's generic image interface).
#include "dlib_shim.h"

#include <cstdio>
#include <exception>
#include <new>
#include <vector>

#include <dlib/image_processing.h>
#include <dlib/image_processing/frontal_face_detector.h>
#include <dlib/image_transforms.h>

namespace ferdlib {

// rgb_view is a read-only packed RGB image (dlib::rgb_pixel is three bytes
// red, green, blue, as Go's imaging.RGB stores them).
struct rgb_view {
	const unsigned char *data;
	long nr, nc;
};

inline long num_rows(const rgb_view &img) { return img.nr; }
inline long num_columns(const rgb_view &img) { return img.nc; }
inline const void *image_data(const rgb_view &img) { return img.data; }
inline void *image_data(rgb_view &img) { return const_cast<unsigned char *>(img.data); }
inline long width_step(const rgb_view &img) { return img.nc * 3; }

} // namespace ferdlib

namespace dlib {
template <> struct image_traits<ferdlib::rgb_view> {
	typedef rgb_pixel pixel_type;
};
} // namespace dlib

static_assert(sizeof(dlib::rgb_pixel) == 3, "dlib::rgb_pixel must be packed RGB");

struct fer_dlib_detector {
	dlib::frontal_face_detector det;
	dlib::array2d<dlib::rgb_pixel> up; // upsampled image, reused
};

struct fer_dlib_predictor {
	dlib::shape_predictor sp;
};

static int fail(char *err, int errlen, const char *what, const char *msg) {
	if (err && errlen > 0) {
		snprintf(err, (size_t)errlen, "%s: %s", what, msg);
	}
	return -1;
}

extern "C" int fer_dlib_detector_new(fer_dlib_detector **out, char *err, int errlen) {
	try {
		fer_dlib_detector *d = new fer_dlib_detector;
		d->det = dlib::get_frontal_face_detector();
		*out = d;
		return 0;
	} catch (const std::exception &e) {
		return fail(err, errlen, "dlib frontal face detector", e.what());
	} catch (...) {
		return fail(err, errlen, "dlib frontal face detector", "unknown C++ exception");
	}
}

extern "C" void fer_dlib_detector_free(fer_dlib_detector *d) { delete d; }

extern "C" int fer_dlib_detect(fer_dlib_detector *d, const unsigned char *rgb, int w, int h, int upsample,
                               double threshold, fer_dlib_det *out, int cap, int *n, char *err, int errlen) {
	try {
		ferdlib::rgb_view img{rgb, (long)h, (long)w};
		std::vector<dlib::rect_detection> dets;
		// As dlib's Python binding (run_detector_with_upscale1): upsample
		// with pyramid_up, detect, map the boxes back with rect_down.
		dlib::pyramid_down<2> pyr;
		if (upsample <= 0) {
			d->det(img, dets, threshold);
		} else {
			dlib::pyramid_up(img, d->up, pyr);
			for (int i = 1; i < upsample; i++) {
				dlib::pyramid_up(d->up);
			}
			d->det(d->up, dets, threshold);
			for (auto &r : dets) {
				r.rect = pyr.rect_down(r.rect, (unsigned int)upsample);
			}
		}
		// object_detector returns detections sorted by descending score.
		*n = (int)dets.size();
		for (int i = 0; i < (int)dets.size() && i < cap; i++) {
			out[i].left = dets[i].rect.left();
			out[i].top = dets[i].rect.top();
			out[i].right = dets[i].rect.right();
			out[i].bottom = dets[i].rect.bottom();
			out[i].score = dets[i].detection_confidence;
			out[i].filter = (int)dets[i].weight_index;
		}
		return 0;
	} catch (const std::bad_alloc &) {
		return fail(err, errlen, "dlib detect", "out of memory");
	} catch (const std::exception &e) {
		return fail(err, errlen, "dlib detect", e.what());
	} catch (...) {
		return fail(err, errlen, "dlib detect", "unknown C++ exception");
	}
}

extern "C" int fer_dlib_predictor_new(const char *path, fer_dlib_predictor **out, int *parts, char *err,
                                      int errlen) {
	fer_dlib_predictor *p = nullptr;
	try {
		p = new fer_dlib_predictor;
		dlib::deserialize(path) >> p->sp;
		if (p->sp.num_parts() == 0) {
			delete p;
			return fail(err, errlen, path, "shape predictor has no parts");
		}
		*parts = (int)p->sp.num_parts();
		*out = p;
		return 0;
	} catch (const std::exception &e) {
		delete p;
		return fail(err, errlen, path, e.what());
	} catch (...) {
		delete p;
		return fail(err, errlen, path, "unknown C++ exception");
	}
}

extern "C" void fer_dlib_predictor_free(fer_dlib_predictor *p) { delete p; }

extern "C" int fer_dlib_landmarks(const fer_dlib_predictor *p, const unsigned char *rgb, int w, int h,
                                  long left, long top, long right, long bottom, double *xy, char *err,
                                  int errlen) {
	try {
		ferdlib::rgb_view img{rgb, (long)h, (long)w};
		dlib::full_object_detection s = p->sp(img, dlib::rectangle(left, top, right, bottom));
		for (unsigned long i = 0; i < s.num_parts(); i++) {
			xy[2 * i] = (double)s.part(i).x();
			xy[2 * i + 1] = (double)s.part(i).y();
		}
		return 0;
	} catch (const std::exception &e) {
		return fail(err, errlen, "dlib shape predictor", e.what());
	} catch (...) {
		return fail(err, errlen, "dlib shape predictor", "unknown C++ exception");
	}
}
