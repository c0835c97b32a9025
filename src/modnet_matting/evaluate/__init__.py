"""Evaluation: metrics, the benchmark runner, peer methods, composites and speed."""
