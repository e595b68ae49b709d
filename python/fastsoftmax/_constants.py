"""What the C++ and Numba backends must agree on, read from ``_constants.json``.

The JSON file is the one place these are written: CMake reads it at configure time into the C++
build (``CMakeLists.txt``), and the Numba backend reads it here. Floats are hexadecimal
strings, so that both sides get exactly the same bits (a decimal float32 literal rounds once in
C++ and twice through Python's float).
"""

from __future__ import annotations

import json
from pathlib import Path

_DATA = json.loads((Path(__file__).with_name("_constants.json")).read_text())

SIMD_LEVELS: tuple[str, ...] = tuple(_DATA["simd_levels"])  # best first
GRAIN_ELEMENTS: int = _DATA["grain_elements"]
SPLIT_ELEMENTS: int = _DATA["split_elements"]
STREAMING_THRESHOLD: dict[str, int] = _DATA["streaming_threshold"]


def exp_constants(dtype_name: str) -> dict[str, object]:
    """The exp's clamps, ln 2 split and polynomial (highest degree first) for ``"float32"`` or
    ``"float64"``, as Python floats (exact in that dtype)."""
    raw = _DATA["exp"][dtype_name]
    number = lambda v: float.fromhex(v) if isinstance(v, str) else float(v)  # noqa: E731
    return {
        key: [number(c) for c in value] if isinstance(value, list) else number(value)
        for key, value in raw.items()
    }
