"""Benchmarks (development only, not shipped): `make bench`, or `python -m bench --help`.

Every figure is a ratio against a baseline run side by side on the same machine; BENCHMARKS.md
records them with the commands that made them.
"""
