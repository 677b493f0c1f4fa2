// Package fer is the core of the fer framework: runtime set-up (threads,
// device, seeding), the task definitions shared by the five systems, the
// training loop, checkpoints and run configuration. Metrics live in the
// sub-package fer/metrics.
package fer
