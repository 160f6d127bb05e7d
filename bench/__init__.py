"""Benchmarks (development only, not shipped): `make bench`, or `python -m bench --help`.

Every figure is a ratio against a baseline run side by side on the same machine; BENCHMARKS.md
records them with the commands that made them.
"""

from pathlib import Path

# The checkout that holds this package: not installed, so the benchmarks' helper processes
# (``python -m bench.<module>``) run from here.
ROOT = Path(__file__).resolve().parent.parent
