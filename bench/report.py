"""Results: the figures derived from the timings, the terminal table, the summary and the JSON.

A `Result` is one implementation timed on one case, op, thread setting and output mode. The
derived figures (speedups, GB/s, % of the measured bandwidth) are filled in by `derive` once the
baselines they compare against have been measured.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field

from bandwidth import BandwidthLog
from impls import Impl
from suite import Case, arrays_moved, is_large
from timer import Timing

MODES = ("fresh", "out")
MODE_LABELS = {"fresh": "fresh", "out": "out="}


@dataclass
class Result:
    case: Case
    op: str
    setting: int  # the thread count the bench had set
    threads: int  # the threads the implementation used
    mode: str
    impl: Impl
    timing: Timing | None = None
    error: float | None = None
    note: str = ""
    # Why the figure is not a result (its thread scaling is implausible: the machine was busy).
    implausible: str = ""
    wall_s: float = 0.0  # what measuring it cost, warm-up and accuracy check included
    derived: dict[str, float | None] = field(default_factory=dict)

    @property
    def seconds(self) -> float | None:
        """The median time, or None where there is no result (failed, or implausible)."""
        return self.timing.median if self.timing and not self.implausible else None

    @property
    def threads_label(self) -> str:
        return f"{self.threads} XLA" if self.impl.threads == "own" else str(self.threads)


# [Note: implausible thread scaling]
# More threads can be slower than one (a small call pays to wake them), but a call 10x slower on
# two threads than on one means another process held a core while it was timed: on the project
# machine such cells were 10-40x slower and normal when re-run alone. Such a cell is measured
# once more, and if it is still that slow it is marked and left out of every comparison, rather
# than reported as the implementation's speed.
IMPLAUSIBLE_SLOWDOWN = 10.0


def implausible_scaling(results: list[Result]) -> dict[int, str]:
    """``{index in results: why}`` for each multi-thread result over 10x its 1-thread time."""
    one_thread = {
        (r.case.key, r.op, r.mode, r.impl.key): r.timing.median
        for r in results
        if r.timing and r.threads == 1 and r.impl.threads == "follow"
    }
    found = {}
    for index, r in enumerate(results):
        if not r.timing or r.threads == 1 or r.impl.threads != "follow":
            continue
        single = one_thread.get((r.case.key, r.op, r.mode, r.impl.key))
        if single and r.timing.median > IMPLAUSIBLE_SLOWDOWN * single:
            found[index] = (
                f"{format_seconds(r.timing.median)} on {r.threads} threads, "
                f"{r.timing.median / single:.0f}x its 1-thread {format_seconds(single)} "
                "twice: the machine was busy; not a result"
            )
    return found


def _ratio(baseline: float | None, seconds: float | None) -> float | None:
    return baseline / seconds if baseline and seconds else None


def derive(results: list[Result], bandwidth: BandwidthLog) -> None:
    """Fill each result's speedups over the NumPy formula and PyTorch, GB/s and % of bandwidth.

    Each is compared with its peer at the same output mode and the same thread count: the
    NumPy formula always runs on one thread; PyTorch at the threads the implementation used.
    """
    formula = {(r.case.key, r.op, r.mode): r.seconds for r in results if r.impl.key == "formula"}
    torch = {
        (r.case.key, r.op, r.mode, r.threads): r.seconds for r in results if r.impl.key == "torch"
    }
    for r in results:
        gbps = None
        if r.seconds:
            gbps = arrays_moved(r.op) * r.case.array_bytes / r.seconds / 1e9
        peak = bandwidth.gbps(r.case.key, r.threads)
        r.derived = {
            "vs_numpy_formula": _ratio(formula.get((r.case.key, r.op, r.mode)), r.seconds),
            "vs_pytorch": _ratio(torch.get((r.case.key, r.op, r.mode, r.threads)), r.seconds),
            "gbps": gbps,
            "bandwidth_gbps": peak,
            "pct_of_bandwidth": 100 * gbps / peak if gbps and peak else None,
        }


# ----------------------------------------------------------------- terminal table


def format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def _fmt(value: float | None, spec: str, suffix: str = "") -> str:
    if value is None:
        return "—"
    if math.isnan(value):
        return "NaN"
    return f"{value:{spec}}{suffix}"


# (heading, narrowest width, alignment): a column widens to its longest cell, so the widths
# below only keep the blocks of one run alike where nothing is longer.
_COLUMNS = (
    ("op", 20, "<"),
    ("thr", 5, "<"),
    ("output", 6, "<"),
    ("implementation", 26, "<"),
    ("median", 9, ">"),
    ("IQR", 5, ">"),
    ("×NumPy", 8, ">"),
    ("×torch", 7, ">"),
    ("GB/s", 6, ">"),
    ("%bw", 5, ">"),
    ("max rel err", 11, ">"),
)


def aligned(rows: list[list[str]], columns: list[tuple[int, str]], gap: str = "  ") -> list[str]:
    """The rows as lines whose columns line up: each as wide as its widest cell (at least its
    given width), aligned ``"<"`` or ``">"``."""
    widths = [max([least] + [len(row[i]) for row in rows]) for i, (least, _) in enumerate(columns)]
    return [
        gap.join(
            f"{cell:{align}{width}}"
            for cell, width, (_, align) in zip(row, widths, columns, strict=True)
        )
        for row in rows
    ]


def _table(rows: list[list[str]], hidden: frozenset[str]) -> list[str]:
    keep = [i for i, (name, _, _) in enumerate(_COLUMNS) if name not in hidden]
    shown = [[row[i] for i in keep] for row in rows]
    return [line.rstrip() for line in aligned(shown, [_COLUMNS[i][1:] for i in keep])]


def _row_cells(r: Result, first_of_op: bool) -> list[str]:
    d = r.derived
    large = is_large(r.case, r.op)
    spread = r.timing.spread * 100 if r.timing and len(r.timing.samples) > 1 else None
    if r.implausible:
        median, spread_cell = "busy*", ""
    else:
        median = format_seconds(r.seconds) if r.timing else "failed"
        spread_cell = _fmt(spread, ".0f", "%") if spread is not None else "n=1"
    return [
        r.op if first_of_op else "",
        r.threads_label,
        MODE_LABELS[r.mode],
        r.impl.label,
        median,
        spread_cell,
        _fmt(d.get("vs_numpy_formula"), ".2f", "×"),
        _fmt(d.get("vs_pytorch"), ".2f", "×"),
        _fmt(d.get("gbps"), ".1f") if large else "",
        _fmt(d.get("pct_of_bandwidth"), ".0f", "%") if large else "",
        _fmt(r.error, ".1e"),
    ]


def case_block(case: Case, results: list[Result], with_torch: bool, note: str = "") -> str:
    """The table rows of one case, grouped by op, with the notes of any failed run after them.

    ``with_torch``: whether to show the column of speedups over PyTorch (not when it is absent).
    """
    hidden = frozenset() if with_torch else frozenset({"×torch"})
    rows, failures, previous_op = [[c[0] for c in _COLUMNS]], [], None
    for r in results:
        if r.op != previous_op and previous_op is not None:
            rows.append([""] * len(_COLUMNS))  # a blank line between ops
        rows.append(_row_cells(r, r.op != previous_op))
        previous_op = r.op
        where = f"{r.impl.label} {r.op} {r.threads_label}T {MODE_LABELS[r.mode]}"
        if r.note:
            failures.append(f"   {where}: {r.note}")
        if r.implausible:
            failures.append(f"   * {where}: {r.implausible}")
    head = [f"\n== {case.label}: {case.describe()}"] + ([note] if note else [])
    return "\n".join(head + _table(rows, hidden) + failures)


LEGEND = """\
Columns:
  median       time per call, median of the samples taken after warm-up
  IQR          interquartile range of the samples, as a % of the median
  ×NumPy       speedup over the plain NumPy formula (one thread), same output mode; >1 = faster
  ×torch       speedup over PyTorch at the same output mode and thread count
  GB/s, %bw    arrays one call must move (forward: read x + write out; backwards and jvp: 2
               reads + 1 write) per second, and that as a % of the triad measured just before the
               case at the same thread count; shown where the arrays exceed 64 MiB (uncached)
  max rel err  max |out - ref| / scale over all elements, ref computed in float64; scale = |ref|
               for softmax; max(|ref|, 1) for log_softmax (an absolute error in log p is the
               relative error of p); for gradients the size of the terms that cancel,
               y (|g| + sum y|g|), or |g| + exp(y) sum|g| from log_softmax's output, so an
               output ~0 by cancellation cannot blow it up
  output       "fresh" allocates the result on every call; "out=" writes into one array
               allocated beforehand
  thr          threads the implementation used; single-threaded ones ("1") are measured once
               per case
  busy*        more than 10x slower on several threads than on one, measured twice: another
               process held a core; not a result (explained under the case's table)"""


# ----------------------------------------------------------------- run header and footer


def rates_text(rates: dict[int, dict[str, float]]) -> str:
    return ", ".join(f"{t} thread(s) {r['gbps_median']:.1f} GB/s" for t, r in rates.items())


def header(meta: dict[str, object], skipped: dict[str, str], notes: list[str]) -> str:
    """What the run measures on: machine, versions, bandwidth, what is left out, the legend."""
    machine, config = meta["machine"], meta["fastsoftmax_config"]
    bw = meta["bandwidth"]
    lines = [
        f"fastsoftmax bench, {meta['date']}",
        f"CPU: {machine['cpu_model']} ({machine['cores_usable']} usable cores; SIMD flags: "
        f"{' '.join(machine['cpu_simd_flags']) or 'unknown'})",
        f"fastsoftmax {config.get('fastsoftmax')}, SIMD level: "
        f"{config.get('simd level', 'n/a (C++ backend not available)')}; versions: "
        + ", ".join(f"{k} {v}" for k, v in meta["versions"].items() if v and "(" not in k),
        f"Memory bandwidth ({bw['method']}, {bw['array_mib']} MiB arrays): "
        + rates_text(bw["measurements"]["start"])
        + "; measured again before each out-of-cache case and at the end",
        f"Thread settings: {meta['thread_settings']} (fastsoftmax and PyTorch set alike)",
    ]
    load = machine["load_average_at_start"]
    if load and load[0] > 0.5:
        lines.append(f"Load average before the run: {load[0]:.1f} (other work on this machine)")
    lines += [f"Not run: {name}: {reason}" for name, reason in skipped.items()]
    lines += [f"Note: {note}" for note in notes]
    return "\n".join(lines) + "\n\n" + LEGEND


def bandwidth_drift(log: BandwidthLog) -> str:
    """How much the measured bandwidth moved during the run: a change means a noisy machine."""
    ranges = log.ranges()
    text = "\nMemory bandwidth at the end of the run: " + rates_text(log.taken["end"])
    text += "; lowest-highest over the run: " + ", ".join(
        f"{t} thread(s) {low:.1f}-{high:.1f} GB/s" for t, (low, high) in ranges.items()
    )
    if any(high > 1.1 * low for low, high in ranges.values()):
        text += "\nWARNING: the bandwidth changed by more than 10% during the run: other load on"
        text += " this machine makes the figures above noisy."
    return text


# ----------------------------------------------------------------- summary (README-ready)


def runs_at(r: Result, threads: int) -> bool:
    """Whether ``r`` belongs in a view at ``threads`` threads (single-threaded runs: in all)."""
    return r.impl.threads == "one" or r.threads == threads


def _pick(results, case, op, mode, impl_key, threads):
    for r in results:
        if (r.case, r.op, r.mode, r.impl.key) == (case, op, mode, impl_key) and runs_at(r, threads):
            return r
    return None


def _summary_columns(results: list[Result]) -> list[tuple[str, Callable]]:
    """``(heading, cell(out_result, fresh_result))`` for the figures this run has."""
    columns = [
        ("out=", lambda out, fresh: _time_cell(out)),
        ("×NumPy", lambda out, fresh: _fmt(_get(out, "vs_numpy_formula"), ".1f", "×")),
    ]
    if any(r.impl.key == "torch" for r in results):
        columns += [
            ("×torch out=", lambda out, fresh: _fmt(_get(out, "vs_pytorch"), ".2f", "×")),
            ("×torch fresh", lambda out, fresh: _fmt(_get(fresh, "vs_pytorch"), ".2f", "×")),
        ]
    if any(is_large(r.case, r.op) for r in results):
        columns.append(("%bw", lambda out, fresh: _fmt(_get(out, "pct_of_bandwidth"), ".0f", "%")))
    return columns


def _time_cell(r: Result | None) -> str:
    if r is None:
        return "—"
    return "busy*" if r.implausible else format_seconds(r.seconds)


def _get(r: Result | None, key: str) -> float | None:
    return r.derived.get(key) if r else None


def summary_table(results: list[Result], impl_key: str, settings: list[int]) -> str:
    """A Markdown table, one row per case and op: ``impl_key`` against the baselines, its
    columns aligned so it reads as well in a terminal as rendered."""
    columns = _summary_columns(results)
    head = ["shape", "op"] + [f"{t}T {name}" for t in settings for name, _ in columns]
    rows = [head]
    for case, op in dict.fromkeys((r.case, r.op) for r in results):
        cells = [case.label, op]
        for t in settings:
            out = _pick(results, case, op, "out", impl_key, t)
            fresh = _pick(results, case, op, "fresh", impl_key, t)
            cells += [
                cell(out, fresh) if name != "%bw" or is_large(case, op) else ""
                for name, cell in columns
            ]
        rows.append(cells)
    rows.insert(1, ["-" * 3] * len(head))  # widened to the column by `aligned`
    layout = [(3, "<"), (3, "<")] + [(3, ">")] * (len(head) - 2)
    lines = aligned(rows, layout, gap=" | ")
    rule = lines[1].replace(" ", "-")
    return "\n".join(f"| {line} |" if n != 1 else f"|-{rule}-|" for n, line in enumerate(lines))


# ----------------------------------------------------------------- JSON


def result_record(r: Result) -> dict[str, object]:
    return {
        "shape_key": r.case.key,
        "shape_label": r.case.label,
        "shape": list(r.case.shape),
        "dtype": r.case.dtype.__name__,
        "axis": r.case.axis,
        "op": r.op,
        "implementation": r.impl.key,
        "implementation_label": r.impl.label,
        "thread_setting": r.setting,
        "threads_used": r.threads,
        "threads_kind": r.impl.threads,
        "output": r.mode,
        "bytes_per_call": arrays_moved(r.op) * r.case.array_bytes,
        "out_of_cache": is_large(r.case, r.op),
        "timing": r.timing.as_dict() if r.timing else None,
        # A NaN result must show as such, not as a missing figure.
        "max_rel_error": "NaN" if r.error is not None and math.isnan(r.error) else r.error,
        "note": r.note or None,
        # Timed, but not a result: see the Note on implausible thread scaling.
        "implausible": r.implausible or None,
        "wall_s": r.wall_s,
        **r.derived,
    }


def _clean(value):
    """JSON has no NaN or infinity: write them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def write_json(path: str, meta: dict[str, object], results: list[Result]) -> None:
    document = {**meta, "results": [result_record(r) for r in results]}
    with open(path, "w", encoding="utf-8") as f:
        json.dump(_clean(document), f, indent=1, default=str)
        f.write("\n")
