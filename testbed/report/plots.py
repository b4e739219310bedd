"""The report's plots, drawn with matplotlib as SVG text to embed in the page (one file,
nothing beside it). Each function takes figures already computed from the journals."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - after choosing the backend

plt.rcParams.update({"svg.fonttype": "none", "font.size": 9, "axes.spines.top": False,
                     "axes.spines.right": False, "figure.dpi": 100})
COLORS = {"none": "#9e9e9e", "sidecar": "#4c78a8", "node": "#f58518", "node-sa": "#54a24b", "ambient": "#e45756",
          "ztunnel": "#b279a2"}


def _svg(fig) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg"):]


def _color(arch: str) -> str:
    return COLORS.get(arch, "#72b7b2")


def bars(title: str, values: dict[str, float | None], ylabel: str, errors: dict[str, tuple] | None = None) -> str:
    """One bar per architecture (None: no bar, labelled n/a); `errors`: arch -> (low, high)."""
    fig, ax = plt.subplots(figsize=(4.6, 2.6))
    archs = list(values)
    ys = [values[a] if values[a] is not None else 0 for a in archs]
    ax.bar(archs, ys, color=[_color(a) for a in archs])
    if errors:
        for k, a in enumerate(archs):
            if a in errors and errors[a] and values[a] is not None and None not in errors[a]:
                lo, hi = errors[a]
                ax.errorbar(k, values[a], yerr=[[values[a] - lo], [hi - values[a]]], color="black", capsize=3)
    for k, a in enumerate(archs):
        if values[a] is None:
            ax.text(k, 0, "n/a", ha="center", va="bottom")
    top = max([y for y in ys if y is not None] + [0])
    ax.set_ylim(0, top * 1.15 if top > 0 else 1)
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    return _svg(fig)


def success_over_time(title: str, rows: dict[str, list[dict]], window: tuple[float, float] | None,
                      until: float | None = None) -> str:
    """Per architecture a panel: the success rate per second of each flow (timeline rows),
    the fault window shaded."""
    archs = list(rows)
    fig, axes = plt.subplots(1, max(len(archs), 1), figsize=(3.2 * max(len(archs), 1), 2.4), sharey=True,
                             squeeze=False)
    for ax, arch in zip(axes[0], archs, strict=False):
        flows: dict[str, list[tuple[int, float]]] = {}
        for r in rows[arch]:
            n = int(r["requests"])
            if n:
                flows.setdefault(f"{r['src']}->{r['dst']}", []).append((int(r["second"]), 1 - int(r["failed"]) / n))
        for name, pts in sorted(flows.items()):
            pts.sort()
            ax.plot([p[0] for p in pts], [p[1] * 100 for p in pts], linewidth=1, label=name)
        if window:
            ax.axvspan(window[0], window[1], color="#e45756", alpha=0.15, linewidth=0)
        if until is not None:
            ax.axvline(until, color="#888888", linewidth=0.8, linestyle=":")
        ax.set_title(arch)
        ax.set_ylim(-5, 105)
        ax.set_xlabel("s")
    axes[0][0].set_ylabel("success %")
    fig.suptitle(title, y=1.06)
    return _svg(fig)


def curves(title: str, xs: list[float], series: dict[str, list[float | None]], xlabel: str, ylabel: str) -> str:
    """A line per architecture over the steps of a sweep."""
    fig, ax = plt.subplots(figsize=(4.6, 2.8))
    for arch, ys in series.items():
        pts = [(x, y) for x, y in zip(xs, ys, strict=False) if y is not None]
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", color=_color(arch), label=arch)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7)
    return _svg(fig)
