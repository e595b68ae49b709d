"""Benchmark fastsoftmax against the NumPy formula, the explicit Jacobian, PyTorch and JAX.

    python bench/bench.py                 # the headline comparison, ~2 minutes on 2 cores
    python bench/bench.py --out results/  # the same, and its table, JSON and chart saved there
    python bench/bench.py --full          # the whole matrix, ~15-25 minutes, 3.5 GB
    python bench/bench.py --quick         # a small subset in seconds (CI runs this)
    python bench/bench.py --json r.json --plot r.png --shapes cache,attention --threads 1

The default run times every op at five representative shapes with the backend
``backend=None`` picks, against the NumPy formula, the explicit Jacobian (where N <= 1024),
PyTorch and JAX (when installed), at 1 thread and all cores, fresh output and out=. ``--full``
adds the other backends and the large and unusual shapes. For every selected shape, op, thread
count and output mode each implementation is warmed up, timed until its time budget is spent,
and checked against a float64 reference. The machine's memory bandwidth is measured in the
same run (at the start, before each out-of-cache case and at the end), so out-of-cache cases
can be reported as a fraction of it. The run says how long it expects to take before it
starts; a progress bar goes to stderr, the tables to stdout.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import os
import resource
import sys
import time
from dataclasses import dataclass
from itertools import groupby

import bandwidth
import estimate
import impls
import machine
import numpy as np
import report
import suite
import timer

try:
    import fastsoftmax as fsm
    from fastsoftmax import _config
except ImportError as err:  # pragma: no cover - the message is the point
    sys.exit(f"bench.py needs fastsoftmax importable ({err}); run `pip install '.[bench]'` first")

IMPL_KEYS = ("cpp", "numba", "numpy", "formula", "jacobian", "torch", "jax")
# The default run's implementations besides the default backend: the headline comparison.
HEADLINE_IMPLS = ("formula", "jacobian", "torch", "jax")
# Seconds of timing per measurement and the fewest samples, by run.
BUDGETS = {"default": (0.15, 5), "full": (0.5, 5), "quick": (0.02, 3)}
# Pause before each measurement so the previous runtime's spinning worker threads (OpenMP,
# Numba, XLA) go to sleep instead of competing with the next one on a 2-core machine.
_SETTLE_S = 0.005


@dataclass(frozen=True)
class Task:
    case: suite.Case
    op: str
    setting: int
    mode: str
    impl: impls.Impl


def _all_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not every platform has affinity
        return os.cpu_count() or 1


def _choices(text: str | None, allowed, what: str) -> list[str] | None:
    if text is None:
        return None
    picked = [item.strip() for item in text.split(",") if item.strip()]
    unknown = [item for item in picked if item not in allowed]
    if unknown:
        sys.exit(f"unknown {what} {', '.join(unknown)}; choose from {', '.join(allowed)}")
    return picked


def _thread_settings(text: str | None) -> list[int]:
    cores = _all_cores()
    if text is None:
        return sorted({1, cores})
    settings = set()
    for item in text.split(","):
        item = item.strip()
        if item == "all":
            settings.add(cores)
        elif item.isdigit() and int(item) > 0:
            settings.add(int(item))
        else:
            sys.exit(f"--threads takes positive integers or 'all', comma-separated; got {item!r}")
    return sorted(settings)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    shapes = ", ".join(f"{c.key} {c.shape}" for c in suite.SUITE)
    runs = parser.add_mutually_exclusive_group()
    runs.add_argument(
        "--full",
        action="store_true",
        help="every shape and backend with longer budgets (~15-25 minutes, ~3.5 GB)",
    )
    runs.add_argument("--quick", action="store_true", help="a small subset with short budgets")
    parser.add_argument("--shapes", help=f"comma-separated, from: {shapes}")
    parser.add_argument("--ops", help=f"comma-separated, from: {', '.join(suite.OPS)}")
    parser.add_argument("--threads", help="comma-separated counts or 'all' (default: 1,all)")
    parser.add_argument(
        "--backends",
        help="implementations, comma-separated, from: cpp, numba, numpy (fastsoftmax's "
        "backends), formula (NumPy formula), jacobian (explicit Jacobian), torch, jax "
        "(default: the default backend and the last four; --full and --quick: every one)",
    )
    parser.add_argument("--modes", help="output modes, comma-separated: fresh, out (default: both)")
    parser.add_argument("--budget", type=float, help="seconds of timing per measurement")
    parser.add_argument(
        "--out",
        metavar="DIR",
        help="write the tables (bench-DATE.txt), every figure (.json) and the chart (.png) here",
    )
    parser.add_argument("--table", metavar="PATH", help="write the tables as printed here")
    parser.add_argument("--json", metavar="PATH", help="write every figure and the machine here")
    parser.add_argument("--plot", metavar="PATH.png", help="draw the summary chart here")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random inputs")
    return parser.parse_args(argv)


# ----------------------------------------------------------------- what to run


def run_kind(args: argparse.Namespace) -> str:
    return "full" if args.full else "quick" if args.quick else "default"


def collect_impls(
    selected: list[str] | None, headline_only: bool
) -> tuple[list[impls.Impl], dict[str, str], object]:
    """``(implementations to run, {name: why it is left out}, torch module or None)``.

    ``headline_only`` (the default run, nothing selected): the default backend and the peers.
    """
    fsm_impls, skipped = impls.fastsoftmax_impls()
    available = [*fsm_impls, *impls.numpy_impls(full=not headline_only)]
    torch_impl, reason, torch = impls.torch_impl()
    if torch_impl:
        available.append(torch_impl)
    else:
        skipped["torch"] = reason
    jax_impl, reason = impls.jax_impl()
    if jax_impl:
        available.append(jax_impl)
    else:
        skipped["jax"] = reason
    if selected is None and headline_only:
        selected = [headline_impl(fsm_impls)[0]] if fsm_impls else []
        selected += HEADLINE_IMPLS
        skipped = {k: v for k, v in skipped.items() if k in selected}
    if selected is None:
        return available, skipped, torch
    chosen = [i for i in available if i.key in selected]
    skipped = {k: v for k, v in skipped.items() if k in selected}
    return chosen, skipped, torch if "torch" in selected else None


def build_plan(cases, ops, settings, modes, implementations) -> list[Task]:
    """Every measurement, grouped by case then op so each case's inputs are made once.

    Single-threaded implementations run once per case, at the first thread setting; JAX, whose
    threads we cannot set, once at the last.
    """
    plan = []
    for case in cases:
        for op in ops:
            for index, setting in enumerate(settings):
                for mode in modes:
                    for impl in implementations:
                        if op not in impl.ops or impl.skip(case):
                            continue
                        if mode == "out" and not impl.has_out:
                            continue
                        if impl.threads == "one" and index != 0:
                            continue
                        if impl.threads == "own" and index != len(settings) - 1:
                            continue
                        plan.append(Task(case, op, setting, mode, impl))
    return plan


def skip_notes(cases, implementations) -> list[str]:
    """One line per implementation and reason it is left out of some cases, naming them."""
    notes = []
    for impl in implementations:
        by_reason: dict[str, list[str]] = {}
        for case in cases:
            if impl.skip(case):
                by_reason.setdefault(impl.skip(case), []).append(f"{case.label} (N={case.length})")
        notes += [f"{impl.label}: {why}: {', '.join(names)}" for why, names in by_reason.items()]
    return notes


# ----------------------------------------------------------------- running


def set_threads(count: int, torch) -> None:
    """The same thread count for fastsoftmax and PyTorch, so each comparison is like for like."""
    fsm.set_num_threads(count)
    if torch is not None:
        torch.set_num_threads(count)


def threads_used(task: Task, cores: int) -> int:
    if task.impl.threads == "one":
        return 1
    return cores if task.impl.threads == "own" else task.setting


def run_task(task: Task, inputs, ref, budget: tuple[float, int], cores: int) -> report.Result:
    result = report.Result(
        task.case, task.op, task.setting, threads_used(task, cores), task.mode, task.impl
    )
    started = time.perf_counter()
    out = np.empty_like(inputs[0]) if task.mode == "out" else None
    try:
        call = task.impl.build(task.case, task.op, inputs, out)
        time.sleep(_SETTLE_S)
        result.timing, output = timer.measure(call, *budget, jit=task.impl.jit)
        result.error = suite.max_relative_error(task.op, output, ref, task.case.axis)
    except Exception as err:  # one broken implementation must not end the run
        result.note = f"failed: {type(err).__name__}: {err}"
    result.wall_s = time.perf_counter() - started
    return result


class _NoBar:
    """Stands in for tqdm when it is not installed."""

    def set_description(self, text: str) -> None:
        pass

    def update(self) -> None:
        pass

    def write(self, text: str, file) -> None:
        print(text, file=file, flush=True)

    def close(self) -> None:
        pass


def _progress(total: int):
    try:
        from tqdm import tqdm
    except ImportError:
        return _NoBar()
    return tqdm(total=total, file=sys.stderr, unit="run", dynamic_ncols=True, leave=False)


class Transcript:
    """What the run prints on stdout, also written to the --table file as it goes (so an
    interrupted run keeps what it measured)."""

    def __init__(self, path: str | None) -> None:
        self.bar = _NoBar()
        self.path = path
        self.file = open(path, "w", encoding="utf-8") if path else None  # noqa: SIM115

    def print(self, text: str = "") -> None:
        self.bar.write(text, file=sys.stdout)  # above the progress bar, without tearing it
        if self.file:
            self.file.write(text + "\n")
            self.file.flush()

    def close(self) -> None:
        if self.file:
            self.file.close()


def recheck_scaling(results, tasks, inputs, ref, budget, cores, torch) -> None:
    """Measure once more each result whose thread scaling is implausible, and mark the ones
    that still are (report.py's Note on implausible thread scaling)."""
    for index in report.implausible_scaling(results):
        time.sleep(0.2)  # give the other load a moment to pass
        set_threads(tasks[index].setting, torch)
        results[index] = run_task(tasks[index], inputs, ref, budget, cores)
    for index, why in report.implausible_scaling(results).items():
        results[index].implausible = why


def run_plan(plan, budget, cores, torch, bandwidth_log, out: Transcript, seed):
    """Measure every task, printing each case's table block when the case is done."""
    results: list[report.Result] = []
    bar = out.bar
    for case, group in groupby(plan, key=lambda t: t.case):
        case_tasks, note = list(group), ""
        if any(suite.is_large(case, task.op) for task in case_tasks):
            # Compared with the bandwidth of this moment: other load on the machine moves it.
            measure_triad(bandwidth_log, f"before {case.key}", bar)
            note = "memory bandwidth just before: " + report.rates_text(
                bandwidth_log.rates_for(case.key)
            )
        data = suite.CaseData(case, seed)
        case_results = []
        for op, op_group in groupby(case_tasks, key=lambda t: t.op):
            op_tasks = list(op_group)
            inputs = data.inputs(op)
            bar.set_description(f"{case.key} {op} (reference)")
            ref = suite.reference(op, inputs, case.axis)
            op_results = []
            for task in op_tasks:
                bar.set_description(f"{case.key} {op} {task.setting}T {task.mode} {task.impl.key}")
                set_threads(task.setting, torch)
                op_results.append(run_task(task, inputs, ref, budget, cores))
                bar.update()
            recheck_scaling(op_results, op_tasks, inputs, ref, budget, cores, torch)
            case_results += op_results
            del ref, inputs
            gc.collect()
        del data
        gc.collect()  # the next case may need several GiB: free this one's arrays first
        report.derive(case_results, bandwidth_log)
        out.print(report.case_block(case, case_results, torch is not None, note))
        results += case_results
    return results


# ----------------------------------------------------------------- main


def measure_triad(log: bandwidth.BandwidthLog, when: str, bar) -> None:
    bar.set_description(f"memory bandwidth ({when})")
    log.measure(when)
    bar.update()


def headline_impl(implementations) -> tuple[str, str] | None:
    """The fastsoftmax backend the summary and plot show: the one ``backend=None`` picks, else
    the first of the others run."""
    from fastsoftmax import _backends

    for key in (_backends.default_backend(), *_backends.BACKENDS):
        for impl in implementations:
            if impl.key == key:
                return impl.key, impl.label
    return None


@dataclass
class Selection:
    """What the command line asked for."""

    cases: list[suite.Case]
    ops: list[str]
    settings: list[int]
    modes: list[str]
    budget: tuple[float, int]
    implementations: list[impls.Impl]
    skipped: dict[str, str]
    torch: object


_CASES_BY_KIND = {
    "default": suite.DEFAULT_CASES,
    "full": suite.FULL_CASES,
    "quick": suite.QUICK_CASES,
}


def select(args: argparse.Namespace) -> Selection:
    kind = run_kind(args)
    keys = _choices(args.shapes, list(suite.CASES), "shape") or list(_CASES_BY_KIND[kind])
    budget = BUDGETS[kind]
    if args.budget is not None:
        budget = (args.budget, budget[1])
    implementations, skipped, torch = collect_impls(
        _choices(args.backends, IMPL_KEYS, "backend"), headline_only=kind == "default"
    )
    if not implementations:
        sys.exit("no implementation selected is available here")
    return Selection(
        cases=[suite.CASES[k] for k in keys],
        ops=[op for op in suite.OPS if op in (_choices(args.ops, suite.OPS, "op") or suite.OPS)],
        settings=_thread_settings(args.threads),
        modes=_choices(args.modes, report.MODES, "mode") or list(report.MODES),
        budget=budget,
        implementations=implementations,
        skipped=skipped,
        torch=torch,
    )


def run_notes(sel: Selection) -> list[str]:
    notes = skip_notes(sel.cases, sel.implementations)
    keys = {i.key for i in sel.implementations}
    if "jax" in keys:
        notes.append(impls.JAX_THREADS_NOTE)
    if "jacobian" in keys:
        notes.append("explicit Jacobian: fresh output only (its N×N matrices dwarf the output)")
    return notes


def run_meta(args, sel: Selection, facts, bandwidth_log, notes) -> dict[str, object]:
    """Everything the JSON records besides the results."""
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": sys.argv,
        "run": run_kind(args),
        "seed": args.seed,
        "machine": facts,
        "fastsoftmax_config": _config.config(),
        "versions": machine.versions(fsm),
        "thread_settings": sel.settings,
        "jax_threads": impls.JAX_THREADS_NOTE if "jax" not in sel.skipped else None,
        "budget": {"seconds_per_measurement": sel.budget[0], "min_samples": sel.budget[1]},
        "bandwidth": bandwidth_log.as_dict(),  # shares the log's dict: later measurements show
        "not_run": sel.skipped,
        "notes": notes,
    }


def output_paths(args: argparse.Namespace, date: str) -> None:
    """--out DIR: the table, JSON and chart files there, unless a path of their own is given."""
    if not args.out:
        return
    os.makedirs(args.out, exist_ok=True)
    stem = os.path.join(args.out, "bench-" + date.replace(":", "")[:15])
    args.table = args.table or stem + ".txt"
    args.json = args.json or stem + ".json"
    args.plot = args.plot or stem + ".png"


def announce(args, sel: Selection, plan, bandwidth_log, large_cases) -> float:
    """Say what will run, how long it should take and where it will write, before it starts."""
    triads = 2 + len(large_cases)
    guess = estimate.run_seconds(plan, sel.budget, triads, bandwidth_log.seconds_estimate())
    names = ", ".join(impl.label for impl in sel.implementations)
    print(
        f"fastsoftmax bench ({run_kind(args)} run): {len(plan)} measurements of "
        f"{len(sel.cases)} shapes x {len(sel.ops)} ops, threads {sel.settings}, with {names}; "
        f"expected to take {estimate.describe(guess)} on this machine.",
        flush=True,
    )
    files = [
        (what, path)
        for what, path in (("tables", args.table), ("JSON", args.json), ("chart", args.plot))
        if path
    ]
    if files:
        print("Will write " + ", ".join(f"the {w} to {p}" for w, p in files) + ".", flush=True)
    else:
        print("Tables go to stdout only (--out DIR saves the tables, JSON and chart).", flush=True)
    return guess


def finish(args, sel: Selection, meta, results, bandwidth_log, out: Transcript, times) -> None:
    """The summary, the run's cost, and the JSON and plot files asked for."""
    started, guess = times
    headline = headline_impl(sel.implementations)
    if headline:
        out.print(f"\nSummary: {headline[1]} (all figures from this run)\n")
        out.print(report.summary_table(results, headline[0], sel.settings))
    elapsed = time.perf_counter() - started
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out.print(
        f"\nTotal time {elapsed:.0f} s (expected {guess:.0f} s), peak memory {peak_mib:.0f} MiB"
    )
    meta.update(elapsed_s=elapsed, expected_s=guess, peak_rss_mib=peak_mib)
    out.close()
    if args.table:
        print(f"wrote {args.table}")
    if args.json:
        report.write_json(args.json, meta, results)
        print(f"wrote {args.json}")
    if args.plot:
        if headline is None:
            print("no fastsoftmax backend was run: nothing to plot")
            return
        host, simd = meta["machine"], meta["fastsoftmax_config"].get("simd level", "n/a")
        title = (
            f"fastsoftmax bench {meta['date'][:10]}, {host['cpu_model']}, "
            f"{host['cores_usable']} cores, SIMD {simd}"
        )
        plot_chart(args.plot, results, bandwidth_log, headline, sel.settings, title)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    cores = _all_cores()
    facts = machine.machine_facts(cores)  # first: the load average must not include our work
    sel = select(args)
    plan = build_plan(sel.cases, sel.ops, sel.settings, sel.modes, sel.implementations)
    large_cases = {task.case for task in plan if suite.is_large(task.case, task.op)}
    bandwidth_log = bandwidth.BandwidthLog(
        [1, cores, *sel.settings],
        3 if args.quick else 10,
        bandwidth.ARRAY_BYTES if args.full else bandwidth.SMALL_ARRAY_BYTES,
    )
    output_paths(args, datetime.datetime.now().astimezone().isoformat(timespec="minutes"))
    guess = announce(args, sel, plan, bandwidth_log, large_cases)
    out = Transcript(args.table)
    out.bar = _progress(len(plan) + 2 + len(large_cases))
    measure_triad(bandwidth_log, "start", out.bar)
    notes = run_notes(sel)
    meta = run_meta(args, sel, facts, bandwidth_log, notes)
    out.print(report.header(meta, sel.skipped, notes))

    results = run_plan(plan, sel.budget, cores, sel.torch, bandwidth_log, out, args.seed)
    measure_triad(bandwidth_log, "end", out.bar)
    out.bar.close()
    out.bar = _NoBar()
    out.print(report.bandwidth_drift(bandwidth_log))
    finish(args, sel, meta, results, bandwidth_log, out, (started, guess))
    return 0


def plot_chart(path, results, bandwidth_log, headline, settings, title) -> None:
    import plot

    try:
        plot.draw(path, results, bandwidth_log, headline, settings, title)
    except ImportError as err:
        print(f"--plot needs matplotlib ({err}); install it with `pip install matplotlib`")
        return
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
