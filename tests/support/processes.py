"""Fresh interpreters (for what is read at import) and the backends this environment owes."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

import fastsoftmax as fsm


def run_python(code: str, **env: str | None) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter; ``env`` entries override (None removes)."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("FASTSOFTMAX_")}
    environ.pop("OMP_NUM_THREADS", None)
    package_parent = str(Path(fsm.__file__).resolve().parent.parent)
    environ["PYTHONPATH"] = os.pathsep.join(
        [package_parent, *filter(None, [os.environ.get("PYTHONPATH")])]
    )
    for key, value in env.items():
        if value is None:
            environ.pop(key, None)
        else:
            environ[key] = value
    return subprocess.run(
        [sys.executable, "-c", code],
        env=environ,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def expected_backends() -> set[str]:
    """Backends this environment should have: a failed import of one of them is a failure.

    numpy always; numba when Numba is installed; cpp when a compiled ``_core`` file sits in the
    package (the build happened) or ``FASTSOFTMAX_TEST_REQUIRE`` (comma-separated) names it.
    """
    required = {"numpy"}
    if importlib.util.find_spec("numba") is not None:
        required.add("numba")
    package_dir = Path(fsm.__file__).resolve().parent
    if any((package_dir / f"_core{suffix}").exists() for suffix in EXTENSION_SUFFIXES):
        required.add("cpp")
    required.update(
        name.strip() for name in os.environ.get("FASTSOFTMAX_TEST_REQUIRE", "").split(",") if name
    )
    return required
