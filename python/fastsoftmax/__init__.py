"""fastsoftmax: softmax, log-softmax and their fused gradients for NumPy arrays.

The gradients never build the N×N softmax Jacobian: they are the O(N) products
``s * (g - sum(s * g))`` (`softmax_jacobian` builds it, on request); `logsumexp` reduces each
row to ``log(sum(exp(x)))``. Three backends compute the same functions: a compiled C++ kernel
(SIMD, OpenMP), Numba JIT kernels, and plain NumPy.
"""

from __future__ import annotations

from ._api import log_softmax, log_softmax_backward, softmax, softmax_backward, softmax_jvp
from ._backends import available_backends
from ._config import show_config
from ._cross_entropy import softmax_cross_entropy
from ._jacobian import log_softmax_jacobian, softmax_jacobian
from ._logsumexp import logsumexp
from ._threads import get_num_threads, set_num_threads

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "available_backends",
    "get_num_threads",
    "log_softmax",
    "log_softmax_backward",
    "log_softmax_jacobian",
    "logsumexp",
    "set_num_threads",
    "show_config",
    "softmax",
    "softmax_backward",
    "softmax_cross_entropy",
    "softmax_jacobian",
    "softmax_jvp",
]
