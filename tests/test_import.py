"""Importing fastsoftmax stays cheap: it loads no optional heavy dependency.

Numba (about half a second to import), Dask and threadpoolctl are imported only when a call
needs them (or, for Numba, when `available_backends` or `show_config` asks whether it works,
which only importing it can tell). The import's time is not asserted here: a busy machine
would fail it.
"""

from __future__ import annotations

import json

from support.processes import run_python


def test_import_loads_no_optional_dependency():
    proc = run_python(
        "import sys, json\n"
        "import fastsoftmax as fsm\n"
        "print(fsm.softmax([1.0, 2.0]))\n"  # a call with the default backend stays light too
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    assert proc.returncode == 0, proc.stderr
    modules = set(json.loads(proc.stdout.splitlines()[-1]))
    assert "fastsoftmax" in modules
    optional = {"numba", "llvmlite", "dask", "threadpoolctl"}
    heavy = {name.split(".")[0] for name in modules} & optional
    assert not heavy, f"import fastsoftmax imported {sorted(heavy)}"
