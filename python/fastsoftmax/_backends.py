"""Which backends exist here, which one a call uses, and why one is missing.

``"cpp"`` is the compiled extension, ``"numba"`` the JIT kernels (imported on first use, since
importing Numba costs a noticeable fraction of a second; whether they work is decided by that
import, as an installed Numba may still fail to import), ``"numpy"`` the reference. Each is a
module with the same five functions; see ``_reference.py`` for the contract.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import os
from types import ModuleType

import numpy as np

from ._cache_size import streaming_threshold_bytes

BACKENDS = ("cpp", "numba", "numpy")

try:
    from . import _core
except ImportError as err:  # a source tree without a build, or a wheel for another platform
    _core = None
    _has_binary = any(
        os.path.isfile(os.path.join(os.path.dirname(__file__), "_core" + suffix))
        for suffix in importlib.machinery.EXTENSION_SUFFIXES
    )
    _CORE_ERROR = (
        f"the compiled extension fastsoftmax._core did not import ({err}); reinstall with "
        "`pip install fastsoftmax` (or `pip install .` from a source checkout, which needs a "
        "C++17 compiler and CMake)"
        if _has_binary
        else "the compiled extension fastsoftmax._core did not import: this installation has "
        "none (a pure-Python build, as FASTSOFTMAX_PURE_PYTHON=1 makes), so the 'numba' and "
        "'numpy' backends work and 'cpp' does not; for it, reinstall with a C++17 compiler and "
        "CMake (`pip install fastsoftmax`, or `pip install .` from a source checkout)"
    )
else:
    _CORE_ERROR = ""
    # Resolves FASTSOFTMAX_SIMD: a bad value raises ValueError here, at import, rather than
    # silently leaving the user without the compiled backend.
    _core.simd_level()
    _core._set_streaming_threshold_bytes(streaming_threshold_bytes())

_PYTHON_MODULES = {"numba": "._numba", "numpy": "._reference"}
_loaded: dict[str, ModuleType] = {}
_import_errors: dict[str, str] = {}  # why a Python backend failed to import, once tried

# [Note: fast paths]
# For a small array the Python layer's checks cost several times the kernel, so a backend may
# offer ``try_<op>`` for the operations below: it takes the public function's arguments
# (``out`` and ``axis`` as given, and the thread count) and computes the calls it can take
# exactly as the Python layer would, returning the result; for any other it returns None
# without looking further, and the Python layer makes the call. The C++ module's (see its Note
# in cpp/src/module.cpp) takes every plain call; the Numba backend's, those in C-contiguous rows
# along the last axis.
FAST_OPS = ("softmax", "log_softmax", "softmax_backward", "log_softmax_backward", "softmax_jvp")
_fast: dict[str, dict] = {}


def _register_fast_paths(name: str, module: ModuleType) -> None:
    if hasattr(module, "try_softmax"):
        _fast[name] = {op: getattr(module, "try_" + op) for op in FAST_OPS}


def fast_paths(name: object) -> dict:
    """``{operation: try_<op>}`` of backend ``name`` if it is loaded and has them, else empty."""
    return _fast.get(name, {}) if type(name) is str else {}  # a list would raise TypeError


if _core is not None:
    _loaded["cpp"] = _core
    _register_fast_paths("cpp", _core)


def _load(name: str) -> ModuleType | None:
    """Backend ``name``'s module, imported the first time it is asked for; None if it failed."""
    module = _loaded.get(name)
    if module is None and name in _PYTHON_MODULES and name not in _import_errors:
        try:
            module = importlib.import_module(_PYTHON_MODULES[name], __package__)
        except Exception as err:  # Numba's own import checks raise ImportError and others
            missing = isinstance(err, ModuleNotFoundError) and err.name in ("numba", "llvmlite")
            _import_errors[name] = (
                "Numba is not installed; install it with `pip install numba` (or "
                "`pip install '.[numba]'` in a source checkout)"
                if missing
                else f"Numba is installed but failed to import ({err!r})"
            )
        else:
            _loaded[name] = module
            _register_fast_paths(name, module)
    return module


def unavailable_reason(name: str) -> str:
    if name == "cpp":
        return _CORE_ERROR
    if _load(name) is None:
        return _import_errors[name]
    return ""


def available_backends() -> list[str]:
    """The backends that work in this environment, in the order ``backend=None`` prefers them.

    Examples
    --------
    >>> import fastsoftmax as fsm
    >>> "numpy" in fsm.available_backends()
    True
    """
    return [name for name in BACKENDS if not unavailable_reason(name)]


def _check_name(name: object, source: str) -> str:
    if not isinstance(name, str) or name not in BACKENDS:
        raise ValueError(f"{source} must be one of {', '.join(map(repr, BACKENDS))}; got {name!r}")
    return name


def _default_backend() -> str | None:
    env = os.environ.get("FASTSOFTMAX_BACKEND", "").strip()
    if env:
        return _check_name(env, "the environment variable FASTSOFTMAX_BACKEND")
    return "cpp" if _core is not None else None  # None: decided at the first call


# Read once: the environment is part of the import-time configuration, like FASTSOFTMAX_SIMD.
# Without the extension, the choice between Numba and NumPy waits for the first call, since it
# imports Numba.
DEFAULT = _default_backend()


def default_backend() -> str:
    """The backend ``backend=None`` uses."""
    global DEFAULT
    if DEFAULT is None:
        DEFAULT = available_backends()[0]
    return DEFAULT


def resolve(name: str | None) -> ModuleType:
    """The backend module for ``backend=name`` (``None``: the default)."""
    if name is None:
        name = default_backend()
    module = _loaded.get(name) if type(name) is str else None  # a list is unhashable
    if module is not None:
        return module
    _check_name(name, "backend")
    module = _load(name)
    if module is None:
        raise RuntimeError(f"backend {name!r} is not available: {unavailable_reason(name)}")
    return module


def core() -> ModuleType | None:
    """The compiled extension, or ``None`` when it did not import."""
    return _core


def input_dtype(module: ModuleType, compute: np.dtype, dtype: np.dtype) -> np.dtype:
    """The dtype ``module`` takes a call's full-shape arrays in, for a result of ``dtype``
    computed in ``compute``: float16 goes to the C++ core as it is (the kernels convert a few
    rows at a time, in cache, and write float16), to the other backends as float32 copies."""
    return dtype if dtype == np.float16 and module is _core else compute
