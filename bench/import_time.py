"""What ``import fastsoftmax`` costs beyond ``import numpy``: the median of fresh processes.

    python bench/import_time.py            # 15 processes
    python bench/import_time.py --runs 31

Each process imports NumPy first, then times ``import fastsoftmax`` alone, so the figure is
the package's own cost (the extension, its SIMD choice, the Python modules), not NumPy's. The
target is at most 30 ms; a busy machine moves single runs, so the median is what is printed.
It also says whether the import loaded an optional heavy dependency, and then exits 1.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

TARGET_MS = 30.0
OPTIONAL = ("numba", "llvmlite", "dask", "threadpoolctl")

_PROBE = """
import json, sys, time
import numpy
start = time.perf_counter()
import fastsoftmax
elapsed = time.perf_counter() - start
print(json.dumps({"ms": elapsed * 1e3, "modules": sorted({m.split(".")[0] for m in sys.modules})}))
"""


def measure(runs: int) -> tuple[list[float], set[str]]:
    """Milliseconds of each fresh process's import, and the optional modules any of them loaded."""
    times, loaded = [], set()
    for _ in range(runs):
        proc = subprocess.run(
            [sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True
        )
        record = json.loads(proc.stdout)
        times.append(record["ms"])
        loaded |= set(record["modules"]) & set(OPTIONAL)
    return times, loaded


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15, help="fresh processes (default 15)")
    args = parser.parse_args(argv)
    times, loaded = measure(args.runs)
    median = statistics.median(times)
    print(
        f"import fastsoftmax after import numpy: median {median:.1f} ms over {args.runs} fresh "
        f"processes (fastest {min(times):.1f}, slowest {max(times):.1f}; target <= {TARGET_MS:.0f})"
    )
    print("optional modules imported: " + (", ".join(sorted(loaded)) or "none"))
    return 1 if loaded else 0  # deterministic, unlike the time: tests/test_import.py checks it too


if __name__ == "__main__":
    sys.exit(main())
