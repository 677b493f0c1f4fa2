// Package data reads the FER datasets in their real on-disk formats (DFEW,
// AFEW, RAF-DB, AffectNet, FERPlus, Aff-Wild2), decodes images and videos,
// samples clips, augments and batches them. The embedded synthetic
// benchmark lives in data/synth.
package data
