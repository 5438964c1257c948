"""Benchmarks: `python -m benchmarks.<name>`; each prints a table with medians and ratios."""
