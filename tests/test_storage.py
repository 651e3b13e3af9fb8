"""Storage (issue 16): archive verification, retention, the storage report, clip export.

Real files on a real folder tree in tmp_path (clips made by ffmpeg, archive copies by the real
transcode), the real results DB (SQLite and PostgreSQL), real ffmpeg, the real CLI in a
subprocess (kill -9), a real Prefect API for the flow.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
import pytest
import sqlalchemy as sa

from dashcam.archive import ArchiveError, MediaCheckError, archive_video, verify_media
from dashcam.db import VIDEOS, make_engine, save_video
from dashcam.records import PlateEvent
from dashcam.settings import Settings
from dashcam.storage import (
    apply_retention,
    plan_retention,
    protection,
    storage_report,
    verify_archive,
)
from dashcam.video import probe

NOW = datetime.now(UTC)
OLD = 30  # days: older than raw_keep_days=7


def make_clip(path: Path, seconds: float = 3.0, size: str = "320x240", fps: int = 10, colour: str = "testsrc") -> Path:
    """A real H.264 MP4 made by ffmpeg (a test pattern; ``colour``: lavfi source)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            "ffmpeg",
            "-nostdin",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            f"{colour}=size={size}:rate={fps}:duration={seconds}",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
            str(path),
        ],
        check=True,
    )
    return path


def _jpeg(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = np.full((40, 120, 3), 200, np.uint8)
    cv2.putText(img, "AB123C", (4, 28), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (0, 0, 0), 2)
    cv2.imwrite(str(path), img)
    return str(path)


def _event(video_id: str, work: Path, track_id: int = 1, pts: float = 1.5) -> PlateEvent:
    return PlateEvent(
        video_id=video_id,
        track_id=track_id,
        frame_idx=int(pts * 10),
        pts_s=pts,
        ts=NOW,
        final_plate="AB123C",
        plate_confidence=0.9,
        car_bbox=(10.0, 10.0, 200.0, 200.0),
        plate_bbox=(50.0, 150.0, 120.0, 170.0),
        n_reads=3,
        first_frame_idx=0,
        last_frame_idx=20,
        crop_path=_jpeg(work / f"crop{track_id}.jpg"),
        thumb_path=_jpeg(work / f"thumb{track_id}.jpg"),
    )


class Tree:
    """A data dir + raw tree + DB with ingested (archived, verified, persisted) videos."""

    def __init__(self, tmp_path: Path, db_url: str, **settings):
        self.root = tmp_path
        self.raw = tmp_path / "raw"
        self.settings = Settings(
            data_dir=tmp_path / "data",
            database_url=db_url,
            raw_dir=self.raw,
            camera_tz="UTC",
            archive_height=240,
            **settings,
        )
        self.engine = make_engine(db_url)
        self._template: Path | None = None

    def add(
        self, rel: str, *, verified: bool = True, age_days: float = OLD, template: bool = True, seconds: float = 3.0
    ) -> dict:
        """Ingest ``raw/<rel>`` (a real clip) as persist would; ages file mtime and ingested_at."""
        path = self.raw / rel
        if template and seconds == 3.0:
            if self._template is None:
                self._template = make_clip(self.root / "template.mp4")
            path.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self._template, path)
        else:
            make_clip(path, seconds=seconds)
        info = probe(path, camera_tz="UTC")
        # copies share content (and so the content-derived id): give each file its own id
        info = info.model_copy(update={"video_id": f"v{abs(hash(rel)) % 10**10:010d}"})
        work = self.root / "work" / info.video_id
        events = [_event(info.video_id, work)]
        video, archived = archive_video(info, events, self.settings.archive_dir, height=240, preset="ultrafast")
        check = verify_archive(info, video, archived, height=240) if verified else None
        save_video(self.engine, info, archived, str(video), archive_check=check)
        self.age(info.video_id, path, age_days)
        return {"id": info.video_id, "path": path, "archive": video, "info": info, "events": archived, "check": check}

    def add_copy(self, of: dict, rel: str, age_days: float = OLD) -> dict:
        """Another raw file byte-identical to ``of``'s, archived as a byte-identical copy of ``of``'s
        verified archive (so its verification holds unchanged): a fast way to many videos."""
        path = self.raw / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(of["path"], path)
        vid = f"v{abs(hash(rel)) % 10**10:010d}"
        info = of["info"].model_copy(update={"video_id": vid, "path": str(path)})
        base = Path(self.settings.archive_dir) / vid
        video = base / of["archive"].name
        events = []
        for ev in of["events"]:
            upd = {"video_id": vid}
            for f, sub in (("crop_path", "plates"), ("thumb_path", "thumbs")):
                dst = base / sub / Path(getattr(ev, f)).name
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(getattr(ev, f), dst)
                upd[f] = str(dst)
            events.append(ev.model_copy(update=upd))
        shutil.copyfile(of["archive"], video)
        check = {**of["check"], "archive_verified_at": datetime.now(UTC)}
        save_video(self.engine, info, events, str(video), archive_check=check)
        self.age(vid, path, age_days)
        return {"id": vid, "path": path, "archive": video, "info": info, "events": events, "check": check}

    def age(self, video_id: str, path: Path, days: float) -> None:
        t = NOW - timedelta(days=days)
        os.utime(path, (t.timestamp(), t.timestamp()))
        with self.engine.begin() as conn:
            conn.execute(sa.update(VIDEOS).where(VIDEOS.c.id == video_id).values(ingested_at=t, recording_start=t))

    def row(self, video_id: str) -> dict:
        with self.engine.connect() as conn:
            return dict(conn.execute(sa.select(VIDEOS).where(VIDEOS.c.id == video_id)).mappings().one())

    def run(self, **over) -> list:
        s = self.settings.model_copy(update=over) if over else self.settings
        return apply_retention(self.engine, s, plan_retention(self.engine, s))


@pytest.fixture
def tree(tmp_path, db_url):
    t = Tree(tmp_path, db_url)
    yield t
    t.engine.dispose()


def test_protection_rules():
    assert protection("/nas/raw/DCIM/Movie/RO/2024_0315_143022_0001F.MP4") == "camera folder RO/"
    assert protection("/nas/raw/Event/2024_0315_143022_0001F.MP4") == "camera folder Event/"
    assert protection("/nas/raw/parking/2024_0315_143022_0001F.MP4") == "camera folder parking/"
    assert protection("/nas/raw/Movie/2024_0315_143022_0001F_RO.MP4") == "locked name (RO)"
    assert protection("/nas/raw/Movie/RO_2024_0315_143022_0001F.MP4") == "locked name (RO)"
    assert protection("/nas/raw/Record/20240315_143022_EF.mp4") == "BlackVue E recording"
    assert protection("/nas/raw/Record/20240315_143022_NF.mp4") is None
    # "RO" must be a whole token or folder: a road trip, a ROute folder, a name with "ro" inside stay unprotected
    assert protection("/nas/raw/Movie/2024_0315_143022_0001F.MP4") is None
    assert protection("/nas/raw/roadtrip/route_2024_0315_ROAD.MP4") is None
    assert protection("/nas/raw/Movie/2024_0315_143022_0001R.MP4") is None


def test_verify_archive_passes_then_a_truncated_copy_fails(tmp_path):
    src = make_clip(tmp_path / "raw" / "2024_0315_143022_0001F.MP4", seconds=4.0)
    info = probe(src, camera_tz="UTC")
    events = [_event(info.video_id, tmp_path / "work")]
    video, archived = archive_video(info, events, tmp_path / "archive", height=240, preset="ultrafast")
    check = verify_archive(info, video, archived, height=240)
    assert check["archive_bytes"] == video.stat().st_size > 0
    assert check["archive_images_bytes"] == sum(
        Path(p).stat().st_size for e in archived for p in (e.crop_path, e.thumb_path)
    )
    with pytest.raises(MediaCheckError, match="frame size"):  # not the configured archive size
        verify_archive(info, video, archived, height=120)
    # a crop that was removed from the archive
    Path(archived[0].thumb_path).rename(tmp_path / "gone.jpg")
    with pytest.raises(ArchiveError, match="thumbnail of track 1 is missing"):
        verify_archive(info, video, archived, height=240)
    os.rename(tmp_path / "gone.jpg", archived[0].thumb_path)
    # truncated copy (what a full disk or a killed copy leaves)
    data = video.read_bytes()
    video.write_bytes(data[: len(data) // 2])
    with pytest.raises(MediaCheckError):
        verify_archive(info, video, archived, height=240)


def test_raw_deleted_only_when_finalized_verified_and_old(tree):
    old = tree.add("Movie/2024_0101_100000_0001F.MP4")
    young = tree.add("Movie/2024_0101_100100_0002F.MP4", age_days=2)
    unverified = tree.add("Movie/2024_0101_100200_0003F.MP4", verified=False)
    locked = tree.add("Movie/RO/2024_0101_100300_0004F.MP4")
    event = tree.add("Event/2024_0101_100400_0005F.MP4")
    ro_name = tree.add("Movie/2024_0101_100500_0006F_RO.MP4")
    kept = tree.add("Movie/2024_0101_100600_0007F.MP4")
    not_ingested = tree.raw / "Movie" / "2024_0101_100700_0008F.MP4"
    shutil.copyfile(old["path"], not_ingested)
    os.utime(not_ingested, ((NOW - timedelta(days=OLD)).timestamp(),) * 2)
    # keep mark through the real CLI
    env = dict(os.environ, PYTHONPATH=os.getcwd(), DASHCAM_DATABASE_URL=tree.settings.db_url)
    dashcam = [sys.executable, "-m", "dashcam.cli"]
    r = subprocess.run([*dashcam, "keep", kept["id"]], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert subprocess.run([*dashcam, "keep", "no-such-video"], env=env, capture_output=True, text=True).returncode == 1

    # dry run: lists, deletes nothing
    r = subprocess.run(
        [*dashcam, "retention", "--dry-run", "-v", "--raw-dir", str(tree.raw)], env=env, capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
    assert f"would delete raw {old['path']}" in r.stdout
    assert r.stdout.count("would delete") == 1
    assert all(p["path"].exists() for p in (old, young, unverified, locked, event, ro_name, kept))

    r = subprocess.run(
        [*dashcam, "retention", "--apply", "--raw-dir", str(tree.raw)], env=env, capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
    assert f"deleted raw {old['path']}" in r.stdout and "raw_keep_days" in r.stdout
    assert not old["path"].exists() and old["archive"].exists()
    assert tree.row(old["id"])["raw_deleted_at"] is not None
    for v in (young, unverified, locked, event, ro_name, kept):
        assert v["path"].exists(), v["path"]
        assert tree.row(v["id"])["raw_deleted_at"] is None
    assert not_ingested.exists()
    # rerun: idempotent, nothing more to do
    assert tree.run() == []
    # the keep mark cleared: now it goes
    assert subprocess.run([*dashcam, "keep", "--unkeep", kept["id"]], env=env).returncode == 0
    assert [d.video_id for d in tree.run()] == [kept["id"]]
    assert not kept["path"].exists()


def test_watch_hit_file_survives(tree):
    from datetime import datetime

    from dashcam.db import WatchHit
    from dashcam.watch_lists import add_entry

    hit = tree.add("Movie/2024_0101_110000_0001F.MP4")
    entry = add_entry(tree.engine, "XSNB23", label="hit and run")
    with tree.engine.begin() as conn:  # the row dashcam.watch_lists.match_video stores for a hit
        conn.execute(
            sa.insert(WatchHit.__table__).values(
                entry_id=entry["id"],
                event_id=f"{hit['id']}:1",
                video_id=hit["id"],
                score=1.0,
                matched_text="XSNB23",
                created_at=datetime.now(UTC),
            )
        )
    assert tree.run() == []
    assert hit["path"].exists()


def test_corrupted_archive_copy_keeps_its_raw(tree):
    v = tree.add("Movie/2024_0101_120000_0001F.MP4")
    data = v["archive"].read_bytes()
    v["archive"].write_bytes(data[: len(data) // 2])  # truncated after it was verified
    [d] = plan_retention(tree.engine, tree.settings)
    assert d.action == "keep" and "archive copy changed since verified" in d.reason
    assert tree.run() == [] and v["path"].exists()
    # same size but no longer playable (moov box wiped): caught by the re-verification before the unlink
    v["archive"].write_bytes(data.replace(b"moov", b"free"))
    assert plan_retention(tree.engine, tree.settings)[0].action == "delete"
    assert tree.run() == []
    assert v["path"].exists() and tree.row(v["id"])["raw_deleted_at"] is None


def test_disk_budget_deletes_oldest_first(tree):
    first = tree.add("Movie/2024_0101_130000_0000F.MP4", age_days=1)
    vids = [first] + [tree.add_copy(first, f"Movie/2024_0101_13{i:02d}00_000{i}F.MP4", age_days=1) for i in range(1, 4)]
    for i, v in enumerate(vids):  # recording order: vids[0] oldest
        tree.age(v["id"], v["path"], 4 - i * 0.5)
    size = vids[0]["path"].stat().st_size
    assert tree.run() == []  # all younger than 7 days, no budget
    done = tree.run(raw_max_gb=(2.5 * size) / 1e9)  # room for two and a half files: the two oldest go
    assert [d.video_id for d in done] == [vids[0]["id"], vids[1]["id"]]
    assert all(d.rule == "budget" and "disk budget" in d.reason for d in done)
    assert [v["path"].exists() for v in vids] == [False, False, True, True]
    assert tree.run(raw_max_gb=(2.5 * size) / 1e9) == []


def test_archive_keep_days_removes_old_copies_keeps_images_and_rows(tree):
    v = tree.add("Movie/2024_0101_140000_0001F.MP4", age_days=1)
    prot = tree.add("Event/2024_0101_140100_0002F.MP4")
    old_t = (NOW - timedelta(days=400)).timestamp()
    for x in (v, prot):
        os.utime(x["archive"], (old_t, old_t))
        tree.age(x["id"], x["path"], 400)
    os.utime(v["path"])  # the raw file itself is young: it stays
    done = tree.run(archive_keep_days=365)
    assert [(d.tier, d.video_id) for d in done] == [("archive", v["id"])]
    assert not v["archive"].exists() and v["path"].exists()
    assert all(Path(p).exists() for p in (v["events"][0].crop_path, v["events"][0].thumb_path))
    row = tree.row(v["id"])
    assert row["archive_deleted_at"] is not None and row["n_events"] == 1
    assert prot["archive"].exists()
    # with its archive copy gone, the raw file is never deleted any more
    tree.age(v["id"], v["path"], OLD)
    assert tree.run(archive_keep_days=365) == [] and v["path"].exists()


def test_kill_9_mid_run_then_rerun_deletes_exactly_the_eligible_set(tree):
    first = tree.add("Movie/2024_0102_100000_0000F.MP4")
    eligible, protected = [first], []
    for i in range(1, 24):
        if i % 4 == 3:
            protected.append(tree.add_copy(first, f"Movie/RO/2024_0102_10{i:02d}00_{i:04d}F.MP4"))
        elif i % 4 == 2:
            protected.append(tree.add_copy(first, f"Movie/2024_0102_10{i:02d}00_{i:04d}F.MP4", age_days=1))
        else:
            eligible.append(tree.add_copy(first, f"Movie/2024_0102_10{i:02d}00_{i:04d}F.MP4"))
    env = dict(os.environ, PYTHONPATH=os.getcwd(), DASHCAM_DATABASE_URL=tree.settings.db_url)
    proc = subprocess.Popen(
        [sys.executable, "-m", "dashcam.cli", "retention", "--apply"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and all(v["path"].exists() for v in eligible):
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    gone = [v for v in eligible if not v["path"].exists()]
    assert 0 < len(gone) < len(eligible), f"kill landed outside the run ({len(gone)} of {len(eligible)} deleted)"
    assert all(v["path"].exists() for v in protected)
    recorded = {v["id"] for v in eligible if tree.row(v["id"])["raw_deleted_at"] is not None}
    assert recorded <= {v["id"] for v in gone}  # recorded only after the unlink
    done = tree.run()
    assert all(not v["path"].exists() for v in eligible)
    assert all(v["path"].exists() for v in protected)
    assert {d.video_id for d in done} == {v["id"] for v in eligible} - recorded
    for v in eligible:
        assert tree.row(v["id"])["raw_deleted_at"] is not None
    for v in protected:
        assert tree.row(v["id"])["raw_deleted_at"] is None
    assert tree.run() == []


def test_storage_report(tree):
    old = tree.add("Movie/2024_0101_150000_0001F.MP4")
    locked = tree.add("Movie/RO/2024_0101_150100_0002F.MP4")
    rep = storage_report(tree.settings, tree.engine)
    size = old["path"].stat().st_size
    assert rep["tiers"]["raw"]["bytes"] == 2 * size and rep["tiers"]["raw"]["files"] == 2
    assert rep["tiers"]["archive"]["video_bytes"] == old["archive"].stat().st_size + locked["archive"].stat().st_size
    assert rep["retention"]["would_free_bytes"]["raw"] == size
    assert [p["path"] for p in rep["protected"]] == [str(locked["path"])]
    json.dumps(rep)  # JSON-ready
    env = dict(
        os.environ,
        PYTHONPATH=os.getcwd(),
        DASHCAM_DATABASE_URL=tree.settings.db_url,
        DASHCAM_DATA_DIR=str(tree.settings.data_dir),
    )
    r = subprocess.run(
        [sys.executable, "-m", "dashcam.cli", "storage", "--json", "--raw-dir", str(tree.raw)],
        env=env,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["retention"]["would_free_bytes"]["raw"] == size
    r = subprocess.run(
        [sys.executable, "-m", "dashcam.cli", "storage", "--raw-dir", str(tree.raw)],
        env=env,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0 and "protected" in r.stdout and "camera folder RO/" in r.stdout


def test_clip_export_single_and_front_rear_side_by_side(tree):
    from dashcam.clip import ClipError, export_clip, partner_stem

    assert partner_stem("2024_0315_143022_0001F") == ("F", "2024_0315_143022_0001R")
    assert partner_stem("2024_0315_143022_0001_R") == ("R", "2024_0315_143022_0001_F")
    assert partner_stem("CAR") is None
    front = tree.add("Movie/2024_0103_100000_0001F.MP4", template=False, seconds=6.0)
    out = tree.root / "clips" / "a.mp4"
    res = export_clip(tree.engine, f"{front['id']}:1", before_s=1.0, after_s=2.0, out=out)  # pts 1.5 s
    facts = verify_media(out, "video", codec="h264")
    assert abs(facts["duration_s"] - 3.0) < 0.25 and (facts["width"], facts["height"]) == (320, 240)
    assert res["sources"] == [str(front["path"])]
    # raw gone: cut from the archive copy
    front["path"].unlink()
    res = export_clip(tree.engine, f"{front['id']}:1", before_s=5.0, after_s=1.0, out=out)
    assert res["sources"] == [str(front["archive"])] and abs(res["duration_s"] - 2.5) < 0.25  # clamped at 0 s
    # a rear channel of the same moment: side by side, front left
    make_clip(front["path"], seconds=6.0)
    rear = tree.add("Movie/2024_0103_100000_0001R.MP4", template=False, seconds=6.0)
    tree.age(rear["id"], rear["path"], OLD)
    tree.age(front["id"], front["path"], OLD)
    res = export_clip(tree.engine, f"{rear['id']}:1", before_s=1.0, after_s=1.0, out=out)
    assert res["sources"] == [str(front["path"]), str(rear["path"])]
    assert (res["width"], res["height"]) == (640, 240) and abs(res["duration_s"] - 2.0) < 0.25
    with pytest.raises(ClipError, match="no plate event"):
        export_clip(tree.engine, "nope:1", out=out)


@pytest.fixture(scope="module")
def prefect_api(tmp_path_factory):
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from prefect_server import PrefectServer

    server = PrefectServer(tmp_path_factory.mktemp("prefect-home")).start()
    try:
        with temporary_settings({PREFECT_API_URL: server.api_url}):
            yield server
    finally:
        server.stop()


def _artifact(key: str) -> list[dict]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        arts = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))
    latest = max(arts, key=lambda a: a.created)
    return json.loads(latest.data) if isinstance(latest.data, str) else latest.data


def test_retention_flow_dry_run_then_apply_publishes_table(prefect_api, tmp_path, sqlite_url):
    from flows.retention import retention

    tree = Tree(tmp_path, sqlite_url)
    try:
        old = tree.add("Movie/2024_0101_160000_0001F.MP4")
        locked = tree.add_copy(old, "Movie/RO/2024_0101_160100_0002F.MP4")
        dry = retention(apply=False, settings=tree.settings)
        assert [d["path"] for d in dry["planned"]] == [str(old["path"])] and dry["deleted"] == []
        assert old["path"].exists()
        rows = _artifact("retention")
        assert [(r["action"], r["path"]) for r in rows] == [
            ("would delete", str(old["path"])),
            ("protected", str(locked["path"])),
        ]
        res = retention(apply=True, settings=tree.settings)
        assert [d["video_id"] for d in res["deleted"]] == [old["id"]] and res["freed_bytes"] == old["info"].size_bytes
        assert not old["path"].exists() and locked["path"].exists()
        rows = _artifact("retention")
        assert rows[0]["action"] == "deleted" and "raw_keep_days" in rows[0]["reason"]
    finally:
        tree.engine.dispose()


@pytest.mark.slow
def test_ingest_records_verified_archive_and_clip_of_it_plays(prefect_api, tmp_path, db_url):
    """End to end on a real clip with a readable plate: the archive stage's verification lands on
    the row, and the clip of the event (from the archive once the raw file is gone) plays."""
    from helpers import model_dir, shared_dir

    from dashcam.clip import export_clip
    from flows.ingest import ingest

    raw = tmp_path / "raw" / "Movie"
    raw.mkdir(parents=True)
    clip = raw / "Video10_2.avi"
    shutil.copyfile(shared_dir() / "data/plates-video/TrainingSet/Categorie I/Video10_2.avi", clip)
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=db_url,
        model_dir=model_dir(),
        camera_tz="UTC",
        raw_dir=tmp_path / "raw",
    )
    [summary] = ingest([str(clip)], settings=settings)
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            row = dict(conn.execute(sa.select(VIDEOS).where(VIDEOS.c.id == summary.video_id)).mappings().one())
        assert row["archive_verified_at"] is not None and not row["keep"]
        assert row["archive_bytes"] == Path(summary.archive_path).stat().st_size
        assert row["archive_images_bytes"] > 0
        # young: retention keeps it; aged: it goes
        assert [d.action for d in plan_retention(engine, settings)] == ["keep"]
        t = NOW - timedelta(days=OLD)
        os.utime(clip, (t.timestamp(), t.timestamp()))
        with engine.begin() as conn:
            conn.execute(sa.update(VIDEOS).values(ingested_at=t))
        [done] = apply_retention(engine, settings, plan_retention(engine, settings))
        assert done.path == str(clip) and not clip.exists()
        with engine.connect() as conn:
            event_id = conn.execute(
                sa.text("SELECT id FROM vehicles WHERE video_id = :v"), {"v": summary.video_id}
            ).scalar_one()
        res = export_clip(engine, event_id, before_s=1.0, after_s=1.0, out=tmp_path / "clip.mp4")
        assert res["sources"] == [summary.archive_path]
        facts = verify_media(tmp_path / "clip.mp4", "video", codec="h264")
        assert 1.0 <= facts["duration_s"] <= 2.3  # 2 s asked, clamped by the 3 s recording
    finally:
        engine.dispose()


def test_retention_deployment_is_daily_on_pool_server(prefect_api, monkeypatch):
    from prefect.client.orchestration import get_client

    from deployments.register import deploy_flows, ensure_work_pools

    monkeypatch.setenv("PREFECT_API_URL", prefect_api.api_url)  # for the `prefect deploy` subprocess
    ensure_work_pools()
    deploy_flows()
    with get_client(sync_client=True) as client:
        dep = client.read_deployment_by_name("retention/daily")
    assert dep.work_pool_name == "server" and dep.parameters == {"apply": True}
    assert [s.schedule.cron for s in dep.schedules] == ["30 3 * * *"]
