"""Benchmarks (issue 8): `python -m bench [--quick]` prints a table and writes BENCHMARKS.md."""
