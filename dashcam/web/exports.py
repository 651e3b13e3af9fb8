"""Search results as CSV, JSON and GPX (the same query string as the search page)."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime

import gpxpy.gpx

CSV_COLUMNS = [
    "id",
    "final_plate",
    "matched_text",
    "score",
    "plate_confidence",
    "ts",
    "video_id",
    "pts_s",
    "lat",
    "lon",
    "speed_mps",
    "heading_deg",
    "n_reads",
    "alternatives",
]


def to_csv(rows: list[dict]) -> str:
    """One line per event; ``alternatives`` as ``TEXT:count:mean_conf`` joined by ``;``."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for r in rows:
        alts = ";".join(
            f"{a.get('text')}:{a.get('count')}:{float(a.get('mean_conf') or 0):.3f}"
            for a in r.get("alternatives") or []
        )
        w.writerow([alts if c == "alternatives" else _cell(r.get(c)) for c in CSV_COLUMNS])
    return buf.getvalue()


def _cell(v):
    if v is None:
        return ""
    if isinstance(v, str) and v[:1] in ("=", "+", "-", "@"):  # no spreadsheet formula injection
        return "'" + v
    return v


def to_json(query: dict, total: int, kind: str, rows: list[dict]) -> str:
    return json.dumps({"query": query, "total": total, "kind": kind, "rows": rows}, indent=1, default=str)


def to_gpx(rows: list[dict], name: str) -> str:
    """A GPX 1.1 document (gpxpy) with one waypoint per event that has a position: name = the
    plate, time = the event's UTC ``ts``, description = confidence and video moment."""
    g = gpxpy.gpx.GPX()
    g.name = name
    g.creator = "dashcam-pipeline"
    for r in rows:
        if r.get("lat") is None or r.get("lon") is None:
            continue
        wp = gpxpy.gpx.GPXWaypoint(
            latitude=r["lat"],
            longitude=r["lon"],
            time=datetime.fromisoformat(r["ts"]) if r.get("ts") else None,
            name=r.get("final_plate"),
            description=f"confidence {float(r.get('plate_confidence') or 0):.2f}; video {r.get('video_id')} at {float(r.get('pts_s') or 0):.1f} s",
        )
        g.waypoints.append(wp)
    return g.to_xml(version="1.1")
