"""A real clip ingested end to end stores its track's alternative readings, and the fuzzy search
finds the voted plate from a misread form (real models, real ffmpeg, real Prefect API)."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from helpers import shared_dir
from test_ingest import _settings, prefect_api  # noqa: F401  (the session's Prefect API fixture)

from dashcam.db import PLATE_READINGS, make_engine
from dashcam.records import PlateRead, read_jsonl
from dashcam.search import search_events
from dashcam.vote import plausible_plate, track_alternatives

pytestmark = pytest.mark.slow

# clips whose tracks are read in several forms by the current reader (Video100_2: 62-PB-VT as
# 62PBVI, 2PBVT, 62P8VT, ...); the first that yields alternatives is used, so a better reader
# only costs another clip
CLIPS = [f"data/plates-video/TrainingSet/Categorie III/{c}.avi" for c in ("Video100_2", "Video51_2", "Video61_2")]


def test_ingested_clip_stores_alternatives_and_is_found_from_misread(prefect_api, sqlite_url, tmp_path):  # noqa: F811
    from flows.ingest import ingest

    settings = _settings(tmp_path, sqlite_url)
    engine = make_engine(sqlite_url)
    try:
        for clip in CLIPS:
            [summary] = ingest([str(shared_dir() / clip)], settings=settings)
            reads_path = Path(settings.work_dir) / summary.video_id / "reads.jsonl"
            events = search_events(engine, None, video_ids=[summary.video_id]).rows
            assert events, f"{clip}: no plate stored"
            all_reads = read_jsonl(reads_path, PlateRead)
            for row in events:  # the stored alternatives are the distinct other plausible reads of the track
                reads = [r for r in all_reads if r.track_id == row["track_id"]]
                own = [a.model_dump() for a in track_alternatives(reads, row["final_plate"])]
                if row["n_reads"] == sum(1 for r in reads if r.text_conf > 0 and plausible_plate(r.text)):
                    assert row["alternatives"] == own  # an event of one track: exactly its alternatives
                    continue
                # an event merged from several tracks of one vehicle (pipeline._merge_duplicate_plates, one
                # event per vehicle): the union of their alternatives (counts summed), all of them reads
                # of this video inside the event's frame span
                assert row["n_reads"] > len(reads)
                stored = {a["text"]: a["count"] for a in row["alternatives"]}
                assert all(stored.get(a["text"], 0) >= a["count"] for a in own[: len(stored)]), (stored, own)
                span = range(row["first_frame_idx"], row["last_frame_idx"] + 1)
                seen = {r.text for r in all_reads if r.frame_idx in span}
                assert set(stored) <= seen, set(stored) - seen
            with_alts = [r for r in events if r["alternatives"]]
            if with_alts:
                break
        else:
            pytest.fail(f"none of {CLIPS} has a track with misreads any more: add a clip that has")
        row = with_alts[0]
        with engine.connect() as conn:
            stored = (
                conn.execute(sa.select(PLATE_READINGS.c.text).where(PLATE_READINGS.c.vehicle_id == row["id"]))
                .scalars()
                .all()
            )
        assert sorted(stored) == sorted(a["text"] for a in row["alternatives"])

        alt = row["alternatives"][0]["text"]
        hit = search_events(engine, f"={alt}")  # an alternative finds its event exactly
        assert [(r["id"], r["matched_text"], r["score"]) for r in hit.rows] == [(row["id"], alt, 0.9)]
        fuzzy = search_events(engine, alt)  # and ranks it first as a plain (fuzzy) query
        assert fuzzy.kind == "fuzzy" and fuzzy.rows[0]["id"] == row["id"]
        assert fuzzy.rows[0]["score"] >= 0.9  # at least the exact alternative's score
        if row["final_plate"] == "62PBVT":  # the kind of example: look-alikes typed for the real plate
            page = search_events(engine, "62-P8-V1")
            assert page.rows[0]["final_plate"] == "62PBVT" and 0.5 < page.rows[0]["score"] < 1.0
    finally:
        engine.dispose()
