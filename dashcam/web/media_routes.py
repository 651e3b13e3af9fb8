"""Media routes of the web UI: ``GET /media/video|poster/<video_id>`` and ``GET /media/crop|thumb/<event_id>``.

Files are served only from inside the archive folder (:func:`dashcam.web.media.archive_file`,
which also holds :func:`~dashcam.web.media.file_response` with HTTP Range support and the poster
cache); the rows come from the app's read-only connection (:class:`dashcam.web.app.Web`).
Registered by :func:`dashcam.web.app.create_app`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa
from fastapi import Depends, FastAPI, HTTPException

from dashcam.db import VEHICLES, VIDEOS
from dashcam.web.media import archive_file, file_response, poster

if TYPE_CHECKING:
    from dashcam.web.app import Web


def _video_row(conn, video_id: str) -> dict:
    """The video's archive copy facts. Media is served from the archive copy only, never
    ``videos.path``: the raw file may be gone (``raw_deleted_at``, retention) and lies outside
    the archive folder; an archive copy deleted by retention is 410 Gone (issue 16)."""
    r = (
        conn.execute(
            sa.select(VIDEOS.c.id, VIDEOS.c.archive_path, VIDEOS.c.duration_s, VIDEOS.c.archive_deleted_at).where(
                VIDEOS.c.id == video_id
            )
        )
        .mappings()
        .first()
    )
    if r is None:
        raise HTTPException(404, f"There is no video {video_id[:80]!r}.")
    if r["archive_deleted_at"] is not None:
        raise HTTPException(
            410,
            f"The archive copy of video {video_id[:80]} was deleted by retention "
            f"(archive_keep_days) on {r['archive_deleted_at']:%Y-%m-%d}; its crops and thumbnails remain.",
        )
    return dict(r)


def _event_file(web: Web, conn, vehicle_id: str, col) -> Path:
    r = conn.execute(sa.select(col).where(VEHICLES.c.id == vehicle_id)).first()
    if r is None:
        raise HTTPException(404, f"There is no plate event {vehicle_id[:80]!r}.")
    return archive_file(web.archive_dir, r[0])


def register(app: FastAPI, web: Web, db: Callable[[], Iterator[sa.Connection]]) -> None:
    """Add the media routes to ``app``: ``web`` is the app's :class:`~dashcam.web.app.Web`, ``db`` the read-only connection dependency."""

    @app.get("/media/video/{video_id}")
    def media_video(video_id: str, conn=Depends(db)):
        """The archive copy (H.264 MP4), with HTTP Range support."""
        return file_response(archive_file(web.archive_dir, _video_row(conn, video_id)["archive_path"]), 3600)

    @app.get("/media/poster/{video_id}")
    def media_poster(video_id: str, conn=Depends(db)):
        """A frame of the archive copy (at 1 s or the middle of a shorter video), cached."""
        r = _video_row(conn, video_id)
        src = archive_file(web.archive_dir, r["archive_path"])
        return file_response(poster(src, web.poster_dir, video_id, min(1.0, float(r["duration_s"]) / 2)), 86400)

    @app.get("/media/crop/{vehicle_id}")
    def media_crop(vehicle_id: str, conn=Depends(db)):
        return file_response(_event_file(web, conn, vehicle_id, VEHICLES.c.crop_path), 86400)

    @app.get("/media/thumb/{vehicle_id}")
    def media_thumb(vehicle_id: str, conn=Depends(db)):
        return file_response(_event_file(web, conn, vehicle_id, VEHICLES.c.thumb_path), 86400)
