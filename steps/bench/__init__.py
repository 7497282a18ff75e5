"""Benchmarks: scripts that print figures (python -m steps.bench.X). utils/benchmark.sh runs them all."""
