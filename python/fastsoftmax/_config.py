"""``show_config``: what this installation will do, for bug reports and benchmark records."""

from __future__ import annotations

import platform
import sys

import numpy as np

from . import _backends
from ._threads import get_num_threads


def config() -> dict[str, object]:
    """The facts `show_config` prints, as a dict (the bench script records it)."""
    from . import __version__

    core = _backends.core()
    facts: dict[str, object] = {
        "fastsoftmax": __version__,
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "machine": platform.machine(),
        "backends": _backends.available_backends(),
        "default backend": _backends.default_backend(),
        "threads": get_num_threads(),
    }
    if core is None:
        facts["cpp"] = _backends.unavailable_reason("cpp")
    else:
        facts["simd level"] = core.simd_level()
        facts["simd levels supported"] = core.supported_simd_levels()
        facts["openmp"] = core.openmp_enabled()
        facts["streaming stores above (MiB per array)"] = core.streaming_threshold_bytes() / 2**20
    return facts


# What a value means where it changes what the user gets, said once, on its line.
_EXPLAINED = {
    ("openmp", False): "built without OpenMP: every call runs on one thread, with every backend",
}


def show_config() -> None:
    """Print the version, the backends that work here, the SIMD level and the thread count.

    Examples
    --------
    >>> import fastsoftmax as fsm
    >>> fsm.show_config()  # doctest: +SKIP
    fastsoftmax: 0.1.0
    ...
    simd level: avx512
    """
    for key, value in config().items():
        if isinstance(value, list):
            value = ", ".join(map(str, value))
        note = _EXPLAINED.get((key, value))
        print(f"{key}: {value}" + (f" ({note})" if note else ""))
