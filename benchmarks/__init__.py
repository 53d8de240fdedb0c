"""Benchmarks that reproduce the paper's tables and figures: `python benchmarks/run.py [SUITE ...]`."""
