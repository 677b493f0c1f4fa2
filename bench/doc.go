// Package bench measures fer against PyTorch: step timing statistics,
// resident memory, on-disk JPEG fixtures for the data pipeline, the models
// `fercli bench` knows how to build in both frameworks, a client for
// bench/torch_bench.py (the PyTorch side, run as a child process and
// driven line by line so that fer and PyTorch steps interleave), and the
// training soak that checks memory stays flat.
//
// Timings are never asserted in tests: unit tests check the statistics,
// the parsers and the fixtures; speed lives in benchmarks and in
// `fercli bench` (results in bench/RESULTS.md).
package bench
