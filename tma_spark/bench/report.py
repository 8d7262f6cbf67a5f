"""Benchmark maths and report (pure: no Spark, no torch): time to target, aggregation over seeds,
speed-ups, the markdown table and the curves figure."""

from __future__ import annotations

import math
import statistics
from typing import Dict, List, Optional, Sequence

__all__ = ["time_to_target", "aggregate", "speedups", "target_checks", "render_markdown",
           "render_suite_markdown", "curves_figure", "BASELINES", "TMA_METHODS"]

BASELINES = ("central", "ddp", "psgd-pa", "llcg")
TMA_METHODS = ("random", "super")


def time_to_target(curve: Sequence[Sequence[float]], target: float) -> Optional[float]:
    """First wall time at which the validation metric reaches ``target`` (None if it never does).

    ``curve`` is a sequence of (wall_seconds, val) points in time order.
    """
    for wall, val in curve:
        if val is not None and val >= target:
            return float(wall)
    return None


def _mean_std(values: Sequence[float]) -> tuple:
    values = [v for v in values if v is not None and not math.isnan(v)]
    if not values:
        return None, None
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def aggregate(runs: Sequence[dict]) -> List[dict]:
    """One row per method from per-(method, seed) runs: test metric mean/std, time to target (mean over the
    seeds that reached it, and how many did), steps, rounds."""
    methods: Dict[str, List[dict]] = {}
    for run in runs:
        methods.setdefault(run["method"], []).append(run)
    rows = []
    for method, group in methods.items():
        test_mean, test_std = _mean_std([r["test"] for r in group])
        reached = [r["time_to_target"] for r in group if r["time_to_target"] is not None]
        ttt_mean, ttt_std = _mean_std(reached)
        rows.append({"method": method, "seeds": len(group), "test_mean": test_mean, "test_std": test_std,
                     "best_val_mean": _mean_std([r["best_val"] for r in group])[0],
                     "time_to_target_mean": ttt_mean if len(reached) == len(group) else None,
                     "time_to_target_std": ttt_std if len(reached) == len(group) else None,
                     "reached_target": len(reached), "steps_mean": _mean_std([r["total_steps"] for r in group])[0],
                     "rounds_mean": _mean_std([r["rounds"] for r in group])[0]})
    return rows


def speedups(rows: Sequence[dict]) -> dict:
    """Speed-up of each method's time to target against the fastest baseline that reached the target in every
    seed, and the headline: the best TMA method against that baseline."""
    reached = {r["method"]: r["time_to_target_mean"] for r in rows if r["time_to_target_mean"] is not None}
    baselines = {m: t for m, t in reached.items() if m in BASELINES}
    if not baselines:
        return {"fastest_baseline": None, "per_method": {}, "best_tma": None, "best_tma_speedup": None}
    fastest = min(baselines, key=baselines.get)
    per_method = {m: baselines[fastest] / max(t, 1e-9) for m, t in reached.items()}
    tma = {m: t for m, t in reached.items() if m in TMA_METHODS}
    best = min(tma, key=tma.get) if tma else None
    return {"fastest_baseline": fastest, "per_method": per_method, "best_tma": best,
            "best_tma_speedup": per_method.get(best) if best else None}


def _fmt(value, digits=4, scale=1.0) -> str:
    return "—" if value is None else f"{value * scale:.{digits}f}"


def _time_to_target(row: dict) -> str:
    if row["time_to_target_mean"] is None:
        return "—"
    return f"{row['time_to_target_mean']:.1f} ± {row['time_to_target_std']:.1f}"


def target_checks(rows: Sequence[dict], ups: dict, metric: str = "metric") -> List[str]:
    """The benchmark's targets, one plain sentence each ending in ``met`` or ``MISSED``: each TMA method's test
    metric at or above psgd-pa and llcg and within 0.5 points of central, and the best TMA method's
    time-to-target speed-up over the fastest baseline at least 2.31x (the paper's figure)."""
    lines = []
    by = {r["method"]: r for r in rows}
    for tma in [m for m in TMA_METHODS if m in by]:
        t = by[tma]["test_mean"]
        for base in [m for m in ("psgd-pa", "llcg") if m in by]:
            b = by[base]["test_mean"]
            ok = t is not None and b is not None and t >= b
            lines.append(f"{tma} test {metric} {_fmt(t)} {'≥' if ok else '<'} {base} {_fmt(b)}: "
                         f"{'met' if ok else 'MISSED'}")
        if "central" in by:
            c = by["central"]["test_mean"]
            ok = t is not None and c is not None and t >= c - 0.005
            lines.append(f"{tma} within 0.5 points of central ({_fmt(c)}): {'met' if ok else 'MISSED'} "
                         f"(gap {_fmt(None if t is None or c is None else (c - t), 2, 100)} points)")
    best = ups.get("best_tma_speedup")
    lines.append(f"best TMA method ({ups.get('best_tma') or 'none reached the target'}) time-to-target speed-up "
                 f"over the fastest baseline ({ups.get('fastest_baseline') or 'none reached the target'}): "
                 f"{'—' if best is None else f'{best:.3f}x'} (target ≥ 2.31x): "
                 f"{'met' if best is not None and best >= 2.31 else 'MISSED'}")
    return lines


def render_suite_markdown(results: Dict[str, dict]) -> str:
    """One table over the datasets of a suite (dataset name -> its ``results.json`` from
    :func:`tma_spark.bench.job.bench`): dataset, method, test metric, time to target, speed-up; then each
    dataset's targets, met or missed."""
    lines = ["# Benchmark suite: every dataset", "",
             "| dataset | metric | method | test (mean ± std) | time to target (s) | reached | speed-up vs "
             "fastest baseline | steps |", "|---|---|---|---|---|---|---|---|"]
    checks = []
    for name, res in results.items():
        meta, rows, ups = res["meta"], res["rows"], res["speedups"]
        metric = meta.get("metric", "metric")
        for r in rows:
            up = ups["per_method"].get(r["method"])
            speed = "—" if up is None else f"{up:.2f}x (vs {ups['fastest_baseline']})"
            lines.append(f"| {name} | {metric} | {r['method']} | {_fmt(r['test_mean'])} ± {_fmt(r['test_std'])} | "
                         f"{_time_to_target(r)} | {r['reached_target']}/{r['seeds']} | {speed} | "
                         f"{_fmt(r['steps_mean'], 0)} |")
        checks += ["", f"**{name}** ({meta.get('budget')} s per run, {meta.get('seeds')} seeds, K = "
                   f"{meta.get('parts')}, T = {meta.get('round_seconds')} s; `{meta.get('command', '')}`)", ""]
        checks += [f"- {c}" for c in target_checks(rows, ups, metric)]
    machines = sorted({res["meta"].get("machine", "") for res in results.values()})
    return "\n".join(lines + ["", "Machine: " + "; ".join(machines), "", "## Targets"] + checks) + "\n"


def render_markdown(rows: Sequence[dict], ups: dict, meta: dict) -> str:
    """The report: settings, the table (method, test metric mean ± std over seeds, time to target,
    speed-up against the fastest baseline) and the verdict on the targets, stated plainly."""
    metric = meta.get("metric", "metric")
    lines = [f"# Benchmark: {meta.get('dataset', meta.get('lake'))}", "",
             f"Command: `{meta.get('command', '')}`", "",
             f"Machine: {meta.get('machine', '')}", "",
             f"Settings: task {meta.get('task')}, model {meta.get('model')}, hidden {meta.get('hidden')}, "
             f"lr {meta.get('lr')}, K = {meta.get('parts')}, T = {meta.get('round_seconds')} s, budget "
             f"{meta.get('budget')} s of training per run, seeds {meta.get('seeds')}. Target: "
             f"{meta.get('target_fraction', 0.98):.0%} of the best validation {metric} central reaches "
             "(per seed). Time to target counts training time only (startup excluded).", "",
             f"| method | test {metric} (mean ± std) | best val | time to target (s) | reached | speed-up vs "
             f"{ups.get('fastest_baseline') or 'fastest baseline'} | steps | rounds |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        up = ups["per_method"].get(r["method"])
        lines.append(f"| {r['method']} | {_fmt(r['test_mean'])} ± {_fmt(r['test_std'])} | "
                     f"{_fmt(r['best_val_mean'])} | {_time_to_target(r)} | {r['reached_target']}/{r['seeds']} | "
                     f"{'—' if up is None else f'{up:.2f}x'} | {_fmt(r['steps_mean'], 0)} | "
                     f"{_fmt(r['rounds_mean'], 1)} |")
    lines += ["", "## Targets", ""] + [f"- {check}" for check in target_checks(rows, ups, metric)]
    return "\n".join(lines) + "\n"


def curves_figure(runs: Sequence[dict], metric: str = "accuracy", title: str = ""):
    """Validation metric against training wall time, one curve per method (mean over seeds on a common time
    grid), shaded between the seeds' minimum and maximum. A plain matplotlib Figure (no pyplot)."""
    import numpy as np
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 5))
    ax = fig.subplots()
    methods: Dict[str, List[dict]] = {}
    for run in runs:
        methods.setdefault(run["method"], []).append(run)
    for method, group in methods.items():
        curves = [np.array(r["curve"], dtype=float) for r in group if r["curve"]]
        if not curves:
            continue
        end = max(c[-1, 0] for c in curves)
        grid = np.linspace(min(c[0, 0] for c in curves), end, 200)
        # step interpolation: the metric of the latest evaluated model at each time (nan before the first)
        ys = np.array([np.where(grid >= c[0, 0], c[np.clip(np.searchsorted(c[:, 0], grid, "right") - 1, 0, None), 1],
                                np.nan) for c in curves])
        mean = np.nanmean(ys, axis=0)
        line, = ax.plot(grid, mean, label=f"{method} ({len(curves)} seeds)")
        ax.fill_between(grid, np.nanmin(ys, axis=0), np.nanmax(ys, axis=0), color=line.get_color(), alpha=0.2)
    ax.set_xlabel("training time (s)")
    ax.set_ylabel(f"validation {metric}")
    ax.set_title(title or "validation metric against wall time")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig
