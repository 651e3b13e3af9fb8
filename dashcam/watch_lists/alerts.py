"""Alerts for watch hits: the Prefect event of a new hit (:func:`hit_event`, event
:data:`.common.HIT_EVENT`) and the Prefect automation that sends a notification block's message
for those events (:func:`alert_automation`, docs/alerts.md). Pure data; Prefect delivers.

The hits come from :mod:`.matching`; this module touches no database.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dashcam.watch_lists.common import HIT_EVENT


def osm_url(lat: float | None, lon: float | None, zoom: int = 17) -> str | None:
    """An OpenStreetMap link with a marker at WGS84 ``lat``/``lon`` (None without a position)."""
    if lat is None or lon is None:
        return None
    return f"https://www.openstreetmap.org/?mlat={lat:.6f}&mlon={lon:.6f}#map={zoom}/{lat:.6f}/{lon:.6f}"


def hit_event(
    hit: dict,
    *,
    flow_run_id: str | None = None,
    media_base_url: str | None = None,
    archive_dir: str | Path | None = None,
) -> dict:
    """Keyword arguments of ``prefect.events.emit_event`` for one new hit of :func:`match_video`.

    ``event`` :data:`HIT_EVENT`; ``resource`` the plate (``dashcam.plate.<PLATE>``, labels
    ``prefect.resource.name``, ``dashcam.watchlist``, ``dashcam.label``); ``related`` the video
    (role ``video``) and, given ``flow_run_id``, the flow run (role ``flow-run``); ``payload``:
    plate, matched_text, watchlist, label, pattern, score, ts (ISO 8601 UTC), lat, lon, map_url
    (:func:`osm_url`), event_id, crop_path and crop_url (``media_base_url`` + the crop's path under
    ``archive_dir`` when both are set and it lies there, else a ``file://`` URI).
    """
    crop = hit.get("crop_path")
    crop_url = None
    if crop:
        cp = Path(crop)
        if media_base_url and archive_dir and cp.is_relative_to(Path(archive_dir)):
            crop_url = media_base_url.rstrip("/") + "/" + cp.relative_to(Path(archive_dir)).as_posix()
        elif cp.is_absolute():
            crop_url = cp.as_uri()
    related = [
        {
            "prefect.resource.id": f"dashcam.video.{hit['video_id']}",
            "prefect.resource.role": "video",
            "prefect.resource.name": Path(hit.get("video_path") or hit["video_id"]).name,
        }
    ]
    if flow_run_id:
        related.append({"prefect.resource.id": f"prefect.flow-run.{flow_run_id}", "prefect.resource.role": "flow-run"})
    return {
        "event": HIT_EVENT,
        "resource": {
            "prefect.resource.id": f"dashcam.plate.{hit['plate']}",
            "prefect.resource.name": hit["plate"],
            "dashcam.watchlist": hit["watchlist"],
            "dashcam.label": hit["label"] or "",
        },
        "related": related,
        "payload": {
            "plate": hit["plate"],
            "matched_text": hit["matched_text"],
            "watchlist": hit["watchlist"],
            "label": hit["label"],
            "pattern": hit["pattern"],
            "score": hit["score"],
            "ts": hit["ts"],
            "lat": hit["lat"],
            "lon": hit["lon"],
            "map_url": osm_url(hit["lat"], hit["lon"]),
            "event_id": hit["event_id"],
            "crop_path": crop,
            "crop_url": crop_url,
        },
    }


ALERT_SUBJECT = "dashcam: {{ event.payload.plate }} seen ({{ event.payload.label or event.payload.watchlist }})"
ALERT_BODY = """\
Plate {{ event.payload.plate }} (read as {{ event.payload.matched_text }}, score {{ event.payload.score }})
Watch list: {{ event.payload.watchlist }}{% if event.payload.label %}: {{ event.payload.label }}{% endif %}
Time: {{ event.payload.ts }}
Place: {% if event.payload.lat is not none and event.payload.lon is not none %}https://www.openstreetmap.org/?mlat={{ event.payload.lat }}&mlon={{ event.payload.lon }}#map=17/{{ event.payload.lat }}/{{ event.payload.lon }}{% else %}no GPS position{% endif %}
Crop: {{ event.payload.crop_url or "none" }}
Event: {{ event.payload.event_id }}"""


def alert_automation(
    name: str,
    block_document_id,
    *,
    watchlist: str | None = None,
    plate: str | None = None,
    subject: str = ALERT_SUBJECT,
    body: str = ALERT_BODY,
):
    """A ``prefect.automations.Automation`` (not yet created): an ``EventTrigger`` on
    :data:`HIT_EVENT` (reactive, one event; only those of ``watchlist`` / ``plate`` when given) and
    a ``SendNotification`` action to the notification block ``block_document_id`` with the Jinja
    ``subject`` and ``body`` (plate, label, time, OpenStreetMap link, crop). ``.create()`` it."""
    from prefect.automations import Automation, EventTrigger, Posture
    from prefect.events.actions import SendNotification

    match: dict[str, Any] = {"prefect.resource.id": f"dashcam.plate.{plate}" if plate else "dashcam.plate.*"}
    if watchlist:
        match["dashcam.watchlist"] = watchlist
    return Automation(
        name=name,
        description="dashcam watch-list alert (dashcam alerts add)",
        enabled=True,
        trigger=EventTrigger(expect={HIT_EVENT}, match=match, posture=Posture.Reactive, threshold=1),
        actions=[SendNotification(block_document_id=block_document_id, subject=subject, body=body)],
    )
