"""The chart behind --plot: speedups as annotated heatmaps, and GB/s against the measured bandwidth.

Top: how many times faster fastsoftmax is than the NumPy formula and than PyTorch, per shape
and op, at one thread and at all threads, both writing into a preallocated output (the fair
comparison at 256 MiB). Bottom: the out-of-cache cases in GB/s, with the triad drawn across.
"""

from __future__ import annotations

import math

import numpy as np
from report import Result, runs_at
from suite import OPS, is_large


def _short(op: str) -> str:
    """Op names short enough to sit side by side under a bar or over a heatmap column."""
    return op.replace("softmax_", "")


def _grid(results, impl_key, threads, mode, metric):
    """``(case labels, ops, matrix)`` of ``metric`` for ``impl_key``; NaN where not measured."""
    cases, ops = [], [op for op in OPS if any(r.op == op for r in results)]
    for r in results:
        if r.case not in cases:
            cases.append(r.case)
    matrix = np.full((len(cases), len(ops)), np.nan)
    for r in results:
        if (r.impl.key, r.mode) == (impl_key, mode) and runs_at(r, threads) and r.op in ops:
            value = r.derived.get(metric)
            if value:
                matrix[cases.index(r.case), ops.index(r.op)] = value
    labels = [f"{c.label}\n{c.shape} {np.dtype(c.dtype).name}" for c in cases]
    return labels, ops, matrix


# Colours saturate at 8× faster or slower: beyond that the printed number says enough, and one
# outlier must not wash out the differences between the other cells.
_MAX_LOG2 = 3.0


def _colour_limit(matrices) -> float:
    """One log2 colour range for panels side by side, so equal colours mean equal speedups."""
    logs = [np.abs(np.log2(m)) for m in matrices if not np.isnan(m).all()]
    return min(_MAX_LOG2, max([1.0] + [float(np.nanmax(m)) for m in logs]))


def _heatmap(ax, labels, ops, matrix, title, missing_text, limit):
    ax.set_title(title, fontsize=11, fontweight="bold")
    if np.isnan(matrix).all():
        ax.text(0.5, 0.5, missing_text, ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return
    logs = np.log2(matrix)
    ax.set_facecolor("#dddddd")  # cells never measured
    ax.imshow(np.ma.masked_invalid(logs), cmap="RdYlGn", vmin=-limit, vmax=limit, aspect="auto")
    for (i, j), value in np.ndenumerate(matrix):
        if not math.isnan(value):
            text = f"{value:.2f}×" if value < 10 else f"{value:.0f}×"
            ax.text(j, i, text, ha="center", va="center", fontsize=10, fontweight="bold")
    ax.set_xticks(range(len(ops)), [_short(op) for op in ops], fontsize=10)
    ax.xaxis.tick_top()
    ax.set_yticks(range(len(labels)), labels, fontsize=9)


def _large_groups(results) -> list[tuple]:
    groups = []
    for r in results:
        if is_large(r.case, r.op) and (r.case, r.op) not in groups:
            groups.append((r.case, r.op))
    return groups


def _bandwidth_bars(ax, results, groups, impl_keys, threads, bandwidth_log):
    title = f"Out-of-cache cases, out=, {threads} thread(s): GB/s against the measured bandwidth"
    ax.set_title(title, fontsize=12, fontweight="bold")
    width = 0.8 / len(impl_keys)
    for k, (key, label) in enumerate(impl_keys):
        heights = []
        for case, op in groups:
            match = [
                r
                for r in results
                if (r.case, r.op, r.mode, r.impl.key) == (case, op, "out", key)
                and runs_at(r, threads)
            ]
            gbps = match[0].derived.get("gbps") if match else None
            heights.append(gbps or 0.0)
        offset = (k - (len(impl_keys) - 1) / 2) * width
        bars = ax.bar(np.arange(len(groups)) + offset, heights, width, label=label)
        ax.bar_label(bars, fmt="%.0f", fontsize=8)
    _bandwidth_lines(ax, groups, threads, bandwidth_log)
    top = max(bar.get_height() for bar in ax.patches)
    top = max([top] + [line.get_ydata()[0] for line in ax.lines])
    ax.set_ylim(0, 1.15 * top)  # room for the bar labels
    ax.set_xticks(range(len(groups)), [_short(op) for _, op in groups], fontsize=8)
    for start, case in _case_spans(groups):
        middle = start + (sum(1 for c, _ in groups if c == case) - 1) / 2
        below_ticks = ax.get_xaxis_transform()  # x in data, y in axes units
        ax.text(
            middle,
            -0.16,
            case.label,
            transform=below_ticks,
            ha="center",
            va="top",
            fontsize=10,
            fontweight="bold",
        )
        if start:
            ax.axvline(start - 0.5, color="grey", linewidth=0.8)
    ax.set_ylabel("GB/s (arrays moved / time)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=9)


def _case_spans(groups) -> list[tuple[int, object]]:
    """``(index of the case's first group, case)`` for each case, in order."""
    spans = []
    for index, (case, _) in enumerate(groups):
        if not spans or spans[-1][1] != case:
            spans.append((index, case))
    return spans


def _bandwidth_lines(ax, groups, threads, bandwidth_log):
    """The triad measured just before each case, drawn across that case's bars."""
    for n, (start, case) in enumerate(_case_spans(groups)):
        gbps = bandwidth_log.gbps(case.key, threads)
        if gbps:
            count = sum(1 for c, _ in groups if c == case)
            label = "memory bandwidth (triad, just before the case)" if n == 0 else None
            ax.plot([start - 0.45, start + count - 0.55], [gbps, gbps], "k--", label=label)


def draw(
    path: str,
    results: list[Result],
    bandwidth_log,
    headline: tuple[str, str],
    settings: list[int],
    title: str,
) -> None:
    """Write the chart to ``path``; ``headline`` is the fastsoftmax backend shown, (key, label)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    key, label = headline
    columns = [settings[0], settings[-1]] if len(settings) > 1 else settings
    groups = _large_groups(results)
    n_cases = len({r.case for r in results})
    heat_height = 1.2 + 0.75 * n_cases
    heights = [heat_height, heat_height] + ([4.0] * len(columns) if groups else [])
    fig = plt.figure(figsize=(8.5 * len(columns), sum(heights) + 1.0), layout="constrained")
    fig.get_layout_engine().set(h_pad=0.2, hspace=0.05, wspace=0.08)
    grid = fig.add_gridspec(len(heights), len(columns), height_ratios=heights)
    panels = (
        ("vs_numpy_formula", "NumPy formula (1 thread)", "NumPy formula not run"),
        ("vs_pytorch", "PyTorch (same threads)", "PyTorch not run (not installed/selected)"),
    )
    for row, (metric, versus, missing) in enumerate(panels):
        grids = [_grid(results, key, threads, "out", metric) for threads in columns]
        limit = _colour_limit([matrix for _, _, matrix in grids])
        for col, (threads, (labels, ops, matrix)) in enumerate(zip(columns, grids, strict=True)):
            heading = f"{label} vs {versus}\n{threads} thread(s), out=; × faster (>1 is better)"
            ax = fig.add_subplot(grid[row, col])
            _heatmap(ax, labels, ops, matrix, heading, missing, limit)
    bars = [(key, label), ("torch", "PyTorch"), ("formula", "NumPy formula (1 thread)")]
    bars = [b for b in bars if any(r.impl.key == b[0] for r in results)]
    if groups:
        for row, threads in enumerate(columns):
            ax = fig.add_subplot(grid[2 + row, :])
            _bandwidth_bars(ax, results, groups, bars, threads, bandwidth_log)
    fig.suptitle(title, fontsize=14)
    fig.savefig(path, dpi=80, bbox_inches="tight")
    plt.close(fig)
