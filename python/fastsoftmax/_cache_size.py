"""Where outputs start to bypass the cache: the streaming threshold, from the L3 size Linux
reports, by the rule in ``_constants.json`` (``streaming_threshold``).

[Note: the streaming threshold]
Measured on two 2-core VMs: on an Intel Sapphire Rapids, arrays of 32 MiB stayed in cache and
64 MiB did not, although the OS reported a 480 MiB L3; on an AMD EPYC (Zen 4) with a reported
32 MiB L3, streaming already paid from arrays of 6-8 MiB (1 thread; about equal at 4-5 MiB).
One eighth of the L3 that Linux reports, within [1, 32] MiB, is right on both. Streaming an
array that would have stayed cached costs the forward ops little (they are bound by exp, not
memory); keeping one that does not fit costs a third of the traffic. So where the L3 size is
unknown, the threshold is the low end of what was measured.
"""

from __future__ import annotations

import functools

from ._constants import STREAMING_THRESHOLD

_UNITS = {"K": 1 << 10, "M": 1 << 20, "": 1}
_LARGEST = 1 << 40  # a larger "size" is no cache size


def _linux_l3_bytes() -> int:
    """The L3 size Linux reports for CPU 0 (sysfs, the source lscpu reads), or 0 if none."""
    for index in range(8):
        cache = f"/sys/devices/system/cpu/cpu0/cache/index{index}/"
        try:
            with open(cache + "level") as level:
                if level.read().strip() != "3":
                    continue
        except (OSError, ValueError):
            continue
        try:
            with open(cache + "size") as size:
                text = size.read().strip()  # e.g. "32768K"
        except (OSError, ValueError):
            return 0
        digits = len(text) - len(text.lstrip("0123456789"))
        number, unit = text[:digits], text[digits:]
        if not number or unit not in _UNITS or int(number) > _LARGEST:
            return 0
        return int(number) * _UNITS[unit]
    return 0


@functools.cache
def streaming_threshold_bytes() -> int:
    """The size in bytes above which an output is written with non-temporal stores."""
    rule = STREAMING_THRESHOLD
    l3 = _linux_l3_bytes()
    if l3 <= 0:
        return rule["unknown_cache_bytes"]
    return min(max(l3 // rule["l3_divisor"], rule["min_bytes"]), rule["max_bytes"])
