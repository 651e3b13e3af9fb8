"""Watch lists, hits, corrections and notes on real databases (SQLite and PostgreSQL): the pure
logic of dashcam.watch_lists and the CLI commands on top of it."""

from __future__ import annotations

import csv
import json
from datetime import timedelta

import pytest
import sqlalchemy as sa
from test_db import T0, make_event, make_info
from typer.testing import CliRunner

from dashcam.db import PLATE_READINGS, WATCH_HITS, make_engine, query_events, save_video
from dashcam.records import PlateAlternative
from dashcam.search import search_events
from dashcam.watch_lists import (
    WatchListError,
    add_entry,
    add_plate_note,
    correct_event,
    export_csv,
    hit_event,
    import_csv,
    list_corrections,
    list_entries,
    list_hits,
    list_plate_notes,
    match_video,
    parse_pattern,
    remove_entry,
)


@pytest.fixture
def engine(db_url):
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


def _events(video_id="vid-w"):
    return [
        make_event(video_id, 1, "XSNB23", 10.0, alternatives=[PlateAlternative(text="X5NB2S", count=2, mean_conf=0.7)]),
        make_event(video_id, 2, "AB123C", 20.0),
        make_event(video_id, 3, "62PBVI", 30.0, alternatives=[PlateAlternative(text="62PBVT", count=1, mean_conf=0.6)]),
    ]


def test_parse_pattern_kinds_and_bad_input():
    assert parse_pattern("xs-nb-23") == ("exact", "XSNB23", False)
    assert parse_pattern("=XSNB23") == ("exact", "XSNB23", True)
    assert parse_pattern("xs*23") == ("wildcard", "XS*23", False)
    assert parse_pattern("/^XS.*3$/") == ("regex", "^XS.*3$", False)
    for bad, words in [
        ("", "empty"),
        ("   ", "empty"),
        ("/XS[/", "invalid regular expression"),
        ("/(?:X)/", "not allowed"),
        ("XS NB€", "unexpected character"),
        ("A" * 100, "at most 64"),
    ]:
        with pytest.raises(WatchListError, match=words) as exc:
            parse_pattern(bad)
        assert "\n" not in str(exc.value)


def test_add_validates_with_bounds(engine):
    with pytest.raises(WatchListError, match="label is 10240 characters long; at most 200"):
        add_entry(engine, "XSNB23", label="x" * 10240)
    with pytest.raises(WatchListError, match="notes is 2001"):
        add_entry(engine, "XSNB23", notes="n" * 2001)
    with pytest.raises(WatchListError, match="control characters"):
        add_entry(engine, "XSNB23", label="a\nb")
    with pytest.raises(WatchListError, match="min_score"):
        add_entry(engine, "XSNB23", min_score=1.5)
    with pytest.raises(WatchListError, match="active_until is before active_from"):
        add_entry(engine, "XSNB23", active_from="2026-11-02", active_until="2026-11-01")
    with pytest.raises(WatchListError, match="not an ISO 8601"):
        add_entry(engine, "XSNB23", active_from="yesterday")
    assert list_entries(engine) == []  # nothing stored by a refused entry


def test_match_exact_wildcard_regex_fuzzy_and_idempotent(engine):
    save_video(engine, make_info("vid-w"), _events(), None)
    e_exact = add_entry(engine, "XS-NB-23", label="hit and run 2026-11-02")
    e_wild = add_entry(engine, "AB*C", watchlist="neighbours")
    e_regex = add_entry(engine, "/^62PB.T$/", watchlist="neighbours")
    e_misread = add_entry(engine, "X5N823", label="typed as seen")  # look-alikes of XSNB23, on no reading
    e_alt = add_entry(engine, "=62PBVT")  # only an alternative reading: exact, score 0.9
    e_off = add_entry(engine, "ZZ999Z")
    e_late = add_entry(engine, "AB123C", active_from=T0 + timedelta(days=1))  # events are before it
    assert e_exact["kind"] == "exact" and e_exact["fuzzy"] and e_wild["kind"] == "wildcard"
    assert not e_alt["fuzzy"] and e_regex["kind"] == "regex"

    hits = match_video(engine, "vid-w")
    got = {(h["entry_id"], h["event_id"]): (h["matched_text"], h["score"]) for h in hits}
    assert got[(e_exact["id"], "vid-w:1")] == ("XSNB23", 1.0)
    assert got[(e_wild["id"], "vid-w:2")] == ("AB123C", 1.0)
    assert got[(e_regex["id"], "vid-w:3")] == (
        "62PBVT",
        0.9,
    )  # the final plate 62PBVI does not match, its alternative does
    assert got[(e_alt["id"], "vid-w:3")] == ("62PBVT", 0.9)
    assert 0.75 <= got[(e_misread["id"], "vid-w:1")][1] < 1.0
    assert not any(k[0] in (e_off["id"], e_late["id"]) for k in got)
    assert match_video(engine, "vid-w") == []  # idempotent: no new hits, no duplicates
    save_video(engine, make_info("vid-w"), _events(), None)  # a re-ingest
    assert match_video(engine, "vid-w") == []
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(WATCH_HITS)).scalar_one() == len(hits)
    listed = list_hits(engine, watchlist="neighbours")
    assert {h["event_id"] for h in listed} == {"vid-w:2", "vid-w:3"} and all(h["plate"] for h in listed)
    assert {e["id"]: e["n_hits"] for e in list_entries(engine)}[e_exact["id"]] == 1

    ev = hit_event(hits[0], flow_run_id="1234")
    assert ev["event"] == "dashcam.watchlist.hit"
    assert ev["resource"]["prefect.resource.id"] == f"dashcam.plate.{hits[0]['plate']}"
    assert [r["prefect.resource.role"] for r in ev["related"]] == ["video", "flow-run"]
    assert ev["payload"]["map_url"].startswith("https://www.openstreetmap.org/?mlat=52.1")
    assert ev["payload"]["crop_url"] == "file:///archive/vid-w/crops/1.jpg"
    json.dumps(ev)  # JSON-ready

    assert remove_entry(engine, e_wild["id"]) and not remove_entry(engine, e_wild["id"])
    assert {h["entry_id"] for h in list_hits(engine)} == {e_exact["id"], e_regex["id"], e_misread["id"], e_alt["id"]}


def test_csv_round_trip_and_bad_rows(engine, tmp_path):
    add_entry(engine, "XS-NB-23", label="hit and run", notes="blue hatchback\nsmall dent")
    add_entry(engine, "AB*", watchlist="neighbours", fuzzy=False, active_until="2027-01-01T00:00")
    add_entry(engine, "=62PBVT", min_score=0.9)
    out = tmp_path / "wl.csv"
    assert export_csv(engine, out) == 3
    before = [{k: v for k, v in e.items() if k not in ("id", "created_at")} for e in list_entries(engine)]
    for e in list_entries(engine):
        remove_entry(engine, e["id"])
    assert import_csv(engine, out) == 3
    assert [{k: v for k, v in e.items() if k not in ("id", "created_at")} for e in list_entries(engine)] == before

    bad = tmp_path / "bad.csv"
    with bad.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["watchlist", "pattern", "label"])
        w.writerow(["x", "QQ11QQ", "fine"])
        w.writerow(["x", "/AB[/", "broken"])
    with pytest.raises(WatchListError, match=r"bad.csv, line 3: bad plate pattern '/AB\[/'"):
        import_csv(engine, bad)
    assert len(list_entries(engine)) == 3  # the good row was not added either
    bad.write_text("plate,label\nAB1,x\n")
    with pytest.raises(WatchListError, match="no 'pattern' column"):
        import_csv(engine, bad)


def test_correction_applies_to_search_matching_and_survives_reingest(engine):
    save_video(engine, make_info("vid-c"), _events("vid-c"), None)
    entry = add_entry(engine, "=62PBVT")  # exact only: the corrected text must be the final plate now
    assert [h["score"] for h in match_video(engine, "vid-c")] == [0.9]  # via the alternative
    with pytest.raises(WatchListError, match="no event"):
        correct_event(engine, "vid-c:99", "62PBVT")
    with pytest.raises(WatchListError, match="plates have letters and digits"):
        correct_event(engine, "vid-c:3", "62-PB-V!")
    corr = correct_event(engine, "vid-c:3", "62-pb-vt", note="read it on the photo", by="anna")
    assert (corr["ocr_text"], corr["text"], corr["by"], corr["attached"]) == ("62PBVI", "62PBVT", "anna", True)

    def state():
        [row] = [r for r in query_events(engine, video_id="vid-c") if r["track_id"] == 3]
        with engine.connect() as conn:
            alts = sorted(
                conn.execute(sa.select(PLATE_READINGS.c.text).where(PLATE_READINGS.c.vehicle_id == row["id"])).scalars()
            )
        return row["final_plate"], alts

    assert state() == ("62PBVT", ["62PBVI"])
    page = search_events(engine, "=62PBVT")
    assert [(r["id"], r["score"]) for r in page.rows] == [("vid-c:3", 1.0)]  # searchable as the final plate
    assert [r["id"] for r in search_events(engine, "=62PBVI").rows] == ["vid-c:3"]  # OCR text still found
    assert [r["id"] for r in search_events(engine, "62PB*").rows] == ["vid-c:3"]

    save_video(engine, make_info("vid-c"), _events("vid-c"), None)  # re-ingest: same ids
    assert state() == ("62PBVT", ["62PBVI"])
    # re-ingest where the tracker numbered the track 7 (frames overlapping): re-attached
    evs = _events("vid-c")
    evs[2] = evs[2].model_copy(update={"track_id": 7, "first_frame_idx": evs[2].first_frame_idx + 3})
    save_video(engine, make_info("vid-c"), evs, None)
    [c] = list_corrections(engine, video_id="vid-c")
    assert (c["event_id"], c["track_id"], c["text"], c["ocr_text"], c["attached"]) == (
        "vid-c:7",
        7,
        "62PBVT",
        "62PBVI",
        True,
    )
    assert [r["final_plate"] for r in query_events(engine, video_id="vid-c") if r["track_id"] == 7] == ["62PBVT"]
    # correcting again replaces the correction and keeps the OCR text
    c2 = correct_event(engine, "vid-c:7", "62PBVJ", by="bert")
    assert (c2["ocr_text"], c2["text"], c2["by"]) == ("62PBVI", "62PBVJ", "bert")
    assert [r["final_plate"] for r in query_events(engine, video_id="vid-c") if r["track_id"] == 7] == ["62PBVJ"]
    assert entry["id"] in {h["entry_id"] for h in list_hits(engine)}


def test_plate_notes_and_tags(engine):
    n = add_plate_note(engine, "xs-nb-23", "the neighbour's car", by="anna")
    assert (n["plate"], n["kind"], n["by"]) == ("XSNB23", "note", "anna")
    add_plate_note(engine, "XSNB23", "Neighbour", kind="tag")
    add_plate_note(engine, "XSNB23", "neighbour", kind="tag")  # not twice
    assert [(x["kind"], x["text"]) for x in list_plate_notes(engine, "XSNB23")] == [
        ("note", "the neighbour's car"),
        ("tag", "neighbour"),
    ]
    with pytest.raises(WatchListError, match="tag"):
        add_plate_note(engine, "XSNB23", "two words", kind="tag")
    with pytest.raises(WatchListError, match="note is empty"):
        add_plate_note(engine, "XSNB23", "  ")


def test_cli_watchlist_correct_note(sqlite_url, tmp_path, monkeypatch):
    from dashcam.cli import app

    monkeypatch.setenv("DASHCAM_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("USER", "tester")
    eng = make_engine(sqlite_url)
    save_video(eng, make_info("vid-cli"), _events("vid-cli"), None)
    r = CliRunner()

    def run(*args, code=0):
        res = r.invoke(app, list(args))
        assert res.exit_code == code, res.output
        return res

    run("watchlist", "add", "XS-NB-23", "--label", "hit and run", "--list", "main")
    run("watchlist", "add", "AB*")
    res = run("watchlist", "add", "", code=2)
    assert "plate pattern is empty" in res.output and "Traceback" not in res.output
    res = run("watchlist", "add", "/AB[/", code=2)
    assert "invalid regular expression" in res.output
    res = run("watchlist", "add", "XSNB23", "--label", "x" * 10240, code=2)
    assert "at most 200" in res.output and len(res.output.strip().splitlines()) == 1
    entries = json.loads(run("watchlist", "list", "--json").stdout)
    assert [(e["watchlist"], e["pattern"]) for e in entries] == [("default", "AB*"), ("main", "XSNB23")]
    run("watchlist", "export", str(tmp_path / "w.csv"))
    assert (tmp_path / "w.csv").read_text().count("\n") == 3
    res = run("watchlist", "import", str(tmp_path / "missing.csv"), code=2)
    assert "cannot read" in res.output

    run("correct", "vid-cli:2", "AB128C", "--note", "typo")  # no hits from the CLI's match: AB* still matches
    hits = json.loads(run("watchlist", "hits", "--json").stdout)
    assert {h["event_id"] for h in hits} == {"vid-cli:1", "vid-cli:2"}
    assert [r["final_plate"] for r in query_events(eng, video_id="vid-cli") if r["track_id"] == 2] == ["AB128C"]
    [c] = list_corrections(eng)
    assert (c["by"], c["note"], c["ocr_text"]) == ("tester", "typo", "AB123C")
    res = run("correct", "nope:1", "AB1", code=2)
    assert "no event 'nope:1'" in res.output
    run("note", "AB128C", "delivery van")
    run("tag", "AB128C", "work")
    assert [x["text"] for x in list_plate_notes(eng, "AB128C")] == ["delivery van", "work"]
    run("watchlist", "remove", str(entries[0]["id"]))
    res = run("watchlist", "remove", "9999", code=1)
    assert "no watch-list entry 9999" in res.output
    eng.dispose()


def test_cli_alerts_need_a_prefect_server(monkeypatch):
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from dashcam.cli import app

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        res = CliRunner().invoke(app, ["alerts", "list"])
    assert res.exit_code == 1 and "PREFECT_API_URL is not set" in res.output, res.output
    res = CliRunner().invoke(app, ["alerts", "add", "--block", "no-slash"])
    assert res.exit_code == 2 and "--block must be TYPE/NAME" in res.output, res.output
