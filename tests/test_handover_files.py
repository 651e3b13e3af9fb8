"""The library side of the thin tasks (issue 13, point 5): the route file, the manifest's readers
and the report markdown, on a real probed clip and a real GPX drive. No Prefect, no mocks."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from helpers import shared_dir

from dashcam.gps import load_gpx, read_route, route_points, write_route
from dashcam.records import AnalyzeResult, Manifest, PlateEvent, write_jsonl
from dashcam.report import video_report_markdown
from dashcam.video import probe

CLIP = shared_dir() / "data/plates-video/TrainingSet/Categorie I/Video3_2.avi"
CAR = shared_dir() / "data/gps/tracks/gpxpy/around-visnjan-with-car.gpx"

pytestmark = pytest.mark.skipif(not CLIP.exists() or not CAR.exists(), reason="shared test data not found")


def _event(video_id: str, ts, track_id: int, crop: str | None) -> PlateEvent:
    return PlateEvent(
        video_id=video_id,
        track_id=track_id,
        frame_idx=12,
        pts_s=1.0,
        ts=ts,
        final_plate="AB123C",
        plate_confidence=0.91,
        car_bbox=(0, 0, 10, 10),
        plate_bbox=(1, 1, 5, 5),
        n_reads=3,
        first_frame_idx=0,
        last_frame_idx=20,
        crop_path=crop,
        lat=45.25,
        lon=13.75,
    )


@pytest.fixture
def manifest(tmp_path) -> Manifest:
    info = probe(CLIP, camera_tz="UTC")
    work = tmp_path / "work" / info.video_id
    work.mkdir(parents=True)
    result = AnalyzeResult(
        video_id=info.video_id,
        work_dir=str(work),
        reads_path=str(work / "reads.jsonl"),
        tracks_path=str(work / "tracks.jsonl"),
        frames_decoded=30,
        frames_analyzed=15,
        n_vehicle_detections=15,
        n_plate_reads=3,
        wall_s=2.0,
        damage="damaged: test line",
    )
    events_path = work / "events.jsonl"
    write_jsonl(events_path, [_event(info.video_id, info.recording_start, 1, str(work / "crops/1.jpg"))])
    m = Manifest(info=info, analyze=result, events_path=str(events_path))
    (work / "manifest.json").write_text(m.model_dump_json(), encoding="utf-8")
    return m


def test_route_file_round_trip_and_removal(tmp_path):
    track = load_gpx(CAR, max_gap_s=3600)  # the drive logs a point every ~10-60 s
    assert track.start is not None
    start = track.start + timedelta(seconds=30)
    path = tmp_path / "route.json"
    points = write_route(path, track, "sidecar:car.gpx", start, 20.0)
    assert len(points) == 21  # one per second, both ends included, all inside the drive
    assert points == route_points(track, start, start + timedelta(seconds=20))
    assert read_route(path) == json.loads(json.dumps({"source": "sidecar:car.gpx", "points": points}))
    assert write_route(path, None, None, start, 20.0) == [] and not path.exists()
    assert read_route(path) == {}


def test_manifest_reads_archived_events_when_present(manifest, tmp_path):
    loaded = Manifest.load(manifest.dir / "manifest.json")
    assert loaded.read_events()[0].crop_path == str(manifest.dir / "crops/1.jpg")  # before archive
    archived = _event(manifest.info.video_id, manifest.info.recording_start, 1, "/archive/plates/1.jpg")
    write_jsonl(manifest.archived_events_path, [archived])
    assert [e.crop_path for e in loaded.read_events()] == ["/archive/plates/1.jpg"]
    assert manifest.archive_min_duration_s == pytest.approx(30 / manifest.info.fps)
    with pytest.raises(FileNotFoundError, match="heavy_output folder cleaned"):
        Manifest.load(tmp_path / "nowhere" / "manifest.json")


def test_archive_check_is_used_only_for_its_own_copy(manifest):
    assert manifest.read_archive_check("/archive/video_720p.mp4") is None  # none written
    manifest.archive_check_path.write_text(
        json.dumps({"archive_path": "/archive/video_720p.mp4", "archive_verified_at": "2026-12-01T12:00:00+00:00"})
    )
    check = manifest.read_archive_check("/archive/video_720p.mp4")
    assert check is not None and check["archive_verified_at"].year == 2026
    assert check["archive_verified_at"].utcoffset() == timedelta(0)
    assert manifest.read_archive_check("/elsewhere/video_720p.mp4") is None
    assert manifest.read_archive_check(None) is None


def test_report_markdown_names_the_video_damage_and_each_plate(manifest):
    md = video_report_markdown(manifest, manifest.read_events(), "/archive/video_720p.mp4")
    lines = md.splitlines()
    assert lines[0] == f"# {CLIP.name}"
    assert f"video_id `{manifest.info.video_id}`" in lines[1]
    assert "analysed 15 of 30 frames in 2.0 s" in md and "**damaged video**: damaged: test line" in md
    assert "archive: `/archive/video_720p.mp4`" in md
    assert lines[-1].startswith("| **AB123C** | 0.91 | 3 | ") and "| 45.250000, 13.750000 |" in lines[-1]
    empty = video_report_markdown(manifest, [], None)
    assert "archive: -" in empty and empty.splitlines()[-1] == "| (no confident plate) | | | | | | |"


def test_report_markdown_names_the_decoder(manifest):
    assert "decoder:" not in video_report_markdown(manifest, [], None)  # results written before issue 17
    manifest.analyze.decoder = "ffmpeg-pipe hwaccel=none threads=auto"
    assert "· decoder: ffmpeg-pipe hwaccel=none threads=auto" in video_report_markdown(manifest, [], None)
