"""`python benchmarks/run.py [SUITE ...] [options]`, or `python -m benchmarks.run ...` from the repository root:
the benchmark command line (benchmarks.cli).

Run as a file, Python puts this file's folder first on the import path, where `benchmarks` cannot be imported
from; the repository root that holds the package takes that place instead.
"""

import sys
from pathlib import Path

if __name__ == "__main__":
    if not __package__:
        sys.path[0] = str(Path(__file__).resolve().parent.parent)
    from benchmarks.cli import main

    sys.exit(main())
