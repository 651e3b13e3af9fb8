"""Speed over time as a small server-side SVG (no chart library, no JavaScript needed)."""

from __future__ import annotations

import math
from html import escape

W, H, PAD_L, PAD_B, PAD_T, PAD_R = 600, 120, 34, 18, 8, 6


def speed_series(points: list, t0) -> list[tuple[float, float]]:
    """``[(seconds since t0, km/h)]`` from route points ``[[t_iso, lat, lon, speed_mps, heading], ...]``;
    a point without a recorded speed gets distance/time to the previous point (haversine)."""
    from datetime import datetime

    from gpxpy.geo import haversine_distance

    out = []
    prev = None
    for p in points:
        t = (datetime.fromisoformat(p[0]) - t0).total_seconds()
        v = p[3] if len(p) > 3 else None
        if v is None and prev is not None and t > prev[0]:
            v = haversine_distance(prev[1], prev[2], p[1], p[2]) / (t - prev[0])
        if v is not None and math.isfinite(v):
            out.append((t, v * 3.6))
        prev = (t, p[1], p[2])
    return out


def speed_svg(series: list[tuple[float, float]], duration_s: float) -> str | None:
    """An inline SVG (``class="speed"``, ``data-duration``) of km/h over video seconds with a
    playback cursor ``#speed-cursor``; None when there are fewer than 2 samples."""
    if len(series) < 2:
        return None
    dur = max(duration_s, series[-1][0], 1.0)
    vmax = max(10.0, max(v for _, v in series))
    top = math.ceil(vmax / 10.0) * 10
    iw, ih = W - PAD_L - PAD_R, H - PAD_T - PAD_B

    def x(t):
        return PAD_L + iw * min(max(t, 0.0), dur) / dur

    def y(v):
        return PAD_T + ih * (1 - v / top)

    path = " ".join(f"{'M' if i == 0 else 'L'}{x(t):.1f},{y(v):.1f}" for i, (t, v) in enumerate(series))
    area = path + f" L{x(series[-1][0]):.1f},{y(0):.1f} L{x(series[0][0]):.1f},{y(0):.1f} Z"
    grid = []
    for v in (0, top / 2, top):
        grid.append(
            f'<line class="grid" x1="{PAD_L}" x2="{W - PAD_R}" y1="{y(v):.1f}" y2="{y(v):.1f}"/>'
            f'<text class="lbl" x="{PAD_L - 4}" y="{y(v) + 4:.1f}" text-anchor="end">{v:g}</text>'
        )
    ticks = []
    step = max(1, int(dur / 6) or 1)
    for s in range(0, int(dur) + 1, step):
        anchor = "start" if s == 0 else ("end" if x(s) > W - PAD_R - 12 else "middle")
        ticks.append(
            f'<text class="lbl" x="{x(s):.1f}" y="{H - 4}" text-anchor="{anchor}">{s // 60}:{s % 60:02d}</text>'
        )
    return (
        f'<svg class="speed" viewBox="0 0 {W} {H}" role="img" data-duration="{dur:.3f}" data-x0="{PAD_L}" '
        f'data-w="{iw}" aria-label="speed over time, up to {escape(f"{vmax:.0f}")} km/h">'
        f"<title>Speed (km/h) over the video</title>{''.join(grid)}{''.join(ticks)}"
        f'<path class="area" d="{area}"/><path class="line" d="{path}"/>'
        f'<line id="speed-cursor" class="cursor" x1="{PAD_L}" x2="{PAD_L}" y1="{PAD_T}" y2="{H - PAD_B}"/></svg>'
    )
