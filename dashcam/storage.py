"""Storage that takes care of itself: archive verification, raw/archive retention, the storage report.

Size (~540 lines, over the project's ~500): verification, retention and the report share the
protection rules and the tier measurements, so they stay in one module.

Pure logic (no Prefect): :func:`verify_archive` (run by the ``archive`` stage), :func:`plan_retention`
/ :func:`apply_retention` (the ``retention`` flow and ``dashcam retention``) and
:func:`storage_report` (``dashcam storage``, later the web UI). docs/storage.md has the tiers, the
policy and the safety rules; the short version:

* a raw file is deleted only when its video is **finalized** (a ``videos`` row), its archive copy
  **verified** (``videos.archive_verified_at``; the copy is re-verified right before the unlink)
  and it is **older** than ``raw_keep_days`` (both file mtime and ``ingested_at``), or, under the
  disk budget ``raw_max_gb``, oldest-eligible first regardless of age;
* **protected** footage is never deleted automatically: the camera's locked/event folders and
  names (:func:`protection`), a file a watch-list hit points at (table ``watch_hits`` when it
  exists), a user's keep mark (``videos.keep``);
* every decision is made from the DB row and the file itself, re-checked right before each unlink,
  and the deletion is recorded (``raw_deleted_at`` / ``archive_deleted_at``) after the unlink
  succeeded: a run killed at any point loses nothing that was not eligible, and a rerun finishes
  the job (a file found gone whose row is otherwise eligible is recorded as deleted).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from dashcam.archive import ArchiveError, MediaCheckError, _target_size, verify_media
from dashcam.records import PlateEvent, VideoInfo

log = logging.getLogger(__name__)

__all__ = [
    "ARCHIVE_DURATION_TOL_S",
    "Decision",
    "apply_retention",
    "plan_retention",
    "protection",
    "set_keep",
    "storage_report",
    "verify_archive",
]

#: |archive duration - source duration| allowed by :func:`verify_archive` (seconds; issue 16).
ARCHIVE_DURATION_TOL_S = 0.5
GB = 1_000_000_000  # raw_max_gb is in GB = 1e9 bytes (what disks are sold in)
VIDEO_SUFFIXES = {".mp4", ".mov", ".ts", ".avi", ".mkv"}


# --------------------------------------------------------------------------------------------
# archive verification


def verify_archive(
    info: VideoInfo,
    archive_path: str | os.PathLike,
    events: Iterable[PlateEvent],
    *,
    height: int,
    min_duration_s: float | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Check a finished archive copy and its images; return what ``videos`` records about it.

    * the video (:func:`dashcam.archive.verify_media`): complete MP4, H.264, frame size
      :func:`dashcam.archive._target_size` of the source at ``height``, and duration within
      :data:`ARCHIVE_DURATION_TOL_S` (0.5 s) of ``info.duration_s`` (a damaged source:
      between ``min_duration_s`` and it, within the same 0.5 s);
    * each event's ``crop_path`` / ``thumb_path`` (the archived ones) exists and decodes.

    Returns ``{"archive_verified_at": UTC datetime, "archive_bytes": int,
    "archive_images_bytes": int}`` (sizes in bytes), the ``archive_check`` of
    :func:`dashcam.db.save_video`.

    Raises:
        ArchiveError (a :class:`MediaCheckError` for a bad file): one line, the file and the
        cause. The raw file is then kept (its row is stored unverified).
    """
    p = Path(archive_path)
    w, h = _target_size(info.width, info.height, height)
    facts = verify_media(p, "video", width=w, height=h, codec="h264")
    dur = float(facts["duration_s"] or 0.0)
    lo = info.duration_s if min_duration_s is None else min(min_duration_s, info.duration_s)
    if not lo - ARCHIVE_DURATION_TOL_S <= dur <= info.duration_s + ARCHIVE_DURATION_TOL_S:
        want = f"{info.duration_s:.2f} s" if min_duration_s is None else f"{lo:.2f}-{info.duration_s:.2f} s"
        raise MediaCheckError(p, f"duration is {dur:.2f} s, expected {want} (+-{ARCHIVE_DURATION_TOL_S} s)")
    images = 0
    for ev in events:
        for what, path in (("crop", ev.crop_path), ("thumbnail", ev.thumb_path)):
            if path is None:
                continue
            ip = Path(path)
            if not ip.is_file():
                raise ArchiveError(f"{ip}: archived {what} of track {ev.track_id} is missing")
            verify_media(ip, "image")
            images += ip.stat().st_size
    return {
        "archive_verified_at": now or datetime.now(UTC),
        "archive_bytes": p.stat().st_size,
        "archive_images_bytes": images,
    }


# --------------------------------------------------------------------------------------------
# protection rules

#: Folder names (any path component, case-insensitive) under which dashcams keep locked / event
#: footage. Viofo: ``RO/`` (read-only = locked by G-sensor or the button), ``Event/``,
#: ``Parking/``; Thinkware: ``evt_rec``, ``manual_rec``, ``parking_rec``, ``sos_rec``; Nextbase:
#: ``Protected``; generic: ``Locked``, ``Lock``, ``Emergency``, ``EMER``, ``Events``, ``Saved``.
PROTECTED_DIRS = frozenset(
    {
        "ro",
        "event",
        "events",
        "parking",
        "locked",
        "lock",
        "protected",
        "emergency",
        "emer",
        "saved",
        "evt_rec",
        "manual_rec",
        "parking_rec",
        "sos_rec",
    }
)
#: Name tokens (file stem split at ``_ - .`` and spaces, case-insensitive) that mark a locked
#: file: ``RO`` (Viofo/Novatek ``..._RO.MP4``, ``RO_...``), ``EVT``, ``EVENT``, ``LOCK``,
#: ``LOCKED``, ``PROT``, ``SOS``, ``EMER``.
PROTECTED_TOKENS = frozenset({"ro", "evt", "event", "lock", "locked", "prot", "protected", "sos", "emer"})
#: BlackVue names ``YYYYMMDD_HHMMSS_XY``: X = N normal, E event, M manual, P parking, I impact in
#: parking (Y = F front, R rear, I interior). E, M, I and P are protected.
_BLACKVUE = re.compile(r"^\d{8}_\d{6}_([EMIP])[FRI]$", re.IGNORECASE)


def protection(path: str | os.PathLike) -> str | None:
    """Why the camera marked the file at ``path`` as locked/event footage, or None.

    Pure path rule (no file access): a folder in :data:`PROTECTED_DIRS`, a name token in
    :data:`PROTECTED_TOKENS`, or a BlackVue event/manual/parking name (:data:`_BLACKVUE`).
    Returns a short reason such as ``"camera folder RO/"``.
    """
    p = Path(path)
    for part in p.parent.parts:
        if part.lower() in PROTECTED_DIRS:
            return f"camera folder {part}/"
    tokens = [t for t in re.split(r"[_\-. ]+", p.stem) if t]
    for t in tokens:
        if t.lower() in PROTECTED_TOKENS:
            return f"locked name ({t})"
    m = _BLACKVUE.match(p.stem)
    if m:
        return f"BlackVue {m.group(1).upper()} recording"
    return None


def watch_hit_videos(conn: sa.Connection) -> set[str]:
    """Video ids that a watch-list hit (table ``watch_hits``, :mod:`dashcam.watch_lists`) points
    at: their raw files are protected from automatic deletion."""
    from dashcam.db import WATCH_HITS

    return set(conn.execute(sa.select(WATCH_HITS.c.video_id).distinct()).scalars())


# --------------------------------------------------------------------------------------------
# retention


@dataclass
class Decision:
    """One file's retention decision.

    ``tier``: ``raw`` or ``archive``; ``action``: ``delete``, ``keep`` or ``record-gone`` (the
    file is already gone but the row says otherwise: a run killed after the unlink); ``reason``:
    one line; ``protected``: the protection reason when the file is protected; ``age_days``:
    from the later of file mtime and ``ingested_at``; ``rule``: ``age`` or ``budget`` for deletions.
    """

    video_id: str
    tier: Literal["raw", "archive"]
    path: str
    size_bytes: int
    action: Literal["delete", "keep", "record-gone"]
    reason: str
    age_days: float | None = None
    protected: str | None = None
    rule: str | None = None
    recorded_at: datetime | None = field(default=None, repr=False)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("recorded_at")
        return d


def _videos(conn: sa.Connection, video_id: str | None = None) -> list[dict]:
    from dashcam.db import VIDEOS

    stmt = sa.select(VIDEOS)
    if video_id is not None:
        stmt = stmt.where(VIDEOS.c.id == video_id)
    return [dict(r) for r in conn.execute(stmt.order_by(VIDEOS.c.recording_start, VIDEOS.c.id)).mappings()]


def _age_days(mtime: float, ingested_at: datetime | None, now: datetime) -> float:
    ref = datetime.fromtimestamp(mtime, UTC)
    if ingested_at is not None and ingested_at > ref:
        ref = ingested_at
    return (now - ref).total_seconds() / 86400.0


def _raw_decision(row: dict, watched: set[str], settings, now: datetime) -> Decision | None:
    """Decide the raw file of one ``videos`` row (None: nothing to decide, already deleted)."""
    if row.get("raw_deleted_at") is not None:
        return None
    path = row["path"]
    d = Decision(row["id"], "raw", path, int(row["size_bytes"] or 0), "keep", "")
    d.protected = (
        protection(path)
        or ("user keep mark" if row.get("keep") else None)
        or ("watch-list hit" if row["id"] in watched else None)
    )
    try:
        st = os.stat(path)
    except FileNotFoundError:
        st = None
    archive_ok = _archive_state(row)
    if st is None:
        if d.protected is None and archive_ok is None:  # eligible row, file gone: a killed run's unlink
            d.action, d.reason = "record-gone", "raw file already gone; archive verified"
        else:
            d.reason = "raw file missing"
        return d
    d.size_bytes = st.st_size
    d.age_days = _age_days(st.st_mtime, row.get("ingested_at"), now)
    if st.st_size != row["size_bytes"]:
        d.reason = f"file changed since ingest ({st.st_size} bytes, ingested {row['size_bytes']})"
    elif d.protected:
        d.reason = f"protected: {d.protected}"
    elif archive_ok is not None:
        d.reason = archive_ok
    elif d.age_days < settings.raw_keep_days:
        d.reason = f"younger than raw_keep_days ({d.age_days:.1f} < {settings.raw_keep_days:g} d)"
        d.rule = "young"  # a budget candidate
    else:
        d.action, d.rule = "delete", "age"
        d.reason = (
            f"finalized, archive verified {row['archive_verified_at']:%Y-%m-%d %H:%M}Z, "
            f"age {d.age_days:.1f} d > raw_keep_days {settings.raw_keep_days:g}"
        )
    return d


def _archive_state(row: dict) -> str | None:
    """None when the row's archive copy is verified and still as verified, else why not."""
    if row.get("archive_verified_at") is None or not row.get("archive_path"):
        return "archive copy not verified"
    if row.get("archive_deleted_at") is not None:
        return "archive copy deleted"
    try:
        size = os.stat(row["archive_path"]).st_size
    except OSError:
        return "archive copy missing"
    if row.get("archive_bytes") is not None and size != row["archive_bytes"]:
        return f"archive copy changed since verified ({size} bytes, verified {row['archive_bytes']})"
    return None


def _archive_decision(row: dict, watched: set[str], settings, now: datetime) -> Decision | None:
    if settings.archive_keep_days is None or not row.get("archive_path") or row.get("archive_deleted_at") is not None:
        return None
    path = row["archive_path"]
    d = Decision(row["id"], "archive", path, int(row.get("archive_bytes") or 0), "keep", "")
    d.protected = (
        protection(row["path"])
        or ("user keep mark" if row.get("keep") else None)
        or ("watch-list hit" if row["id"] in watched else None)
    )
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if d.protected is None:
            d.action, d.reason = "record-gone", "archive copy already gone"
        else:
            d.reason = "archive copy missing"
        return d
    d.size_bytes = st.st_size
    d.age_days = _age_days(st.st_mtime, row.get("ingested_at"), now)
    if d.protected:
        d.reason = f"protected: {d.protected}"
    elif d.age_days < settings.archive_keep_days:
        d.reason = f"younger than archive_keep_days ({d.age_days:.1f} < {settings.archive_keep_days:g} d)"
    else:
        d.action, d.rule = "delete", "age"
        d.reason = f"archive copy age {d.age_days:.1f} d > archive_keep_days {settings.archive_keep_days:g}"
    return d


def raw_tier_bytes(settings, rows: list[dict] | None = None) -> int:
    """Bytes of video files in the raw tier: every video file under ``settings.raw_dir`` (when
    set) plus the ingested raw files outside it that still exist."""
    total, seen = 0, set()
    if settings.raw_dir is not None:
        for f in _walk_files(Path(settings.raw_dir)):
            if f.suffix.lower() in VIDEO_SUFFIXES:
                total += _size(f)
                seen.add(str(f.resolve()))
    for r in rows or []:
        if r.get("raw_deleted_at") is None and os.path.isfile(r["path"]) and str(Path(r["path"]).resolve()) not in seen:
            total += _size(Path(r["path"]))
    return total


def plan_retention(engine: Engine, settings, now: datetime | None = None) -> list[Decision]:
    """Every raw (and, with ``archive_keep_days``, archive) file's decision, from the DB and the files.

    Deletions by age first; then, if the raw tier (:func:`raw_tier_bytes`) still exceeds
    ``raw_max_gb``, the eligible raw files younger than ``raw_keep_days`` are marked for
    deletion oldest first (``recording_start``), until the tier fits (rule ``budget``).
    Nothing is changed. Raises :class:`dashcam.db.DatabaseError` when the DB cannot be read.
    """
    now = now or datetime.now(UTC)
    with engine.connect() as conn:
        rows = _videos(conn)
        watched = watch_hit_videos(conn)
    out: list[Decision] = []
    for r in rows:
        for dec in (_raw_decision(r, watched, settings, now), _archive_decision(r, watched, settings, now)):
            if dec is not None:
                out.append(dec)
    if settings.raw_max_gb is not None:
        budget = int(settings.raw_max_gb * GB)
        used = raw_tier_bytes(settings, rows) - sum(
            d.size_bytes for d in out if d.tier == "raw" and d.action == "delete"
        )
        for d in out:  # rows are in recording_start order: oldest first
            if used <= budget:
                break
            if d.tier == "raw" and d.rule == "young":
                d.action, d.rule = "delete", "budget"
                d.reason = (
                    f"disk budget: raw tier {used / GB:.2f} GB > raw_max_gb {settings.raw_max_gb:g}; "
                    f"oldest eligible (age {d.age_days:.1f} d)"
                )
                used -= d.size_bytes
    for d in out:
        if d.rule == "young":
            d.rule = None
    return out


def _reverify_archive(row: dict) -> str | None:
    """Right before a raw file goes: the archive copy is still there, as verified, and plays."""
    why = _archive_state(row)
    if why:
        return why
    try:
        verify_media(
            row["archive_path"],
            "video",
            codec="h264",
            duration_s=row["duration_s"],
            fps=row["fps"],
            min_duration_s=0.0 if row.get("damage") else None,
        )
    except MediaCheckError as e:
        return f"archive copy fails verification now: {e}"
    return None


def apply_retention(engine: Engine, settings, decisions: list[Decision], now: datetime | None = None) -> list[Decision]:
    """Carry out the ``delete`` / ``record-gone`` decisions; return those done (with ``recorded_at``).

    Per file, in order: re-read the row and re-decide (:func:`plan_retention`'s rules, the budget
    rule re-checked against the same row), for a raw file re-verify the archive copy
    (:func:`dashcam.archive.verify_media`), unlink, then record ``raw_deleted_at`` /
    ``archive_deleted_at`` in its own transaction. A decision that no longer holds is skipped and
    logged. Every deletion is logged (logger ``dashcam.storage``) with its reason. An unlink that
    fails (permissions, I/O) is logged and skipped; the rest go on.
    """
    from dashcam.db import VIDEOS

    now = now or datetime.now(UTC)
    done: list[Decision] = []
    for d in decisions:
        if d.action not in ("delete", "record-gone"):
            continue
        with engine.connect() as conn:
            rows = _videos(conn, d.video_id)
            watched = watch_hit_videos(conn)
        if not rows:
            log.info("skip %s: video %s no longer in the database", d.path, d.video_id)
            continue
        row = rows[0]
        if d.tier == "raw":
            again = _raw_decision(row, watched, settings, now)
            if again is not None and d.rule == "budget" and again.rule == "young":
                again.action = "delete"
            if again is None or again.action != d.action or again.path != d.path:
                log.info("skip %s: no longer eligible (%s)", d.path, again.reason if again else "already recorded")
                continue
            if d.action == "delete":
                why = _reverify_archive(row)
                if why:
                    log.warning("keep %s: %s", d.path, why)
                    continue
            col = VIDEOS.c.raw_deleted_at
        else:
            again = _archive_decision(row, watched, settings, now)
            if again is None or again.action != d.action:
                log.info("skip %s: no longer eligible (%s)", d.path, again.reason if again else "already recorded")
                continue
            col = VIDEOS.c.archive_deleted_at
        if d.action == "delete":
            try:
                os.unlink(d.path)
            except FileNotFoundError:
                pass
            except OSError as e:
                log.error("could not delete %s: %s", d.path, e.strerror or e)
                continue
        with engine.begin() as conn:
            conn.execute(sa.update(VIDEOS).where(VIDEOS.c.id == d.video_id, col.is_(None)).values({col.name: now}))
        d.recorded_at = now
        log.info("deleted %s %s (%d bytes): %s", d.tier, d.path, d.size_bytes, d.reason)
        done.append(d)
    return done


def set_keep(engine: Engine, video_id: str, keep: bool = True) -> bool:
    """Set or clear the user's keep mark of a video; False when no such video."""
    from dashcam.db import VIDEOS

    with engine.begin() as conn:
        n = conn.execute(sa.update(VIDEOS).where(VIDEOS.c.id == video_id).values(keep=keep)).rowcount
    return n == 1


# --------------------------------------------------------------------------------------------
# report


def _walk_files(root: Path) -> Iterable[Path]:
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            yield Path(dirpath) / f


def _size(p: Path) -> int:
    try:
        return p.lstat().st_size
    except OSError:
        return 0


def _tree_bytes(root: Path | None) -> int:
    return sum(_size(f) for f in _walk_files(root)) if root is not None and root.is_dir() else 0


def storage_report(settings, engine: Engine | None = None, now: datetime | None = None) -> dict[str, Any]:
    """Used space per tier, what retention would free, and the protected set (JSON-ready dict).

    Returns::

        {"tiers": {"raw": {"path", "bytes", "files"}, "work": {"path", "bytes"},
                   "archive": {"path", "bytes", "video_bytes", "image_bytes"}},
         "retention": {"raw_keep_days", "raw_max_gb", "archive_keep_days",
                       "would_free_bytes": {"raw", "archive"},
                       "deletions": [Decision.as_dict(), ...]},
         "protected": [{"video_id", "path", "reason", "size_bytes"}, ...],
         "videos": {"total", "raw_present", "archive_verified", "raw_deleted", "archive_deleted", "keep"}}

    Bytes are file sizes (not disk blocks). ``raw`` counts the video files under ``raw_dir`` plus
    ingested raw files elsewhere that still exist. Opens (and disposes) its own engine when none
    is given.
    """
    from dashcam.db import make_engine

    own = engine is None
    engine = engine or make_engine(settings.db_url)
    try:
        decisions = plan_retention(engine, settings, now)
        with engine.connect() as conn:
            rows = _videos(conn)
    finally:
        if own:
            engine.dispose()
    archive_dir = Path(settings.archive_dir)
    video_bytes = image_bytes = 0
    if archive_dir.is_dir():
        for f in _walk_files(archive_dir):
            if f.suffix.lower() in VIDEO_SUFFIXES:
                video_bytes += _size(f)
            else:
                image_bytes += _size(f)
    raw_files = 0
    if settings.raw_dir is not None:
        raw_files = sum(1 for f in _walk_files(Path(settings.raw_dir)) if f.suffix.lower() in VIDEO_SUFFIXES)
    dels = [d for d in decisions if d.action == "delete"]
    return {
        "tiers": {
            "raw": {
                "path": str(settings.raw_dir) if settings.raw_dir else None,
                "bytes": raw_tier_bytes(settings, rows),
                "files": raw_files,
            },
            "work": {"path": str(settings.work_dir), "bytes": _tree_bytes(Path(settings.work_dir))},
            "archive": {
                "path": str(archive_dir),
                "bytes": video_bytes + image_bytes,
                "video_bytes": video_bytes,
                "image_bytes": image_bytes,
            },
        },
        "retention": {
            "raw_keep_days": settings.raw_keep_days,
            "raw_max_gb": settings.raw_max_gb,
            "archive_keep_days": settings.archive_keep_days,
            "would_free_bytes": {t: sum(d.size_bytes for d in dels if d.tier == t) for t in ("raw", "archive")},
            "deletions": [d.as_dict() for d in dels],
        },
        "protected": [
            {"video_id": d.video_id, "path": d.path, "reason": d.protected, "size_bytes": d.size_bytes}
            for d in decisions
            if d.protected and d.tier == "raw"
        ],
        "videos": {
            "total": len(rows),
            "raw_present": sum(1 for r in rows if r["raw_deleted_at"] is None and os.path.isfile(r["path"])),
            "archive_verified": sum(1 for r in rows if r["archive_verified_at"] is not None),
            "raw_deleted": sum(1 for r in rows if r["raw_deleted_at"] is not None),
            "archive_deleted": sum(1 for r in rows if r["archive_deleted_at"] is not None),
            "keep": sum(1 for r in rows if r["keep"]),
        },
    }
