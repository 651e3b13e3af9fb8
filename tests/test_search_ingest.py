"""A real clip ingested end to end stores its track's alternative readings, and the fuzzy search
finds the labelled plate from a misread form (real models, real ffmpeg, real Prefect API)."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from dashcam.db import PLATE_READINGS, make_engine
from dashcam.records import PlateRead, read_jsonl
from dashcam.search import search_events
from dashcam.vote import track_alternatives
from helpers import shared_dir
from test_ingest import _settings, prefect_api  # noqa: F401  (the session's Prefect API fixture)

# two plates, 62-PB-VT read in several forms by the frames of its track (62PBVI, 2PBVT, 62P8VT, ...)
CLIP = "data/plates-video/TrainingSet/Categorie III/Video100_2.avi"

pytestmark = pytest.mark.slow


def test_ingested_clip_stores_alternatives_and_is_found_from_misread(prefect_api, sqlite_url, tmp_path):  # noqa: F811
    from flows.ingest import ingest

    settings = _settings(tmp_path, sqlite_url)
    [summary] = ingest([str(shared_dir() / CLIP)], settings=settings)
    engine = make_engine(sqlite_url)
    try:
        page = search_events(engine, "62-P8-V1")  # B read as 8, T as 1
        assert page.kind == "fuzzy" and page.rows[0]["final_plate"] == "62PBVT"
        row = page.rows[0]
        assert 0.5 < row["score"] < 1.0

        # the stored alternatives are the distinct other plausible reads of the track
        reads_path = Path(settings.work_dir) / summary.video_id / "reads.jsonl"
        reads = [r for r in read_jsonl(reads_path, PlateRead) if r.track_id == row["track_id"]]
        want = [a.model_dump() for a in track_alternatives(reads, "62PBVT")]
        assert row["alternatives"] == want
        assert want, "the clip's track has misreads (this test needs at least one)"
        with engine.connect() as conn:
            stored = conn.execute(sa.select(PLATE_READINGS.c.text).where(PLATE_READINGS.c.vehicle_id == row["id"])).scalars().all()
        assert sorted(stored) == sorted(a["text"] for a in want)
        alt = want[0]["text"]
        hit = search_events(engine, f"={alt}")  # an alternative finds its event exactly
        assert [(r["id"], r["matched_text"]) for r in hit.rows] == [(row["id"], alt)]
    finally:
        engine.dispose()
