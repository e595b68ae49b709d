"""Configuration: which backends exist, the default and its environment variable, threads,
``show_config``."""

from __future__ import annotations

import importlib.util
import os
import re

import fastsoftmax as fsm
import numpy as np
import pytest
from fastsoftmax import _backends, _config, _threads
from support.backends import CORE, needs_threads
from support.processes import expected_backends, run_python


def test_expected_backends_are_available():
    """A backend that should work here and does not is a failure, not a silently shorter run."""
    missing = expected_backends() - set(fsm.available_backends())
    reasons = {name: _backends.unavailable_reason(name) for name in missing}
    assert not missing, f"backends that should be available are not: {reasons}"


def test_every_available_backend_computes():
    x = np.array([[0.0, np.log(3.0)]])
    for name in fsm.available_backends():
        np.testing.assert_allclose(fsm.softmax(x, backend=name), [[0.25, 0.75]], rtol=1e-15)


def test_available_backends_order():
    names = fsm.available_backends()
    assert isinstance(names, list)
    assert names == [b for b in ("cpp", "numba", "numpy") if b in names]  # preference order
    assert "numpy" in names
    assert ("numba" in names) == (importlib.util.find_spec("numba") is not None)
    assert ("cpp" in names) == (CORE is not None)


def test_show_config(capsys):
    fsm.show_config()
    text = capsys.readouterr().out
    assert fsm.__version__ in text
    assert np.__version__ in text
    for name in fsm.available_backends():
        assert name in text
    assert str(fsm.get_num_threads()) in text
    if CORE is not None:
        assert CORE.simd_level() in text
        assert "simd" in text.lower()
        assert "openmp" in text.lower()
    else:
        assert "did not import" in text  # says why the C++ backend is missing


@needs_threads
def test_show_config_reports_a_changed_level_and_thread_count(capsys):
    if CORE is None:
        pytest.skip("the C++ extension is not built here")  # test_expected_backends guards
    previous_level, previous_threads = CORE.simd_level(), fsm.get_num_threads()
    try:
        CORE.set_simd_level("baseline")
        fsm.set_num_threads(7)
        fsm.show_config()
        text = capsys.readouterr().out
        assert "baseline" in text
        thread_lines = [line for line in text.splitlines() if "thread" in line.lower()]
        assert any(re.search(r"\b7\b", line) for line in thread_lines), text
    finally:
        CORE.set_simd_level(previous_level)
        fsm.set_num_threads(previous_threads)


# --------------------------------------------------------------------------------------------
# Threads


@needs_threads
def test_set_and_get_num_threads():
    previous = fsm.get_num_threads()
    try:
        for n in (1, 3, np.int64(2), 64):
            fsm.set_num_threads(n)
            assert fsm.get_num_threads() == n
            assert type(fsm.get_num_threads()) is int
    finally:
        fsm.set_num_threads(previous)
    assert fsm.get_num_threads() == previous


@pytest.mark.parametrize("bad", [1.0, 2.5, "2", None, True, [2]], ids=repr)
def test_set_num_threads_type_error(bad):
    previous = fsm.get_num_threads()
    with pytest.raises(TypeError, match="integer"):
        fsm.set_num_threads(bad)
    assert fsm.get_num_threads() == previous


@pytest.mark.parametrize("bad", [0, -1, np.int32(0)], ids=repr)
def test_set_num_threads_value_error(bad):
    previous = fsm.get_num_threads()
    with pytest.raises(ValueError, match="from 1 to"):
        fsm.set_num_threads(bad)
    assert fsm.get_num_threads() == previous


@pytest.mark.skipif(not _threads.SINGLE_THREADED, reason="this build has OpenMP threads")
def test_single_threaded_build_says_so(capsys):
    """Built without OpenMP: one thread whatever is asked, and said, not silently ignored."""
    previous = fsm.get_num_threads()
    assert previous == 1
    with pytest.warns(RuntimeWarning, match=r"built without OpenMP.*set_num_threads\(3\)"):
        fsm.set_num_threads(3)
    assert fsm.get_num_threads() == 1
    fsm.set_num_threads(1)  # no warning: one thread is what it has
    fsm.show_config()
    lines = [line for line in capsys.readouterr().out.splitlines() if "OpenMP" in line]
    assert lines == [f"openmp: False ({_config._EXPLAINED['openmp', False]})"]
    proc = run_python(
        "import fastsoftmax as fsm; print(fsm.get_num_threads())", OMP_NUM_THREADS="3"
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "1"


THREADS = (
    "import os, fastsoftmax as fsm; print(fsm.get_num_threads(), len(os.sched_getaffinity(0)))"
)


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="no CPU affinity on this OS")
@needs_threads
def test_default_threads_are_the_usable_cores():
    proc = run_python(THREADS)
    assert proc.returncode == 0, proc.stderr
    threads, cores = proc.stdout.split()
    assert threads == cores


@needs_threads
@pytest.mark.parametrize(("value", "want"), [("3", 3), ("1", 1), ("5,2", 5)])
def test_default_threads_from_omp_num_threads(value, want):
    proc = run_python(
        "import fastsoftmax as fsm; print(fsm.get_num_threads())", OMP_NUM_THREADS=value
    )
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout) == want


# --------------------------------------------------------------------------------------------
# FASTSOFTMAX_BACKEND

DEFAULT = """
import numpy as np, fastsoftmax as fsm
from fastsoftmax import _backends
x = np.array([1.0, 2.0, 3.0])
np.testing.assert_array_equal(fsm.softmax(x), fsm.softmax(x, backend={expected!r}))
assert _backends.resolve(None) is _backends.resolve({expected!r})
fsm.show_config()
"""


@pytest.mark.parametrize("name", fsm.available_backends())
def test_backend_environment_variable(name):
    proc = run_python(DEFAULT.format(expected=name), FASTSOFTMAX_BACKEND=name)
    assert proc.returncode == 0, proc.stderr
    assert any("default" in line and name in line for line in proc.stdout.splitlines())


def test_default_backend_without_environment_variable():
    expected = fsm.available_backends()[0]
    proc = run_python(DEFAULT.format(expected=expected))
    assert proc.returncode == 0, proc.stderr


def test_backend_environment_variable_must_name_a_backend():
    proc = run_python("import fastsoftmax", FASTSOFTMAX_BACKEND="tensorflow")
    assert proc.returncode != 0
    assert "ValueError" in proc.stderr
    assert "FASTSOFTMAX_BACKEND" in proc.stderr
    assert "tensorflow" in proc.stderr


def test_backend_environment_variable_naming_a_missing_backend():
    code = (
        "import sys; sys.modules['fastsoftmax._core'] = None\n"
        "import fastsoftmax as fsm\n"
        "try:\n    fsm.softmax([1.0, 2.0])\n"
        "except RuntimeError as err:\n    print('RuntimeError', err)\n"
    )
    proc = run_python(code, FASTSOFTMAX_BACKEND="cpp")
    assert proc.returncode == 0, proc.stderr
    assert "RuntimeError" in proc.stdout
    assert "cpp" in proc.stdout
