# Type stub of the compiled extension (cpp/src/module.cpp). Arrays are float32 or float64 and
# of one shape; outputs are writeable; axis is non-negative. The public API is in _api.py.
import numpy as np

# where (None: no mask) is a bool array of x's shape, possibly with zero strides.
def softmax(
    x: np.ndarray, where: np.ndarray | None, out: np.ndarray, axis: int, threads: int
) -> None: ...
def log_softmax(
    x: np.ndarray, where: np.ndarray | None, out: np.ndarray, axis: int, threads: int
) -> None: ...
def softmax_backward(
    y: np.ndarray,
    grad: np.ndarray,
    where: np.ndarray | None,
    out: np.ndarray,
    axis: int,
    threads: int,
) -> None: ...
def log_softmax_backward(
    y: np.ndarray,
    grad: np.ndarray,
    where: np.ndarray | None,
    out: np.ndarray,
    axis: int,
    threads: int,
) -> None: ...
def softmax_jvp(
    x: np.ndarray,
    v: np.ndarray,
    where: np.ndarray | None,
    out: np.ndarray,
    s_out: np.ndarray | None,
    axis: int,
    threads: int,
) -> None: ...

# logsumexp's out and sign_out (which may be None) have x's shape without the axis; b (None: all
# ones) has x's shape, possibly with zero strides (python/fastsoftmax/_reference.py).
def logsumexp(
    x: np.ndarray,
    b: np.ndarray | None,
    where: np.ndarray | None,
    out: np.ndarray,
    sign_out: np.ndarray | None,
    axis: int,
    threads: int,
) -> None: ...

# The row partials (python/fastsoftmax/_partials.py): row_max and row_sum, x's shape without
# the axis, are written by row_partials and read by the *_given functions.
def row_partials(
    x: np.ndarray,
    where: np.ndarray | None,
    max_out: np.ndarray,
    sum_out: np.ndarray,
    axis: int,
    threads: int,
) -> None: ...
def softmax_given(
    x: np.ndarray,
    where: np.ndarray | None,
    row_max: np.ndarray,
    row_sum: np.ndarray,
    out: np.ndarray,
    axis: int,
    threads: int,
) -> None: ...
def log_softmax_given(
    x: np.ndarray,
    where: np.ndarray | None,
    row_max: np.ndarray,
    row_sum: np.ndarray,
    out: np.ndarray,
    axis: int,
    threads: int,
) -> None: ...

# The fast path: the result, or None where the Python layer must take the call (see module.cpp).
def try_softmax(x: object, out: object, axis: object, threads: int) -> np.ndarray | None: ...
def try_log_softmax(x: object, out: object, axis: object, threads: int) -> np.ndarray | None: ...
def try_softmax_backward(
    y: object, grad: object, out: object, axis: object, threads: int
) -> np.ndarray | None: ...
def try_log_softmax_backward(
    y: object, grad: object, out: object, axis: object, threads: int
) -> np.ndarray | None: ...
def try_softmax_jvp(
    x: object, v: object, out: object, axis: object, threads: int
) -> np.ndarray | None: ...
def simd_level() -> str: ...
def supported_simd_levels() -> list[str]: ...
def set_simd_level(name: str) -> None: ...
def openmp_enabled() -> bool: ...
def streaming_threshold_bytes() -> int: ...
def _set_streaming_threshold_bytes(bytes: int) -> None: ...
def _convert_half(x: np.ndarray, out: np.ndarray) -> None: ...
def _exp(x: np.ndarray) -> np.ndarray: ...
