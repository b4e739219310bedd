"""A grouped bar chart with error bars, as plain SVG: no plotting library needed, and the
file opens in any browser."""

from __future__ import annotations

from html import escape

COLORS = ["#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#b279a2"]


def bar_chart(title: str, groups: list[str], series: dict[str, list[tuple[float, float, float]]],
              ylabel: str, width: int = 900, height: int = 420) -> str:
    """`series`: name -> one (value, low, high) per group."""
    left, right, top, bottom = 70, 20, 40, 90
    plot_w, plot_h = width - left - right, height - top - bottom
    ymax = max([hi for vals in series.values() for (_, _, hi) in vals if hi == hi] + [1e-9]) * 1.1
    n = max(len(series), 1)
    gw = plot_w / max(len(groups), 1)
    bw = gw * 0.8 / n

    def y(v: float) -> float:
        return top + plot_h - (v / ymax) * plot_h

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
           f'font-size="12">',
           f'<text x="{width / 2}" y="20" text-anchor="middle" font-size="15">{escape(title)}</text>',
           f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#333"/>',
           f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="#333"/>',
           f'<text x="16" y="{top + plot_h / 2}" transform="rotate(-90 16 {top + plot_h / 2})" '
           f'text-anchor="middle">{escape(ylabel)}</text>']
    for i in range(6):
        v = ymax * i / 5
        out.append(f'<text x="{left - 6}" y="{y(v) + 4}" text-anchor="end">{v:.3g}</text>')
        out.append(f'<line x1="{left}" y1="{y(v)}" x2="{left + plot_w}" y2="{y(v)}" stroke="#eee"/>')
    for gi, g in enumerate(groups):
        gx = left + gi * gw + gw * 0.1
        out.append(f'<text x="{gx + gw * 0.4}" y="{top + plot_h + 16}" text-anchor="end" '
                   f'transform="rotate(-30 {gx + gw * 0.4} {top + plot_h + 16})">{escape(g)}</text>')
        for si, (name, vals) in enumerate(series.items()):
            v, lo, hi = vals[gi]
            if v != v:  # NaN: no bar
                continue
            x = gx + si * bw
            out.append(f'<rect x="{x:.1f}" y="{y(v):.1f}" width="{bw * 0.9:.1f}" height="{top + plot_h - y(v):.1f}" '
                       f'fill="{COLORS[si % len(COLORS)]}"><title>{escape(name)} {escape(g)}: {v:.3g}</title></rect>')
            cx = x + bw * 0.45
            out.append(f'<line x1="{cx:.1f}" y1="{y(lo):.1f}" x2="{cx:.1f}" y2="{y(hi):.1f}" stroke="#222"/>')
    for si, name in enumerate(series):
        lx = left + 10 + si * 140
        out.append(f'<rect x="{lx}" y="{height - 22}" width="12" height="12" fill="{COLORS[si % len(COLORS)]}"/>')
        out.append(f'<text x="{lx + 16}" y="{height - 12}">{escape(name)}</text>')
    out.append("</svg>")
    return "\n".join(out)
