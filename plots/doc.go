// Package plots draws the figures the papers show with gonum/plot: t-SNE and
// MDS embeddings of features, confusion matrices, training curves and
// Grad-CAM overlays, as PNG or SVG.
package plots
