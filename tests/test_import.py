"""Importing fastsoftmax stays cheap: it loads no optional heavy dependency.

Numba (about half a second to import), Dask and threadpoolctl are imported only when a call
needs them. The import's time is not asserted here (a busy machine would fail it); the README's
performance page gives the measured figure.
"""

from __future__ import annotations

import json

from conftest import run_python


def test_import_loads_no_optional_dependency():
    proc = run_python(
        "import sys, json\n"
        "import fastsoftmax as fsm\n"
        "fsm.show_config()\n"  # what a user runs first also stays light
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    assert proc.returncode == 0, proc.stderr
    modules = set(json.loads(proc.stdout.splitlines()[-1]))
    assert "fastsoftmax" in modules
    optional = {"numba", "llvmlite", "dask", "threadpoolctl"}
    heavy = {name.split(".")[0] for name in modules} & optional
    assert not heavy, f"import fastsoftmax imported {sorted(heavy)}"
