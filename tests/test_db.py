"""dashcam.db against real SQLite and PostgreSQL databases (same code path, no mocks)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import event

from dashcam.db import (
    VEHICLES,
    VIDEOS,
    DatabaseError,
    get_video,
    make_engine,
    metadata,
    migrate,
    query_events,
    save_video,
)
from dashcam.records import PlateEvent, VideoInfo

T0 = datetime(2024, 5, 17, 8, 30, 0, tzinfo=UTC)
CEST = timezone(timedelta(hours=2))


def make_info(video_id: str = "vid-a", **kw) -> VideoInfo:
    values = dict(
        path=f"/videos/{video_id}_F.MP4",
        video_id=video_id,
        size_bytes=5_000_000_000,  # > 2**31: needs BIGINT
        duration_s=60.0,
        fps=30.0,
        frame_count=1800,
        width=3840,
        height=2160,
        codec="hevc",
        recording_start=T0,
        recording_start_source="filename",
        camera="F",
    )
    values.update(kw)
    return VideoInfo(**values)


def make_event(
    video_id: str = "vid-a", track_id: int = 1, plate: str = "AB123C", offset_s: float = 0.0, **kw
) -> PlateEvent:
    values = dict(
        video_id=video_id,
        track_id=track_id,
        frame_idx=int(offset_s * 30),
        pts_s=offset_s,
        ts=T0 + timedelta(seconds=offset_s),
        final_plate=plate,
        plate_confidence=0.875,
        car_bbox=(100.0, 200.5, 900.0, 800.25),
        plate_bbox=(400.0, 600.0, 520.5, 640.0),
        n_reads=4,
        first_frame_idx=int(offset_s * 30) - 10,
        last_frame_idx=int(offset_s * 30) + 10,
        crop_path=f"/archive/{video_id}/crops/{track_id}.jpg",
        thumb_path=f"/archive/{video_id}/thumbs/{track_id}.jpg",
        lat=52.1,
        lon=5.2,
        speed_mps=13.5,
        heading_deg=271.0,
    )
    values.update(kw)
    return PlateEvent(**values)


def three_events(video_id: str = "vid-a") -> list[PlateEvent]:
    # deliberately not in ts order; one without GPS/paths (NULLs)
    return [
        make_event(video_id, 3, "XY999Z", 30.0),
        make_event(video_id, 1, "AB123C", 10.0),
        make_event(
            video_id,
            2,
            "AB12CD",
            20.0,
            lat=None,
            lon=None,
            speed_mps=None,
            heading_deg=None,
            crop_path=None,
            thumb_path=None,
        ),
    ]


def count(engine, table: sa.Table, **where) -> int:
    stmt = sa.select(sa.func.count()).select_from(table)
    for k, v in where.items():
        stmt = stmt.where(table.c[k] == v)
    with engine.connect() as conn:
        return conn.execute(stmt).scalar_one()


@pytest.fixture
def engine(db_url):
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


def _head() -> str:
    from alembic.script import ScriptDirectory

    from dashcam.db import alembic_config

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def test_migrate_from_empty(db_url):
    eng = make_engine(db_url, migrate_schema=False)
    try:
        assert sa.inspect(eng).get_table_names() == []
        migrate(db_url)
        migrate(eng)  # idempotent
        assert {"alembic_version", "videos", "vehicles", "routes"} <= set(sa.inspect(eng).get_table_names())
        with eng.connect() as conn:
            assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all() == [_head()]
        uniques = sa.inspect(eng).get_unique_constraints("vehicles")
        assert [sorted(u["column_names"]) for u in uniques] == [["track_id", "video_id"]]
    finally:
        eng.dispose()


def test_models_match_migrations(engine):
    """The hand-written migrations create exactly what the models describe."""
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
        diff = compare_metadata(ctx, metadata)
    assert diff == []


def test_datetimes_are_timestamptz_on_postgresql(pg_url):
    eng = make_engine(pg_url)
    try:
        cols = {c["name"]: c["type"] for c in sa.inspect(eng).get_columns("vehicles")}
        assert cols["ts"].timezone is True
        assert {c["name"]: c["type"] for c in sa.inspect(eng).get_columns("videos")}["size_bytes"].python_type is int
    finally:
        eng.dispose()


def test_save_then_query_returns_all_columns(engine):
    info = make_info(recording_start=datetime(2024, 5, 17, 10, 30, tzinfo=CEST))  # non-UTC input
    events = three_events()
    events[0] = events[0].model_copy(update={"ts": (T0 + timedelta(seconds=30)).astimezone(CEST)})
    before = datetime.now(UTC)
    assert save_video(engine, info, events, "/archive/vid-a.mp4") == 3

    rows = query_events(engine)
    assert [r["track_id"] for r in rows] == [1, 2, 3]  # ordered by ts
    assert all(set(r) == set(VEHICLES.c.keys()) for r in rows)
    r1, r2, r3 = rows
    created = datetime.fromisoformat(r1["created_at"])
    assert created.tzinfo is not None and created >= before - timedelta(seconds=1)
    assert r1 == {
        "id": "vid-a:1",
        "track_id": 1,
        "video_id": "vid-a",
        "frame_idx": 300,
        "ts": "2024-05-17T08:30:10+00:00",
        "final_plate": "AB123C",
        "plate_confidence": 0.875,
        "car_bbox": [100.0, 200.5, 900.0, 800.25],
        "plate_bbox": [400.0, 600.0, 520.5, 640.0],
        "created_at": r1["created_at"],
        "video_path": "/videos/vid-a_F.MP4",
        "pts_s": 10.0,
        "lat": 52.1,
        "lon": 5.2,
        "speed_mps": 13.5,
        "heading_deg": 271.0,
        "crop_path": "/archive/vid-a/crops/1.jpg",
        "thumb_path": "/archive/vid-a/thumbs/1.jpg",
        "n_reads": 4,
        "first_frame_idx": 290,
        "last_frame_idx": 310,
        "confusion_key": "A81236",
    }
    assert r2["lat"] is None and r2["crop_path"] is None and r2["heading_deg"] is None
    assert r3["ts"] == "2024-05-17T08:30:30+00:00"  # given in +02:00, stored and returned as UTC

    video = get_video(engine, "vid-a")
    assert set(video) == set(VIDEOS.c.keys())
    assert datetime.fromisoformat(video.pop("ingested_at")) >= before - timedelta(seconds=1)
    assert video == {
        "id": "vid-a",
        "path": "/videos/vid-a_F.MP4",
        "size_bytes": 5_000_000_000,
        "duration_s": 60.0,
        "fps": 30.0,
        "width": 3840,
        "height": 2160,
        "codec": "hevc",
        "recording_start": "2024-05-17T08:30:00+00:00",
        "recording_start_source": "filename",
        "camera": "F",
        "archive_path": "/archive/vid-a.mp4",
        "n_events": 3,
        "damage": None,
        # storage (migration 0005): unverified archive, nothing deleted, no keep mark
        "archive_verified_at": None,
        "archive_bytes": None,
        "archive_images_bytes": None,
        "raw_deleted_at": None,
        "archive_deleted_at": None,
        "keep": False,
    }
    assert get_video(engine, "nope") is None
    assert query_events(engine, video_id="nope") == []


def test_save_twice_gives_identical_rows(engine):
    save_video(engine, make_info(), three_events(), "/archive/vid-a.mp4")
    rows1, video1 = query_events(engine), get_video(engine, "vid-a")
    save_video(engine, make_info(), three_events(), "/archive/vid-a.mp4")
    rows2, video2 = query_events(engine), get_video(engine, "vid-a")
    assert rows2 == rows1  # ids, values and created_at
    assert [r["id"] for r in rows2] == ["vid-a:1", "vid-a:2", "vid-a:3"]
    assert video2["ingested_at"] >= video1["ingested_at"]
    video1.pop("ingested_at"), video2.pop("ingested_at")
    assert video2 == video1
    assert count(engine, VEHICLES) == 3 and count(engine, VIDEOS) == 1


def test_resave_replaces_events(engine):
    save_video(engine, make_info("vid-b"), [make_event("vid-b", 7, "ZZ1")], None)
    save_video(engine, make_info(), three_events(), None)
    n = save_video(engine, make_info(), [make_event(track_id=2, plate="NEW42", offset_s=5.0)], "/archive/new.mp4")
    assert n == 1
    rows = query_events(engine, video_id="vid-a")
    assert [(r["id"], r["final_plate"]) for r in rows] == [("vid-a:2", "NEW42")]
    assert get_video(engine, "vid-a")["n_events"] == 1
    assert get_video(engine, "vid-a")["archive_path"] == "/archive/new.mp4"
    assert [r["id"] for r in query_events(engine, video_id="vid-b")] == ["vid-b:7"]  # untouched
    save_video(engine, make_info(), [], None)
    assert query_events(engine, video_id="vid-a") == []
    assert get_video(engine, "vid-a")["n_events"] == 0
    assert count(engine, VEHICLES) == 1


def test_damage_is_stored_and_cleared(engine):
    """videos.damage: the one-line damage of a partly decoded video; NULL again after a clean save."""
    line = "damaged: frames lost at frame 16 (1.3 s of 3.0 s), decoding stopped there; ffmpeg said: mjpeg: dht"
    save_video(engine, make_info(), three_events(), None, damage=line)
    assert get_video(engine, "vid-a")["damage"] == line
    save_video(engine, make_info(), three_events(), None)
    assert get_video(engine, "vid-a")["damage"] is None


def test_plate_wildcard_search(engine):
    save_video(engine, make_info(), three_events(), None)
    save_video(engine, make_info("vid-b"), [make_event("vid-b", 1, "AB1", 40.0)], None)

    def plates(**kw):
        return [r["final_plate"] for r in query_events(engine, **kw)]

    assert plates(plate="AB*") == ["AB123C", "AB12CD", "AB1"]
    assert plates(plate="ab*") == ["AB123C", "AB12CD", "AB1"]  # case-insensitive
    assert plates(plate="ab123c") == ["AB123C"]  # no wildcard: whole plate
    assert plates(plate="AB12") == []
    assert plates(plate="*9?Z") == ["XY999Z"]
    assert plates(plate="??12*") == ["AB123C", "AB12CD"]
    assert plates(plate="AB?") == ["AB1"]
    assert plates(plate="*") == ["AB123C", "AB12CD", "XY999Z", "AB1"]
    assert plates(plate="AB%") == [] and plates(plate="AB_") == []  # SQL wildcards are literal
    assert plates(plate="AB*", video_id="vid-b") == ["AB1"]


def test_events_of_another_video_are_rejected(engine):
    with pytest.raises(ValueError, match="vid-x"):
        save_video(engine, make_info(), [make_event("vid-x")], None)
    assert count(engine, VIDEOS) == 0


def test_failure_mid_batch_leaves_previous_rows_intact(engine):
    save_video(engine, make_info(), three_events(), "/archive/old.mp4")
    rows_before, video_before = query_events(engine), get_video(engine, "vid-a")

    # The video upsert and the delete succeed, then the INSERT batch hits a constraint
    # violation in its middle (track 5 twice): the whole transaction must roll back.
    bad = [
        make_event(track_id=4, plate="NEW1"),
        make_event(track_id=5, plate="NEW2"),
        make_event(track_id=5, plate="NEW3"),
        make_event(track_id=6, plate="NEW4"),
    ]
    with pytest.raises(DatabaseError, match="saving video vid-a .*rolled back and nothing was written") as ei:
        save_video(engine, make_info(duration_s=1.0), bad, "/archive/new.mp4")
    assert isinstance(ei.value.__cause__, sa.exc.IntegrityError)

    assert query_events(engine) == rows_before
    assert get_video(engine, "vid-a") == video_before  # archive_path, duration, ingested_at unchanged
    assert count(engine, VEHICLES) == 3


def test_connection_dropped_mid_transaction_postgresql(pg_url, pg_server):
    """The server kills our backend just as the vehicles INSERT runs: nothing is half-written."""
    engine = make_engine(pg_url)
    try:
        save_video(engine, make_info(), three_events(), "/archive/old.mp4")
        rows_before, video_before = query_events(engine), get_video(engine, "vid-a")
        killed = []

        def kill_own_backend(conn, cursor, statement, params, context, executemany):
            if statement.lstrip().upper().startswith("INSERT INTO VEHICLES") and not killed:
                pid = conn.connection.dbapi_connection.info.backend_pid
                with pg_server.connect_admin() as admin:
                    killed.append(admin.execute("SELECT pg_terminate_backend(%s, 10000)", [pid]).fetchone()[0])

        event.listen(engine, "before_cursor_execute", kill_own_backend)
        try:
            with pytest.raises(DatabaseError, match="rolled back and nothing was written") as ei:
                save_video(
                    engine, make_info(duration_s=1.0), [make_event(track_id=9, plate="NEW9")], "/archive/new.mp4"
                )
        finally:
            event.remove(engine, "before_cursor_execute", kill_own_backend)
        assert killed == [True]
        assert isinstance(ei.value.__cause__, sa.exc.OperationalError)
        assert "vid-a" in str(ei.value) and "127.0.0.1" in str(ei.value)

        # same engine (pool_pre_ping replaces the dead connection): the old rows are intact
        assert query_events(engine) == rows_before
        assert get_video(engine, "vid-a") == video_before
        # and the engine still works
        assert save_video(engine, make_info(), [make_event(track_id=9, plate="NEW9")], None) == 1
        assert [r["id"] for r in query_events(engine)] == ["vid-a:9"]
    finally:
        engine.dispose()


def test_unreachable_postgresql_raises_database_error():
    import socket

    with socket.socket() as s:  # a port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"postgresql+psycopg://dashcam:s3cret@127.0.0.1:{port}/dashcam?connect_timeout=5"
    with pytest.raises(DatabaseError, match=f"cannot connect to database .*127.0.0.1:{port}/dashcam") as ei:
        make_engine(url)
    assert "s3cret" not in str(ei.value)
    assert isinstance(ei.value.__cause__, sa.exc.OperationalError)

    engine = make_engine(url, migrate_schema=False)
    with pytest.raises(DatabaseError, match="saving video vid-a .*nothing was written"):
        save_video(engine, make_info(), three_events(), None)
    with pytest.raises(DatabaseError, match="querying events"):
        query_events(engine)
    engine.dispose()


def test_unopenable_sqlite_raises_database_error(tmp_path):
    url = f"sqlite:///{tmp_path}"  # a directory, not a database file
    with pytest.raises(DatabaseError, match="cannot connect to database"):
        make_engine(url)
