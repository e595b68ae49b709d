"""Facts about the machine and the software a bench run records: CPU, SIMD, memory, versions."""

from __future__ import annotations

import importlib.metadata
import os
import platform


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cpu_flags() -> list[str]:
    """The SIMD extensions the CPU reports (what the C++ backend can choose from)."""
    wanted = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_fp16")
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return [flag for flag in wanted if flag in flags]
    except OSError:
        pass
    return []


def _memory_gib() -> float | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / (1 << 30)
    except (ValueError, OSError, AttributeError):
        return None


def versions(fsm) -> dict[str, str | None]:
    packages = ("fastsoftmax", "numpy", "numba", "torch", "jax", "jaxlib", "matplotlib", "tqdm")
    found: dict[str, str | None] = {"python": platform.python_version()}
    for name in packages:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    found["fastsoftmax (imported)"] = f"{fsm.__version__} from {os.path.dirname(fsm.__file__)}"
    return found


def machine_facts(cores: int) -> dict[str, object]:
    return {
        "cpu_model": _cpu_model(),
        "cpu_simd_flags": _cpu_flags(),
        "platform": platform.platform(),
        "cores_usable": cores,
        "cpu_count": os.cpu_count(),
        "memory_gib": _memory_gib(),
        # Other processes' load makes every figure noisy; the reader should know.
        "load_average_at_start": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }
