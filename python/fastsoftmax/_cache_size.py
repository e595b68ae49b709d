"""Where outputs start to bypass the cache: the rule both backends use, written once.

The C++ extension is told the result when ``_backends`` imports it; the Numba backend calls
:func:`streaming_threshold_bytes` itself.

[Note: the streaming threshold]
Measured on two 2-core VMs: on an Intel Sapphire Rapids, arrays of 32 MiB stayed in cache and
64 MiB did not, although the OS reported a 480 MiB L3; on an AMD EPYC (Zen 4) with a reported
32 MiB L3, streaming already paid from arrays of 6-8 MiB (1 thread; about equal at 4-5 MiB).
One eighth of the L3 that Linux reports, capped at 32 MiB, is right on both. Streaming an array
that would have stayed cached costs the forward operations little (they are bound by exp, not
memory); keeping one that does not fit costs a third of the traffic. So where the L3 size is
unknown, the threshold is the low end of what was measured. The figures are in
``_constants.json`` (``streaming_threshold``).
"""

from __future__ import annotations

import functools
import re

from ._constants import STREAMING_THRESHOLD

_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20}


def _linux_l3_bytes() -> int:
    """The L3 size Linux reports for CPU 0 (sysfs, the source lscpu reads), or 0 if none."""
    for index in range(8):
        cache = f"/sys/devices/system/cpu/cpu0/cache/index{index}/"
        try:
            with open(cache + "level") as level:
                if level.read().strip() != "3":
                    continue
        except OSError:
            continue
        try:
            with open(cache + "size") as size:
                text = size.read().strip()  # e.g. "32768K"
        except OSError:
            return 0
        match = re.fullmatch(r"(\d+)([KM]?)", text)
        if match is None or int(match[1]) > 1 << 40:  # not a cache size
            return 0
        return int(match[1]) * _UNITS[match[2]]
    return 0


@functools.cache
def streaming_threshold_bytes() -> int:
    """Outputs larger than this many bytes are written past the cache: 1/l3_divisor of the L3
    size Linux reports, within [min_bytes, max_bytes]; unknown_cache_bytes if it reports none
    (see the Note above; the figures are ``_constants.STREAMING_THRESHOLD``)."""
    rule = STREAMING_THRESHOLD
    l3 = _linux_l3_bytes()
    if l3 <= 0:
        return rule["unknown_cache_bytes"]
    return min(max(l3 // rule["l3_divisor"], rule["min_bytes"]), rule["max_bytes"])
