"""What the fastsoftmax tests share, besides the fixtures (those are in ``conftest.py``).

- ``operations``: the operation table. Every generic test is parametrised over it and asks it
  how to make inputs, how to call, what to expect and what ``out=`` may be.
- ``reference``: the independent float64 reference of each operation.
- ``tolerances``: the tolerance rule of each operation, ``Expected`` and ``assert_matches``.
- ``layouts``: the memory layouts inputs and outputs are tested in.
- ``backends``: backends, SIMD levels and thread counts, as context managers.
- ``processes``: fresh interpreters (for what is read at import) and the backends expected.

The tests import these modules as ``support.<module>``: pyproject's ``pythonpath = ["tests"]``
puts this package on ``sys.path`` wherever pytest is run from, against whichever installed
fastsoftmax.
"""
