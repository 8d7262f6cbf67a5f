"""Training curves of a run, as a plain matplotlib Figure (no pyplot: safe in jobs and in notebooks)."""

from __future__ import annotations

from typing import Sequence

__all__ = ["curves_figure"]


def curves_figure(rows: Sequence[dict], metric: str = "accuracy"):
    """Left: validation and test ``metric`` of the averaged model against training wall time (one point per
    round; rounds that lost a trainer are marked). Right: training steps per second of each trainer."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4))
    ax1, ax2 = fig.subplots(1, 2)
    wall = [r["wall_seconds"] for r in rows]
    for key, style in (("val", "o-"), ("test", "s--")):
        ax1.plot(wall, [r.get(key) for r in rows], style, ms=4, label=key)
    lost = [r for r in rows if r.get("lost_parts")]
    if lost:
        ax1.plot([r["wall_seconds"] for r in lost], [r.get("val") for r in lost], "rx", ms=9,
                 label="round with a lost trainer")
    ax1.set_xlabel("training time (s)")
    ax1.set_ylabel(metric)
    ax1.set_title(f"averaged model, {len(rows)} rounds")
    ax1.legend()
    k = max((len(r.get("steps", [])) for r in rows), default=0)
    for part in range(k):
        rates = [None if r["steps"][part] is None else r["steps"][part] / max(r["round_seconds"], 1e-9)
                 for r in rows]
        ax2.plot([r["round"] for r in rows], rates, ".-", label=f"trainer {part}")
    ax2.set_xlabel("round")
    ax2.set_ylabel("steps / s")
    ax2.set_title("training speed per trainer")
    if 0 < k <= 16:
        ax2.legend(fontsize=7)
    fig.tight_layout()
    return fig
