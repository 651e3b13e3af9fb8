"""dashcam.search on real SQLite and PostgreSQL databases: keys, distance, query kinds, ranking,
alternatives, filters, paging, hostile input, migration 0004 and save_video's search rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from dashcam.db import (
    PLATE_KEY_VARIANTS,
    PLATE_READINGS,
    VEHICLES,
    make_engine,
    migrate,
    query_events,
    save_video,
)
from dashcam.records import PlateAlternative, PlateEvent, PlateRead, VideoInfo
from dashcam.search import (
    SearchError,
    SearchPage,
    confusion_key,
    key_variants,
    plate_distance,
    plate_score,
    query_variants,
    search_events,
)

T0 = datetime(2024, 5, 17, 8, 30, 0, tzinfo=UTC)


def info(video_id: str = "vid-a", start: datetime = T0) -> VideoInfo:
    return VideoInfo(
        path=f"/videos/{video_id}.MP4",
        video_id=video_id,
        size_bytes=1000,
        duration_s=600.0,
        fps=30.0,
        frame_count=18000,
        width=1920,
        height=1080,
        codec="h264",
        recording_start=start,
        recording_start_source="filename",
        camera="F",
    )


def ev(
    video_id: str,
    track_id: int,
    plate: str,
    offset_s: float = 0.0,
    alts=(),
    conf: float = 0.8,
    lat: float | None = 52.0,
    lon: float | None = 5.0,
    start: datetime = T0,
) -> PlateEvent:
    return PlateEvent(
        video_id=video_id,
        track_id=track_id,
        frame_idx=int(offset_s * 30),
        pts_s=offset_s,
        ts=start + timedelta(seconds=offset_s),
        final_plate=plate,
        plate_confidence=conf,
        car_bbox=(0.0, 0.0, 100.0, 100.0),
        plate_bbox=(10.0, 10.0, 50.0, 20.0),
        n_reads=5,
        first_frame_idx=0,
        last_frame_idx=10,
        lat=lat,
        lon=lon,
        alternatives=[PlateAlternative(text=t, count=c, mean_conf=m) for t, c, m in alts],
    )


@pytest.fixture
def engine(db_url):
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


# realistic distractors: NL sidecode plates that share groups or key variants with XSNB23
DISTRACTORS = [
    "XSNB28",
    "XSNV23",
    "XTNB23",
    "ZSNB23",
    "XSNB2",
    "12NB23",
    "XSHB32",
    "SXNB23",
    "NB2399",
    "XSPB23",
    "GSNB73",
    "XSN823X",
]


@pytest.fixture
def filled(engine):
    """vid-a: the true plate among distractors; vid-b: a plate known by its alternatives; vid-c: older."""
    a = [ev("vid-a", 1, "XSNB23", 10.0, alts=[("X5NB23", 3, 0.7), ("XSNB2", 1, 0.5)], conf=0.9)]
    a += [ev("vid-a", 10 + i, p, 20.0 + i) for i, p in enumerate(DISTRACTORS)]
    save_video(engine, info("vid-a"), a, None)
    tb = T0 + timedelta(days=1)
    b = [
        ev(
            "vid-b",
            1,
            "63HKHD",
            5.0,
            alts=[("63HKH0", 2, 0.6), ("63HKWD", 1, 0.4)],
            conf=0.7,
            lat=48.0,
            lon=2.0,
            start=tb,
        ),
        ev("vid-b", 2, "01XJND", 8.0, conf=0.95, lat=None, lon=None, start=tb),
    ]
    save_video(engine, info("vid-b", tb), b, None)
    c = [ev("vid-c", 1, "XSNB23", 1.0, conf=0.65, start=T0 - timedelta(days=30))]
    save_video(engine, info("vid-c", T0 - timedelta(days=30)), c, None)
    return engine


def plates(page: SearchPage) -> list[str]:
    return [r["final_plate"] for r in page.rows]


# --------------------------------------------------------------------------------------------
# keys and distance (no database)


@pytest.mark.parametrize("cls", ["0OQD", "1ILT", "2Z", "5S", "6GC", "8B"])
def test_confusion_key_folds_each_class(cls):
    keys = {confusion_key(f"AB{c}12X") for c in cls}
    assert len(keys) == 1
    assert confusion_key(f"AB{cls[0]}12X") != confusion_key("ABA12X")


def test_confusion_key_normalises_and_keeps_other_characters():
    assert confusion_key("xs-nb 23") == confusion_key("X5NB23") == confusion_key("XSN823") == "X5N823"
    assert confusion_key("AKMNPRUVWXY3479") == "AKMNPRUVWXY3479"  # no class: unchanged
    assert confusion_key("") == ""


def test_variants_cover_one_edit_and_edge_groups():
    stored = key_variants(confusion_key("XSNB23"))
    assert confusion_key("XSNB23") in stored
    assert stored & query_variants(confusion_key("XSNB2"))  # dropped last character
    assert stored & query_variants(confusion_key("XSNB234"))  # extra last character
    assert stored & query_variants(confusion_key("XSNB73"))  # one substitution
    assert stored & query_variants(confusion_key("XNB23"))  # dropped inner character
    assert stored & query_variants(confusion_key("NB23"))  # dropped first group
    assert key_variants(confusion_key("NB23")) & query_variants(confusion_key("XSNB23"))  # stored read lost a group


def test_plate_distance_weights():
    assert plate_distance("XSNB23", "xs-nb-23") == 0.0
    assert plate_distance("XSNB23", "X5NB23") == pytest.approx(0.2)  # look-alike
    assert plate_distance("XSNB23", "XSNB93") == pytest.approx(1.0)  # other substitution
    assert plate_distance("XSNB23", "XSNB73") == pytest.approx(0.5)  # similar pair 2/7
    assert plate_distance("XSNB23", "NB23") == pytest.approx(1.2)  # edge group dropped: 2 x 0.6
    assert plate_distance("XSNB23", "XSB23") == pytest.approx(1.0)  # inner deletion
    assert plate_distance("X5NB2S", "XSNB23") < plate_distance("X5NB2S", "XSNB28")
    assert plate_score("XSNB23", "XSNB23") == 1.0
    assert 0.0 < plate_score("X5NB2S", "XSNB23") < 1.0
    assert plate_score("", "AB") == 0.0


# --------------------------------------------------------------------------------------------
# query kinds


def test_all_newest_first_and_paging(filled):
    page = search_events(filled, None, limit=5)
    assert page.kind == "all" and page.total == 16
    ts = [r["ts"] for r in search_events(filled, "", limit=100).rows]
    assert ts == sorted(ts, reverse=True)
    assert plates(search_events(filled, "  ", limit=2)) == ["01XJND", "63HKHD"]
    pages = [search_events(filled, None, limit=5, offset=o).rows for o in (0, 5, 10, 15)]
    assert [len(p) for p in pages] == [5, 5, 5, 1]
    assert len({r["id"] for p in pages for r in p}) == 16
    assert search_events(filled, None, offset=100).rows == []


def test_exact_query(filled):
    page = search_events(filled, "=XSNB23")
    assert page.kind == "exact"
    assert [(r["id"], r["score"], r["matched_text"]) for r in page.rows] == [
        ("vid-a:1", 1.0, "XSNB23"),
        ("vid-c:1", 1.0, "XSNB23"),
    ]
    alt = search_events(filled, '"63hkh0"')  # an alternative matches exactly
    assert [(r["id"], r["score"], r["matched_text"]) for r in alt.rows] == [("vid-b:1", 0.9, "63HKH0")]
    assert search_events(filled, "=XSNB2").total == 2  # XSNB2 is a plate and an alternative of vid-a:1


def test_wildcard_query(filled):
    page = search_events(filled, "xs*23", limit=100)
    assert page.kind == "wildcard"
    assert set(plates(page)) == {"XSNB23", "XSNV23", "XSPB23"}
    assert page.rows[0]["score"] == 1.0
    assert plates(search_events(filled, "?SNB2?")) == ["ZSNB23", "XSNB28", "XSNB23", "XSNB23"]  # newest first
    hk = search_events(filled, "63HKH?")
    assert [(r["final_plate"], r["matched_text"], r["score"]) for r in hk.rows] == [("63HKHD", "63HKHD", 1.0)]
    only_alt = search_events(filled, "*KW?")
    assert [(r["id"], r["matched_text"], r["score"]) for r in only_alt.rows] == [("vid-b:1", "63HKWD", 0.9)]
    assert search_events(filled, "QQ*").total == 0


def test_regex_query(filled):
    page = search_events(filled, "/^xs.b2[0-9]$/", limit=100)
    assert page.kind == "regex"
    assert sorted(plates(page)) == ["XSNB23", "XSNB23", "XSNB28", "XSPB23"]
    assert page.total == 4
    alt = search_events(filled, r"/hkh\d/")
    assert [(r["id"], r["matched_text"], r["score"]) for r in alt.rows] == [("vid-b:1", "63HKH0", 0.9)]
    assert search_events(filled, "/^NB|^12/").total == 2


def test_fuzzy_ranks_true_plate_first_among_distractors(filled):
    page = search_events(filled, "X5NB2S", limit=100)
    assert page.kind == "fuzzy"
    assert page.rows[0]["final_plate"] == "XSNB23"
    assert page.rows[0]["id"] == "vid-a:1"  # newer of the two XSNB23 sightings (equal scores)
    scores = [r["score"] for r in page.rows]
    assert scores == sorted(scores, reverse=True)
    assert all(r["score"] < page.rows[0]["score"] for r in page.rows if r["final_plate"] != "XSNB23")
    assert page.total == len(page.rows)


def test_fuzzy_plain_text_exact_first_then_lookalikes(filled):
    page = search_events(filled, "XS-NB-23", limit=100)
    assert [r["score"] for r in page.rows[:2]] == [1.0, 1.0] and plates(page)[:2] == ["XSNB23", "XSNB23"]
    assert all(r["score"] < 1.0 for r in page.rows[2:])
    assert "XSNB28" in plates(page) and "ZSNB23" in plates(page)


def test_fuzzy_finds_plate_from_dropped_first_group(filled):
    page = search_events(filled, "NB23", limit=100)
    best = page.rows[0]["score"]
    assert {r["final_plate"] for r in page.rows if r["score"] == best} >= {"XSNB23", "12NB23", "ZSNB23", "NB2399"}
    assert best == pytest.approx(plate_score("NB23", "XSNB23"), abs=1e-4)
    # a plate sharing only a group ranks below every one-edit neighbour
    full = search_events(filled, "XSNB23", limit=100).rows
    rank = {r["final_plate"]: i for i, r in reversed(list(enumerate(full)))}
    assert all(rank["NB2399"] > rank[p] for p in ("XSNB28", "XSNV23", "XTNB23", "ZSNB23", "XSNB2", "XSPB23"))


def test_fuzzy_matches_alternatives(filled):
    page = search_events(filled, "63HKH0")  # exact alternative of 63HKHD (and a look-alike of it)
    [row] = page.rows
    assert row["final_plate"] == "63HKHD"
    assert row["matched_text"] == "63HKHD" and row["score"] == pytest.approx(plate_score("63HKH0", "63HKHD"), abs=1e-4)
    assert row["alternatives"] == [
        {"text": "63HKH0", "count": 2, "mean_conf": 0.6},
        {"text": "63HKWD", "count": 1, "mean_conf": 0.4},
    ]
    far = search_events(filled, "63HKW0")  # closer to the alternative 63HKWD than to 63HKHD
    assert far.rows[0]["matched_text"] == "63HKWD"
    assert far.rows[0]["score"] == pytest.approx(0.9 * plate_score("63HKW0", "63HKWD"), abs=1e-4)


def test_rows_are_query_events_rows_plus_search_fields(filled):
    [base] = [r for r in query_events(filled) if r["id"] == "vid-a:1"]
    row = search_events(filled, "=XSNB23").rows[0]
    extra = {k: row.pop(k) for k in ("score", "matched_text", "alternatives")}
    assert row == base
    assert extra["alternatives"][0] == {"text": "X5NB23", "count": 3, "mean_conf": 0.7}


def test_connection_argument(filled):
    with filled.connect() as conn:
        assert search_events(conn, "XSNB23").total == search_events(filled, "XSNB23").total
        assert search_events(conn, None).total == 16  # the connection stays usable


# --------------------------------------------------------------------------------------------
# filters


def test_filters(filled):
    assert plates(search_events(filled, "=XSNB23", since=T0 - timedelta(days=1))) == ["XSNB23"]
    assert [r["id"] for r in search_events(filled, "=XSNB23", until=T0).rows] == ["vid-c:1"]
    naive = (T0 - timedelta(days=1)).replace(tzinfo=None)  # naive = UTC
    assert search_events(filled, "=XSNB23", since=naive).total == 1
    assert search_events(filled, "XSNB23", video_ids=["vid-c"]).total == 1
    assert search_events(filled, None, video_ids=["vid-b", "vid-c"]).total == 3
    assert search_events(filled, None, video_ids=[]).total == 0
    assert search_events(filled, None, video_ids="vid-b").total == 2  # one id as a string, not its letters
    assert plates(search_events(filled, None, bbox=(47.5, 1.5, 48.5, 2.5))) == ["63HKHD"]
    assert (
        search_events(filled, None, bbox=(40.0, 170.0, 60.0, 10.0)).total == 15
    )  # across the antimeridian: lon >= 170 or <= 10
    assert plates(search_events(filled, None, min_conf=0.9)) == ["01XJND", "XSNB23"]
    assert search_events(filled, "X5NB2S", min_conf=0.85).rows[0]["id"] == "vid-a:1"
    assert search_events(filled, "/HK/", since=T0 + timedelta(days=2)).total == 0
    assert search_events(filled, "XS*", video_ids=["vid-c"], min_conf=0.6).total == 1


@pytest.mark.parametrize(
    "kw",
    [
        {"since": T0, "until": T0 - timedelta(seconds=1)},
        {"bbox": (1, 2, 3)},
        {"bbox": (95, 0, 96, 1)},
        {"min_conf": 1.5},
        {"min_conf": "x"},
        {"limit": 0},
        {"limit": 10_000},
        {"offset": -1},
        {"since": "yesterday"},
    ],
)
def test_bad_filters_raise_search_error(engine, kw):
    with pytest.raises(SearchError):
        search_events(engine, "AB12CD", **kw)


# --------------------------------------------------------------------------------------------
# hostile input


@pytest.mark.parametrize(
    "q",
    [
        "/(ab/",
        "/[a-/",
        "/a{2,1}/",
        "/(?=A)B/",
        r"/(a)\1/",
        "/",
        "//",
        "A" * 10_000,
        "/" + "A" * 10_000 + "/",
        "AB\x00CD",
        "AB\nCD",
        "AB\u202eCD",
        "AB%",
        "AB_1",
        "/%/",
        "/_/",
        "/' OR 1=1 --/",
        "'; DROP TABLE vehicles; --",
        "AB' OR '1'='1",
        '"',
        "Ä123",
        "=AB*",
        "**",
    ],
)
def test_hostile_queries_raise_search_error(filled, q):
    with pytest.raises(SearchError) as exc:
        search_events(filled, q)
    assert "\n" not in str(exc.value) and str(exc.value)
    assert search_events(filled, None).total == 16  # nothing happened to the data


def test_sql_looking_text_in_regex_and_wildcards_is_literal(filled):
    assert search_events(filled, "/SELECT|DROP TABLE/").total == 0  # literals: no plate has them
    assert search_events(filled, "*X*").total == 11  # * is the only multi-character wildcard
    assert search_events(filled, "AB-12.CD").total == 0  # separators dropped, fuzzy: no match
    assert search_events(filled, None).total == 16


def test_sqlite_regexp_function_is_registered(sqlite_url):
    eng = make_engine(sqlite_url)
    try:
        with eng.connect() as conn:
            assert conn.execute(sa.text("SELECT 'XSNB23' REGEXP :p"), {"p": "^xs"}).scalar_one() == 1
            assert conn.execute(sa.text("SELECT 'XSNB23' REGEXP :p"), {"p": "^nb"}).scalar_one() == 0
            assert conn.execute(sa.text("SELECT NULL REGEXP :p"), {"p": "^nb"}).scalar_one() is None
    finally:
        eng.dispose()


# --------------------------------------------------------------------------------------------
# storage: save_video and migration 0004


def _readings(engine) -> list[tuple]:
    with engine.connect() as conn:
        return conn.execute(
            sa.select(
                PLATE_READINGS.c.vehicle_id,
                PLATE_READINGS.c.text,
                PLATE_READINGS.c.count,
                PLATE_READINGS.c.mean_conf,
                PLATE_READINGS.c.confusion_key,
            ).order_by(PLATE_READINGS.c.vehicle_id, PLATE_READINGS.c.text)
        ).all()


def test_save_video_writes_and_replaces_alternatives(engine):
    e1 = ev("vid-a", 1, "XSNB23", alts=[("X5NB23", 3, 0.7), ("XSNB2", 1, 0.5), ("XSNB23", 9, 0.9)])
    save_video(engine, info(), [e1, ev("vid-a", 2, "01XJND")], None)
    assert _readings(engine) == [("vid-a:1", "X5NB23", 3, 0.7, "X5N823"), ("vid-a:1", "XSNB2", 1, 0.5, "X5N82")]
    with engine.connect() as conn:
        keys = dict(conn.execute(sa.select(VEHICLES.c.id, VEHICLES.c.confusion_key)).all())
        variants = set(conn.execute(sa.select(PLATE_KEY_VARIANTS.c.variant, PLATE_KEY_VARIANTS.c.confusion_key)).all())
    assert keys == {"vid-a:1": "X5N823", "vid-a:2": "01XJN0"}
    assert {(v, "X5N823") for v in key_variants("X5N823")} <= variants
    assert {(v, "01XJN0") for v in key_variants("01XJN0")} <= variants
    save_video(engine, info(), [e1, ev("vid-a", 2, "01XJND")], None)  # idempotent
    assert len(_readings(engine)) == 2
    n_variants = len(variants)
    e1b = ev("vid-a", 1, "XSNB23", alts=[("XSNB28", 2, 0.55)])
    save_video(engine, info(), [e1b], None)  # re-ingest replaces them
    assert _readings(engine) == [("vid-a:1", "XSNB28", 2, 0.55, "X5N828")]
    save_video(engine, info(), [], None)
    assert _readings(engine) == []
    with engine.connect() as conn:  # variants are only ever added
        assert conn.execute(sa.select(sa.func.count()).select_from(PLATE_KEY_VARIANTS)).scalar_one() >= n_variants


def test_old_manifest_events_load_without_alternatives():
    e = ev("vid-a", 1, "XSNB23")
    data = e.model_dump(mode="json")
    data.pop("alternatives")
    assert PlateEvent.model_validate(data).alternatives == []


def test_migration_round_trip_backfills_keys(db_url):
    from alembic import command

    from dashcam.db import alembic_config

    eng = make_engine(db_url)
    try:
        save_video(eng, info(), [ev("vid-a", 1, "XSNB23", alts=[("X5NB2S", 2, 0.5)]), ev("vid-a", 2, "01XJND")], None)
        with eng.begin() as conn:
            command.downgrade(alembic_config(conn), "0003")
        insp = sa.inspect(eng)
        assert "plate_readings" not in insp.get_table_names() and "plate_key_variants" not in insp.get_table_names()
        assert "confusion_key" not in {c["name"] for c in insp.get_columns("vehicles")}
        with eng.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM vehicles")).scalar_one() == 2
        migrate(eng)
        with eng.connect() as conn:
            keys = dict(conn.execute(sa.select(VEHICLES.c.id, VEHICLES.c.confusion_key)).all())
        assert keys == {"vid-a:1": "X5N823", "vid-a:2": "01XJN0"}
        assert _readings(eng) == []  # alternatives come back with a re-ingest
        assert search_events(eng, "NB23").rows[0]["final_plate"] == "XSNB23"  # variants backfilled
        assert search_events(eng, "X5NB2S").rows[0]["final_plate"] == "XSNB23"
    finally:
        eng.dispose()


@pytest.mark.parametrize(
    "src",
    [
        "^XS.B",
        "^XS*",
        ".NB2",
        "^xs.b2[0-9]$",
        "HK|NB",
        "(AB)CD12",
        "[A-Z]{2}NB",
        r"\dNB23",
        "^A+B",
        "^12?",
        r"hkh\d",
        "X.?NB2",
        "AB+CD",
        "A{2}BC",
        "AB{2}C",
        "^(XS)?NB",
        "N[B8]2",
        "^[^X]SNB",
        "S{0,1}NB23$",
        "^XSNB23$",
        "xs",
    ],
)
def test_regex_hints_never_exclude_a_match(src):
    import re

    from dashcam.search import regex_hints

    prefix, literal = regex_hints(src)
    texts = DISTRACTORS + ["XSNB23", "NB23", "AABBCD", "ABBCD", "AABC", "ABBC", "XXNB12", "X1NB2", "SNB23", "12NB"]
    for t in texts:
        if re.search(src, t, re.IGNORECASE):
            assert t.startswith(prefix) and literal in t, (src, t, prefix, literal)


def test_key_score_bound_is_an_upper_bound():
    import random

    from dashcam.search import CONFUSION_CLASSES, SIMILAR_PAIRS, key_score_bound

    rng = random.Random(3)
    alphabet = "".join(CONFUSION_CLASSES.values()) + "".join("".join(p) for p in SIMILAR_PAIRS) + "AKMXY"
    for _ in range(3000):
        a = "".join(rng.choice(alphabet) for _ in range(rng.randint(3, 8)))
        b = list(a)
        for _ in range(rng.randint(0, 3)):  # a few random edits
            i = rng.randrange(len(b))
            op = rng.random()
            if op < 0.5:
                b[i] = rng.choice(alphabet)
            elif op < 0.75 and len(b) > 1:
                del b[i]
            else:
                b.insert(i, rng.choice(alphabet))
        b = "".join(b)
        assert plate_score(a, b) <= key_score_bound(confusion_key(a), confusion_key(b)) + 1e-9, (a, b)


def test_wildcard_prefix_ranges_at_alphabet_edges(engine):
    plates_ = ["A9B123", "AA1234", "AZ9999", "B00000", "ZZ1234", "ZZZ999", "Z9Z999", "99AAAA"]
    save_video(engine, info(), [ev("vid-a", i, p, float(i)) for i, p in enumerate(plates_, 1)], None)

    def found(q):
        return sorted(plates(search_events(engine, q, limit=100)))

    assert found("A9*") == ["A9B123"]  # the range ends at "AA", not ":"
    assert found("AZ*") == ["AZ9999"]  # ... at "B"
    assert found("ZZ*") == ["ZZ1234", "ZZZ999"]  # no upper bound after "ZZ"
    assert found("Z*") == ["Z9Z999", "ZZ1234", "ZZZ999"]
    assert found("9*") == ["99AAAA"]
    assert found("/^a9/") == ["A9B123"] and found("/^ZZ/") == ["ZZ1234", "ZZZ999"]


def test_cli_plates_fuzzy_and_regex(filled, db_url):
    import json

    from typer.testing import CliRunner

    from dashcam.cli import app

    runner = CliRunner()
    res = runner.invoke(app, ["plates", "--fuzzy", "X5NB2S", "--json", "--database-url", db_url])
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in res.stdout.splitlines()]
    assert rows[0]["final_plate"] == "XSNB23" and 0.5 < rows[0]["score"] < 1.0 and rows[0]["matched_text"] == "XSNB23"
    assert rows[0]["alternatives"][0]["text"] == "X5NB23"
    res = runner.invoke(app, ["plates", "--regex", "^63HK", "--json", "--database-url", db_url])
    assert [json.loads(line)["final_plate"] for line in res.stdout.splitlines()] == ["63HKHD"]
    res = runner.invoke(app, ["plates", "--plate", "63hk*", "--json", "--database-url", db_url])  # unchanged meaning
    assert [json.loads(line)["final_plate"] for line in res.stdout.splitlines()] == ["63HKHD"]
    res = runner.invoke(
        app, ["plates", "--fuzzy", "X5NB2S", "--database-url", db_url], env={"COLUMNS": "200"}
    )  # the table
    assert res.exit_code == 0 and "XSNB23" in res.stdout and "fuzzy" in res.stdout
    res = runner.invoke(app, ["plates", "--regex", "(ab", "--database-url", db_url])
    assert res.exit_code == 2 and "invalid regular expression" in res.output and "Traceback" not in res.output


def _read(text: str, conf: float, frame: int = 0) -> PlateRead:
    return PlateRead(
        frame_idx=frame,
        pts_s=frame / 30,
        track_id=1,
        car_bbox=(0, 0, 10, 10),
        car_conf=0.9,
        plate_bbox=(1, 1, 5, 3),
        plate_conf=0.8,
        text=text,
        raw_text=text,
        text_conf=conf,
        plate_area=8.0,
        sharpness=1.0,
    )


def test_track_alternatives_collects_distinct_plausible_other_reads():
    from dashcam.vote import track_alternatives

    reads = [
        _read("XSNB23", 0.9),
        _read("XSNB23", 0.8),
        _read("X5NB23", 0.6),
        _read("X5NB23", 0.4),
        _read("XSNB2", 0.5),
        _read("NB2", 0.9),
        _read("XSNB28", 0.0),
        _read("OHIO", 0.9),
    ]
    alts = track_alternatives(reads, "XSNB23")
    assert [(a.text, a.count, a.mean_conf) for a in alts] == [("X5NB23", 2, 0.5), ("XSNB2", 1, 0.5)]
    assert track_alternatives(reads, "XSNB23", limit=1)[0].text == "X5NB23"


def test_merged_duplicate_events_keep_both_alternatives():
    from dashcam.pipeline import _merge_duplicate_plates

    a = ev("vid-a", 1, "XSNB23", alts=[("X5NB23", 2, 0.5), ("XSNB2", 1, 0.4)]).model_copy(
        update={"first_frame_idx": 0, "last_frame_idx": 30, "plate_confidence": 0.9}
    )
    b = ev("vid-a", 2, "XSNB23", alts=[("X5NB23", 1, 0.8)]).model_copy(
        update={"first_frame_idx": 60, "last_frame_idx": 90, "plate_confidence": 0.7}
    )
    [m] = _merge_duplicate_plates([a, b], fps=30.0)
    assert [(x.text, x.count, x.mean_conf) for x in m.alternatives] == [("X5NB23", 3, 0.6), ("XSNB2", 1, 0.4)]


@pytest.mark.parametrize(
    "q",
    [
        "/a{,3}/",
        "/a{256}/",
        "/a{1,300}/",
        "/a{/",
        "/a}/",
        "/{2}/",
        "/x{2}y{0,}/",
        "/[a-]/",
        r"/\-/",
        "/()/",
        "/a+?/",
        "/[]a]/",
        "/[^]a]/",
        "/a**/",
        "/^*/",
        r"/\w\W\s\S\d\D/",
        "/$^/",
        "/(a|)/",
        "/[z-a]/",
        "/[\\d-z]/",
    ],
)
def test_regex_edge_cases_never_reach_the_database_as_errors(filled, q):
    """Each pattern is either refused with SearchError or runs on both backends (no DatabaseError:
    Python's re and PostgreSQL's ARE must agree on what is valid)."""
    try:
        page = search_events(filled, q)
    except SearchError as exc:
        assert str(exc) and "\n" not in str(exc)
    else:
        assert page.kind == "regex" and page.total >= 0
