"""Benchmarks (`make bench`): each figure is a ratio to a baseline run side by side."""
