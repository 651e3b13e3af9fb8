"""Plate search benchmark: query latency at 1,000,000 events and fuzzy recall on real misreads.

Usage::

    .venv/bin/python bench/search.py [--events 1000000] [--plates 100000] [--queries 200]
                                     [--backends sqlite,postgresql] [--seed 0] [--work DIR] [--reuse]
                                     [--kinds exact,wildcard,regex,fuzzy] [--pages 50]
    .venv/bin/python bench/search.py recall [--photo-reads FILE] [--distractors N]

``latency`` (the default) fills a fresh database per backend with :func:`fill_database` (SQLite in
``--work``; PostgreSQL started from the test suite's starter, ``tests/conftest.py``), then times
:func:`dashcam.search.search_events` (one open connection, ``limit=50``, as one web request does)
for ``--queries`` queries of each kind and prints p50 / p95 ms per backend and kind, plus the
synthetic fuzzy recall (is the true plate of a fresh misread in the top 1 / top 5):

* ``exact``: ``=PLATE`` of a stored plate;
* ``wildcard``: half ``ABC*`` (3-character prefix), half one or two interior ``?`` of a stored plate;
* ``regex``: ``/^AB.D/``-style (two-character anchored prefix, a dot, a literal);
* ``fuzzy``: a fresh synthetic misread (:func:`misread`) of a stored plate, plain text.

``--pages N`` (default 50; 0 skips it) then times the server-side render of the web UI's pages on
the same database (:func:`time_pages`: :func:`dashcam.web.create_app` in process, Starlette's
``TestClient``, no network, no Prefect API): the search page for fresh fuzzy misreads, wildcards
and regexes, the plate page of stored plates, a drive page, and the dashboard, drives and map
pages, ``N`` requests each, p50 / p95 ms (issue 12's target: every page <= 300 ms).

``recall`` runs every *misread* photo of ``bench/accuracy.py images`` (captured, read text differs
from the label) through the fuzzy search against a database of all photo labels (plus
``--distractors`` synthetic events, default 1,000,000, from :func:`fill_database`) and reports how
often the true plate is the top 1 and in the top 5 (ranks over distinct plates: a distractor
plate seen ten times counts once). The photo reads come from ``--photo-reads``
(JSON written by a previous run) or are made once with :func:`dashcam.alpr.read_array` exactly as
``bench/accuracy.py images`` does (minutes on a 2-core CPU) and cached there.

:func:`fill_database` is reusable (e.g. for page-render timings of the web UI):
``fill_database(url, n_events, n_plates, seed) -> dict``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("YOLO_VERBOSE", "False")

EVENTS_PER_VIDEO = 100
T_START = datetime(2024, 1, 1, tzinfo=UTC)
SPAN_S = 2 * 365 * 86400  # two years of driving
NL_LETTERS = "BDFGHJKLNPRSTVXZ"  # RDW: no vowels, no C/Q/W/M/Y in current series
ALL_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
DIGITS = "0123456789"


# --------------------------------------------------------------------------------------------
# Synthetic plates and misreads


def make_plates(n: int, rng: random.Random) -> list[str]:
    """``n`` distinct plate texts drawn from :data:`dashcam.vote.PLATE_FORMATS` slot patterns:
    70% Dutch sidecodes (NL letters), 30% the EU patterns (all letters)."""
    from dashcam.vote import PLATE_FORMATS

    nl, eu = PLATE_FORMATS["NL"].patterns, PLATE_FORMATS["EU"].patterns
    out: set[str] = set()
    while len(out) < n:
        if rng.random() < 0.7:
            pat, letters = rng.choice(nl), NL_LETTERS
        else:
            pat, letters = rng.choice(eu), ALL_LETTERS
        out.add("".join(rng.choice(letters) if s == "L" else rng.choice(DIGITS) for s in pat))
    return sorted(out)


_TABLES: tuple[dict, dict] | None = None


def _misread_tables() -> tuple[dict, dict]:
    global _TABLES
    if _TABLES is None:
        from dashcam.search import CONFUSION_CLASSES, SIMILAR_PAIRS

        cls = {c: chars for chars in CONFUSION_CLASSES.values() for c in chars}
        sim: dict[str, list[str]] = {}
        for p in SIMILAR_PAIRS:
            a, b = sorted(p)
            sim.setdefault(a, []).append(b)
            sim.setdefault(b, []).append(a)
        _TABLES = cls, sim
    return _TABLES


def misread(text: str, rng: random.Random) -> str:
    """One realistic OCR misread of ``text``: one edit (75%) or two, drawn like the bench confusion
    tables: look-alike substitution 45%, dropped edge character 10%, similar-pair substitution
    15%, dropped first group 5%, inner deletion 10%, random substitution 8%, insertion 7%."""
    cls, sim = _misread_tables()
    t = text
    for _ in range(1 if rng.random() < 0.75 else 2):
        r = rng.random()
        i = rng.randrange(len(t))
        if r < 0.45 and any(c in cls for c in t):
            i = rng.choice([j for j, c in enumerate(t) if c in cls])
            t = t[:i] + rng.choice([c for c in cls[t[i]] if c != t[i]]) + t[i + 1 :]
        elif r < 0.55 and len(t) > 4:
            t = t[1:] if rng.random() < 0.5 else t[:-1]
        elif r < 0.7 and any(c in sim for c in t):
            i = rng.choice([j for j, c in enumerate(t) if c in sim])
            t = t[:i] + rng.choice(sim[t[i]]) + t[i + 1 :]
        elif r < 0.75 and len(t) > 5:
            t = t[2:]
        elif r < 0.85 and len(t) > 4:
            t = t[:i] + t[i + 1 :]
        elif r < 0.93:
            t = t[:i] + rng.choice(ALL_LETTERS + DIGITS) + t[i + 1 :]
        else:
            t = t[:i] + rng.choice(ALL_LETTERS + DIGITS) + t[i:]
    return t


# --------------------------------------------------------------------------------------------
# Filling a database


def synthesize(n_events: int, n_plates: int, seed: int = 0) -> dict:
    """The rows :func:`fill_database` inserts (deterministic for a seed, except ``created_at``):
    ``{"videos", "vehicles", "readings", "variants", "texts", "truth", "plate_list", "gen_s"}``."""
    from dashcam.search import confusion_key, key_variants

    rng = random.Random(seed)
    t0 = time.perf_counter()
    plates = make_plates(n_plates, rng)
    weights = [1.0 / (i + 1) ** 0.6 for i in range(n_plates)]
    rng.shuffle(weights)
    drawn = rng.choices(plates, weights=weights, k=n_events)
    # the same car tends to be misread the same ways: a pool of 3 misreads per plate, 90% of the
    # alternatives come from it, 10% are fresh
    pools: dict[str, list[str]] = {}

    def alt_of(plate: str) -> str:
        pool = pools.get(plate)
        if pool is None:
            pool = pools[plate] = [misread(plate, rng) for _ in range(3)]
        return rng.choice(pool) if rng.random() < 0.9 else misread(plate, rng)

    now = datetime.now(UTC)
    videos, vehicles, readings, truth = [], [], [], {}
    keys: set[str] = set()
    texts: set[str] = set()
    n_videos = (n_events + EVENTS_PER_VIDEO - 1) // EVENTS_PER_VIDEO
    for v in range(n_videos):
        vid = f"synth{v:07d}"
        start = T_START + timedelta(seconds=rng.randrange(SPAN_S))
        evs = drawn[v * EVENTS_PER_VIDEO : (v + 1) * EVENTS_PER_VIDEO]
        videos.append(
            {
                "id": vid,
                "path": f"/videos/{vid}_F.MP4",
                "size_bytes": 300_000_000,
                "duration_s": 180.0,
                "fps": 30.0,
                "width": 1920,
                "height": 1080,
                "codec": "h264",
                "recording_start": start,
                "recording_start_source": "filename",
                "camera": "F",
                "archive_path": f"/archive/{vid}/{vid}.mp4",
                "n_events": len(evs),
                "ingested_at": now,
                "damage": None,
            }
        )
        lat0, lon0 = 51.5 + rng.random() * 1.8, 4.0 + rng.random() * 2.5
        for tid, plate in enumerate(evs, start=1):
            final = alt_of(plate) if rng.random() < 0.1 else plate
            pts = rng.random() * 180.0
            fi = int(pts * 30)
            eid = f"{vid}:{tid}"
            truth[eid] = plate
            k = confusion_key(final)
            keys.add(k)
            texts.add(final)
            vehicles.append(
                {
                    "id": eid,
                    "track_id": tid,
                    "video_id": vid,
                    "frame_idx": fi,
                    "ts": start + timedelta(seconds=pts),
                    "final_plate": final,
                    "plate_confidence": round(0.6 + 0.4 * rng.random(), 4),
                    "car_bbox": [100.0, 200.0, 900.0, 800.0],
                    "plate_bbox": [400.0, 600.0, 520.0, 640.0],
                    "created_at": now,
                    "video_path": f"/videos/{vid}_F.MP4",
                    "pts_s": pts,
                    "lat": lat0 + pts * 1e-4,
                    "lon": lon0 + pts * 1e-4,
                    "speed_mps": 13.9,
                    "heading_deg": 90.0,
                    "crop_path": f"/archive/{vid}/crops/{tid}.jpg",
                    "thumb_path": f"/archive/{vid}/thumbs/{tid}.jpg",
                    "n_reads": 6,
                    "first_frame_idx": max(0, fi - 30),
                    "last_frame_idx": fi + 30,
                    "confusion_key": k,
                }
            )
            seen = {final}
            for _ in range(rng.choice((0, 1, 1, 2, 2, 3))):
                alt = alt_of(plate) if rng.random() < 0.85 else plate
                if alt in seen:
                    continue
                seen.add(alt)
                ak = confusion_key(alt)
                keys.add(ak)
                texts.add(alt)
                readings.append(
                    {
                        "vehicle_id": eid,
                        "text": alt,
                        "count": rng.randint(1, 4),
                        "mean_conf": round(0.3 + 0.5 * rng.random(), 4),
                        "confusion_key": ak,
                    }
                )
    variants = sorted({(var, k) for k in keys if k for var in key_variants(k)})
    return {
        "videos": videos,
        "vehicles": vehicles,
        "readings": readings,
        "variants": variants,
        "texts": texts,
        "truth": truth,
        "plate_list": plates,
        "gen_s": time.perf_counter() - t0,
    }


def fill_database(url: str, n_events: int, n_plates: int, seed: int = 0) -> dict:
    """Fill the (fresh, migrated here) results database at ``url`` with synthetic events.

    ``n_plates`` plates (:func:`make_plates`) are sighted ``n_events`` times (Zipf-like: a few
    plates often, most a few times) in videos of :data:`EVENTS_PER_VIDEO` events spread over two
    years, at positions in the Netherlands. Each event has 0-3 alternative readings
    (:func:`misread` of its plate, 1-4 reads each) and in 10% of events the final plate itself is a
    misread. Rows are exactly what :func:`dashcam.db.save_video` writes (same columns, keys and
    variants), inserted in bulk (PostgreSQL: COPY). Returns ``{"events", "plates", "videos",
    "readings", "variants", "fill_s", "truth"}``, ``truth`` mapping event id -> true plate.
    """
    import sqlalchemy as sa

    from dashcam.db import PLATE_KEY_VARIANTS, PLATE_READINGS, PLATE_TEXTS, VEHICLES, VIDEOS, make_engine

    t0 = time.perf_counter()
    syn = synthesize(n_events, n_plates, seed)
    videos, vehicles, readings, variants, texts = (
        syn[k] for k in ("videos", "vehicles", "readings", "variants", "texts")
    )
    gen_s = syn["gen_s"]
    truth, plates = syn["truth"], syn["plate_list"]
    engine = make_engine(url)
    try:
        if engine.dialect.name == "postgresql":
            _copy_pg(engine, VIDEOS, videos)
            _copy_pg(engine, VEHICLES, vehicles)
            _copy_pg(engine, PLATE_READINGS, readings)
            _copy_pg(engine, PLATE_KEY_VARIANTS, [{"variant": a, "confusion_key": b} for a, b in variants])
            _copy_pg(engine, PLATE_TEXTS, [{"text": t} for t in sorted(texts)])
            with engine.connect() as conn:
                conn.execution_options(isolation_level="AUTOCOMMIT").execute(sa.text("ANALYZE"))
        else:
            with engine.begin() as conn:
                for table, rows in (
                    (VIDEOS, videos),
                    (VEHICLES, vehicles),
                    (PLATE_READINGS, readings),
                    (PLATE_KEY_VARIANTS, [{"variant": a, "confusion_key": b} for a, b in variants]),
                    (PLATE_TEXTS, [{"text": t} for t in sorted(texts)]),
                ):
                    _insert_sqlite(conn, table, rows)
            with engine.connect() as conn:
                conn.exec_driver_sql("ANALYZE")
    finally:
        engine.dispose()
    return {
        "events": len(vehicles),
        "plates": n_plates,
        "videos": len(videos),
        "readings": len(readings),
        "variants": len(variants),
        "texts": len(texts),
        "gen_s": gen_s,
        "fill_s": time.perf_counter() - t0,
        "truth": truth,
        "plate_list": plates,
    }


def _insert_sqlite(conn, table, rows: list[dict]) -> None:
    """executemany on the DBAPI cursor with SQLAlchemy's own bind processors of each column (the
    same stored values as ``conn.execute(insert(table), rows)``, several times faster)."""
    if not rows:
        return
    cols = list(rows[0])
    procs = [table.c[c].type.bind_processor(conn.dialect) for c in cols]
    sql = f"INSERT INTO {table.name} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
    cur = conn.connection.dbapi_connection.cursor()
    try:
        for i in range(0, len(rows), 50000):
            cur.executemany(
                sql,
                [tuple(p(r[c]) if p else r[c] for p, c in zip(procs, cols, strict=True)) for r in rows[i : i + 50000]],
            )
    finally:
        cur.close()


def _copy_pg(engine, table, rows: list[dict]) -> None:
    """COPY ``rows`` into ``table`` (JSON columns as JSON text) over the engine's psycopg driver."""
    if not rows:
        return
    cols = list(rows[0])
    json_cols = {c.name for c in table.columns if c.type.__class__.__name__ == "JSON"}
    raw = engine.raw_connection()
    try:
        with raw.cursor() as cur, cur.copy(f"COPY {table.name} ({', '.join(cols)}) FROM STDIN") as cp:
            for r in rows:
                cp.write_row([json.dumps(r[c]) if c in json_cols else r[c] for c in cols])
        raw.commit()
    finally:
        raw.close()


# --------------------------------------------------------------------------------------------
# Queries and timing


def make_queries(plates: list[str], n: int, seed: int) -> dict[str, list[tuple[str, str | None]]]:
    """``{kind: [(query, true_plate), ...]}``, ``n`` per kind (module docstring), from ``plates``
    (pass plates that have sightings)."""
    rng = random.Random(seed + 1)
    out: dict[str, list] = {"exact": [], "wildcard": [], "regex": [], "fuzzy": []}
    for i in range(n):
        p = rng.choice(plates)
        out["exact"].append((f"={p}", p))
        if i % 2 == 0:
            w = p[:3] + "*"
        else:
            pos = rng.sample(range(1, len(p) - 1), k=rng.choice((1, 2)))
            w = "".join("?" if j in pos else c for j, c in enumerate(p))
        out["wildcard"].append((w, p))
        out["regex"].append((f"/^{p[:2]}.{p[3]}/", p))
        m = misread(p, rng)
        while m == p:
            m = misread(p, rng)
        out["fuzzy"].append((m, p))
    return out


def time_queries(url: str, queries: dict, truth: dict) -> dict:
    """Run each query once over one connection; ``{kind: {"p50", "p95", "max", "cpu_p50",
    "cpu_p95", "mean_total", "top1", "top5", "n"}}``: wall and process-CPU ms, mean ``total``,
    and the share of queries whose true plate is the first / among the first five distinct
    plates of the rows (each row counted as ``truth`` of its event: the plate behind a misread
    final plate)."""
    from dashcam.db import make_engine
    from dashcam.search import search_events

    engine = make_engine(url)
    res = {}
    try:
        with engine.connect() as conn:
            search_events(conn, "WARMUP")  # first-statement costs (plan cache, pages) out of the way
            for kind, qs in queries.items():
                ms, cpu, totals, top1, top5 = [], [], [], 0, 0
                for q, want in qs:
                    t0, c0 = time.perf_counter(), time.process_time()
                    page = search_events(conn, q, limit=50)
                    ms.append(1000 * (time.perf_counter() - t0))
                    cpu.append(1000 * (time.process_time() - c0))
                    totals.append(page.total)
                    # ranks over distinct plates (a plate seen ten times counts once), by the true
                    # plate behind each row (a misread final plate counts as its true plate)
                    got = list(dict.fromkeys(truth.get(r["id"], r["final_plate"]) for r in page.rows))[:5]
                    top1 += bool(got) and got[0] == want
                    top5 += want in got
                ms.sort()
                cpu.sort()
                res[kind] = {
                    "p50": statistics.median(ms),
                    "p95": ms[min(len(ms) - 1, int(0.95 * len(ms)))],
                    "cpu_p50": statistics.median(cpu),
                    "cpu_p95": cpu[min(len(cpu) - 1, int(0.95 * len(cpu)))],
                    "max": ms[-1],
                    "mean_total": statistics.mean(totals),
                    "top1": top1 / len(qs),
                    "top5": top5 / len(qs),
                    "n": len(qs),
                }
    finally:
        engine.dispose()
    return res


PAGE_TARGET_MS = 300.0  # issue 12: every page <= 300 ms server time at 1,000,000 events


def time_pages(url: str, queries: dict, n: int, work: Path) -> tuple[dict, list[str]]:
    """Time ``n`` GET requests of each web UI page against the (migrated) database at ``url``.

    The app is :func:`dashcam.web.create_app` with ``Settings(database_url=url)`` and an empty
    archive / data folder under ``work`` (no Prefect API, no login), driven in process by
    ``fastapi.testclient.TestClient``: the time is the server's (routing, SQL, Python, Jinja2
    render) plus the in-process client's small share, no network. Varying pages take a different
    query / plate per request from ``queries`` (:func:`make_queries`): ``search fuzzy`` a fresh
    misread, ``search wildcard`` / ``search regex`` the bench's patterns, ``plate`` the true plate
    of an exact query; ``drive`` cycles over the newest drives. One untimed warm-up request per
    page first. Returns ``({page: {"p50", "p95", "max", "cpu_p50", "n", "kib", "status"}},
    notes)``: ms, process CPU ms, mean body KiB, the status codes seen; ``notes`` says what the
    synthetic data lacks (e.g. no ``routes`` rows: km 0, no route on the map).
    """
    from urllib.parse import quote, urlencode

    import sqlalchemy as sa
    from fastapi.testclient import TestClient

    from dashcam.db import ROUTES, VIDEOS, make_engine
    from dashcam.drives import load_drives
    from dashcam.settings import Settings
    from dashcam.web import create_app

    notes = []
    engine = make_engine(url)  # migrates an older bench database to head (the app never does)
    try:
        with engine.connect() as conn:
            n_videos = conn.execute(sa.select(sa.func.count()).select_from(VIDEOS)).scalar_one()
            n_routes = conn.execute(sa.select(sa.func.count()).select_from(ROUTES)).scalar_one()
            drives = load_drives(conn)
    finally:
        engine.dispose()
    if not n_routes:
        notes.append(
            f"no routes rows (the synthetic fill writes none): drive km are 0 and the drive page has "
            f"no route or speed chart; {n_videos:,} videos grouped into {len(drives):,} drives"
        )
    home = work / "web"
    (home / "archive").mkdir(parents=True, exist_ok=True)
    settings = Settings(database_url=url, data_dir=home, archive_dir=home / "archive")
    app = create_app(settings, prefect_api_url=None, prefect_ui_url=None)
    urls: dict[str, list[str]] = {
        "dashboard /": ["/"],
        "drives /drives": ["/drives"],
        "map /map": ["/map"],
        "search fuzzy": [f"/search?{urlencode({'q': q})}" for q, _ in queries["fuzzy"]],
        "search wildcard": [f"/search?{urlencode({'q': q})}" for q, _ in queries["wildcard"]],
        "search regex": [f"/search?{urlencode({'q': q})}" for q, _ in queries["regex"]],
        "plate /plates/P": [f"/plates/{quote(p)}" for _, p in queries["exact"]],
    }
    if drives:
        urls["drive /drives/ID"] = [f"/drives/{quote(d.id)}" for d in drives[: max(1, n)]]
    else:
        notes.append("drive page skipped: no videos rows")
    res = {}
    with TestClient(app) as client:
        for name, us in urls.items():
            client.get(us[-1])  # warm-up: first-statement costs, template compile
            ms, cpu, kib, status = [], [], [], set()
            for i in range(n):
                t0, c0 = time.perf_counter(), time.process_time()
                r = client.get(us[i % len(us)])
                ms.append(1000 * (time.perf_counter() - t0))
                cpu.append(1000 * (time.process_time() - c0))
                kib.append(len(r.content) / 1024)
                status.add(r.status_code)
            ms.sort()
            cpu.sort()
            res[name] = {
                "p50": statistics.median(ms),
                "p95": ms[min(len(ms) - 1, int(0.95 * len(ms)))],
                "max": ms[-1],
                "cpu_p50": statistics.median(cpu),
                "n": n,
                "kib": statistics.mean(kib),
                "status": ",".join(str(x) for x in sorted(status)),
            }
            print(
                f"  page {name}: p50 {res[name]['p50']:.0f} ms, p95 {res[name]['p95']:.0f} ms",
                file=sys.stderr,
                flush=True,
            )
    return res, notes


def _db_size(url: str) -> str:
    import sqlalchemy as sa

    from dashcam.db import make_engine

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                b = conn.execute(sa.text("SELECT pg_database_size(current_database())")).scalar_one()
            else:
                b = Path(engine.url.database).stat().st_size
    finally:
        engine.dispose()
    return f"{b / 2**20:.0f} MiB"


def _print_pages(console, pages: dict[str, tuple[dict, list[str]]], n: int) -> None:
    from rich.table import Table

    pt = Table(
        title=f"web UI page render (server side, in-process TestClient), {n} requests per page, "
        f"target <= {PAGE_TARGET_MS:.0f} ms (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)"
    )
    for c in ("backend", "page", "p50 ms", "p95 ms", "max ms", "CPU p50 ms", "KiB", "status", "<= 300 ms"):
        pt.add_column(c, justify="right")
    for backend, (res, _) in pages.items():
        for name, r in res.items():
            pt.add_row(
                backend,
                name,
                f"{r['p50']:.1f}",
                f"{r['p95']:.1f}",
                f"{r['max']:.1f}",
                f"{r['cpu_p50']:.1f}",
                f"{r['kib']:.0f}",
                r["status"],
                "yes" if r["p95"] <= PAGE_TARGET_MS else "NO",
            )
    console.print(pt)
    for backend, (_, notes) in pages.items():
        for note in notes:
            console.print(f"  {backend}: {note}", highlight=False)


def cmd_latency(args) -> int:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=160)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    work = Path(args.work or tempfile.mkdtemp(prefix="dashcam-bench-search-"))
    work.mkdir(parents=True, exist_ok=True)
    results = {}
    fills = {}
    pages: dict[str, tuple[dict, list[str]]] = {}
    for backend in backends:
        with _database(backend, work, reuse=args.reuse) as url:
            meta = work / f"search-{args.events}-{args.plates}-{args.seed}.json"
            if args.reuse and backend == "sqlite" and (work / "search.db").exists() and meta.exists():
                st = json.loads(meta.read_text())  # the database of an earlier run with these arguments
            else:
                st = fill_database(url, args.events, args.plates, args.seed)
                if backend == "sqlite":
                    meta.write_text(json.dumps(st))
            fills[backend] = {k: v for k, v in st.items() if k not in ("truth", "plate_list")}
            fills[backend]["size"] = _db_size(url)
            console.print(f"{backend}: filled {fills[backend]}", highlight=False)
            seen = sorted(set(st["truth"].values()))  # plates with at least one sighting
            queries = make_queries(seen, args.queries, args.seed)
            queries = {k: v for k, v in queries.items() if k in args.kinds.split(",")}
            results[backend] = time_queries(url, queries, st["truth"])
            if args.pages:
                pq = make_queries(seen, args.pages, args.seed + 7)
                pages[backend] = time_pages(url, pq, args.pages, work / f"pages-{backend}")
    load = os.getloadavg()[0]
    t = Table(
        title=f"search_events at {args.events:,} events / {args.plates:,} plates, {args.queries} queries per kind, "
        f"limit 50 (load average at the end {load:.1f} on {os.cpu_count()} CPUs; CPU = this process: "
        "all of SQLite's work, only the client's for PostgreSQL)"
    )
    for c in (
        "backend",
        "kind",
        "p50 ms",
        "p95 ms",
        "max ms",
        "CPU p50 ms",
        "CPU p95 ms",
        "mean total",
        "top-1",
        "top-5",
    ):
        t.add_column(c, justify="right")
    for backend, res in results.items():
        for kind, r in res.items():
            recall = kind in ("exact", "fuzzy")  # a pattern matches several plates by design
            t.add_row(
                backend,
                kind,
                f"{r['p50']:.1f}",
                f"{r['p95']:.1f}",
                f"{r['max']:.1f}",
                f"{r['cpu_p50']:.1f}",
                f"{r['cpu_p95']:.1f}",
                f"{r['mean_total']:.0f}",
                f"{r['top1']:.1%}" if recall else "-",
                f"{r['top5']:.1%}" if recall else "-",
            )
    console.print(t)
    if pages:
        _print_pages(console, pages, args.pages)
    f = Table(title="fill")
    for c in ("backend", "events", "readings", "variants", "texts", "generate s", "fill s", "size"):
        f.add_column(c, justify="right")
    for backend, st in fills.items():
        f.add_row(
            backend,
            f"{st['events']:,}",
            f"{st['readings']:,}",
            f"{st['variants']:,}",
            f"{st['texts']:,}",
            f"{st['gen_s']:.0f}",
            f"{st['fill_s']:.0f}",
            st["size"],
        )
    console.print(f)
    return 0


class _database:
    """Context manager: the URL of a fresh database of ``backend`` ("sqlite" | "postgresql")."""

    def __init__(self, backend: str, work: Path, name: str = "search", url: str | None = None, reuse: bool = False):
        self.backend, self.work, self.name, self.url, self.reuse = backend, work, name, url, reuse
        self._pg = None

    def __enter__(self) -> str:
        if self.url:
            return self.url
        if self.backend == "sqlite":
            path = self.work / f"{self.name}.db"
            if self.reuse and path.exists():
                return f"sqlite:///{path}"
            for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
                p.unlink(missing_ok=True)
            return f"sqlite:///{path}"
        if self.backend != "postgresql":
            raise SystemExit(f"unknown backend {self.backend!r} (sqlite, postgresql)")
        existing = os.environ.get("DASHCAM_TEST_PG_URL")
        if existing:
            return existing
        sys.path[:0] = [str(REPO / "tests"), str(REPO / "infra")]
        import conftest  # the test suite's PostgreSQL starter (named either way)

        starter = getattr(conftest, "_local_postgres", None) or conftest.local_postgres
        self._pg = starter()
        server = self._pg.__enter__()
        return server.url(server.create_database())

    def __exit__(self, *exc) -> None:
        if self._pg is not None:
            self._pg.__exit__(*exc)


# --------------------------------------------------------------------------------------------
# Fuzzy recall on the real photo misreads


def photo_reads(cache: Path | None) -> list[dict]:
    """Every photo of ``plates-images/labels.csv`` read as ``bench/accuracy.py images`` reads it
    (:func:`dashcam.alpr.read_array`, region plate formats, best-IoU plate): ``[{"file",
    "region", "label", "captured", "correct", "best", "texts"}]``; loaded from / saved to
    ``cache`` (JSON) when given."""
    if cache is not None and cache.is_file():
        return json.loads(cache.read_text())

    import cv2

    sys.path.insert(0, str(REPO / "bench"))
    import accuracy

    from dashcam.alpr import normalize_plate, read_array
    from dashcam.settings import Settings

    root = accuracy.shared_dir() / "data" / "plates-images"
    rows = accuracy.csv_rows(root / "labels.csv")
    by_region = {
        reg: Settings(model_dir=accuracy.model_dir(), plate_formats=f) for reg, f in accuracy.REGION_FORMATS.items()
    }
    out = []
    for r in rows:
        img = cv2.imread(str(root / r["file"]))
        label = normalize_plate(r["plate_text"])
        gt = tuple(float(r[k]) for k in ("x1", "y1", "x2", "y2"))
        res = read_array(img, by_region[r["region"]])
        best, captured, correct = accuracy.match(res, gt, label)
        out.append(
            {
                "file": r["file"],
                "region": r["region"],
                "label": label,
                "captured": captured,
                "correct": correct,
                "best": best["text"] if best else None,
                "texts": [d["text"] for d in res],
            }
        )
    if cache is not None:
        from dashcam.archive import atomic_write_text

        atomic_write_text(cache, json.dumps(out, indent=1))
    return out


def cmd_recall(args) -> int:
    from rich.console import Console
    from rich.table import Table

    from dashcam.db import make_engine, save_video
    from dashcam.records import PlateEvent, VideoInfo
    from dashcam.search import search_events

    console = Console(width=160)
    reads = photo_reads(Path(args.photo_reads) if args.photo_reads else None)
    misreads = [r for r in reads if r["captured"] and not r["correct"]]
    labels = sorted({r["label"] for r in reads})
    work = Path(args.work or tempfile.mkdtemp(prefix="dashcam-bench-recall-"))
    work.mkdir(parents=True, exist_ok=True)
    t = Table(
        title=f"fuzzy recall: {len(misreads)} misread photos (captured, read != label) of {len(reads)}; "
        f"database: {len(labels)} photo labels + distractors"
    )
    for c in ("backend", "distractor events", "top-1", "top-5", "found (any rank)", "median ms"):
        t.add_column(c, justify="right")
    misses = []
    for backend in [b.strip() for b in args.backends.split(",") if b.strip()]:
        with _database(backend, work, "recall", args.database_url) as url:
            if args.distractors and not args.database_url:
                fill_database(url, args.distractors, args.plates, args.seed)
            engine = make_engine(url)
            try:
                info = VideoInfo(
                    path="/photos",
                    video_id="photos",
                    size_bytes=0,
                    duration_s=0.0,
                    fps=1.0,
                    frame_count=len(labels),
                    width=0,
                    height=0,
                    codec="jpeg",
                    recording_start=T_START,
                    recording_start_source="filename",
                )
                events = [
                    PlateEvent(
                        video_id="photos",
                        track_id=i,
                        frame_idx=i,
                        pts_s=float(i),
                        ts=T_START + timedelta(seconds=i),
                        final_plate=lab,
                        plate_confidence=0.9,
                        car_bbox=(0, 0, 1, 1),
                        plate_bbox=(0, 0, 1, 1),
                        n_reads=1,
                        first_frame_idx=i,
                        last_frame_idx=i,
                    )
                    for i, lab in enumerate(labels)
                ]
                save_video(engine, info, events, None)
                top1 = top5 = anyrank = 0
                ms = []
                with engine.connect() as conn:
                    for r in misreads:
                        t0 = time.perf_counter()
                        page = search_events(conn, r["best"], limit=1000)
                        ms.append(1000 * (time.perf_counter() - t0))
                        ranked = list(
                            dict.fromkeys(row["final_plate"] for row in page.rows)
                        )  # distinct plates, in rank order
                        rank = ranked.index(r["label"]) if r["label"] in ranked else None
                        top1 += rank == 0
                        top5 += rank is not None and rank < 5
                        anyrank += rank is not None
                        if rank != 0:
                            misses.append((backend, r["label"], r["best"], rank, ranked[:3]))
            finally:
                engine.dispose()
            n = len(misreads) or 1
            t.add_row(
                backend,
                f"{args.distractors:,}",
                f"{top1}/{len(misreads)} = {top1 / n:.0%}",
                f"{top5}/{len(misreads)} = {top5 / n:.0%}",
                f"{anyrank}/{len(misreads)}",
                f"{statistics.median(ms):.1f}" if ms else "-",
            )
    console.print(t)
    for m in misses:
        console.print(
            f"  {m[0]}: label {m[1]} read {m[2]}: rank {'not found' if m[3] is None else m[3] + 1}, top 3 {m[4]}",
            highlight=False,
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd")
    for p in (ap, sub.add_parser("latency", help="query latency (default)")):
        p.add_argument("--events", type=int, default=1_000_000)
        p.add_argument("--plates", type=int, default=100_000)
        p.add_argument("--queries", type=int, default=200)
        p.add_argument("--backends", default="sqlite,postgresql")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--work", help="folder for the SQLite database (default: a temporary one)")
        p.add_argument(
            "--reuse",
            action="store_true",
            help="SQLite: time the database an earlier run with the same --work/--events/--plates/--seed left",
        )
        p.add_argument("--kinds", default="exact,wildcard,regex,fuzzy")
        p.add_argument(
            "--pages", type=int, default=50, help="requests per web UI page for the page-render timings (0: skip them)"
        )
    rp = sub.add_parser("recall", help="fuzzy recall on the misread photos of bench/accuracy.py images")
    rp.add_argument("--photo-reads", help="JSON cache of the photo reads (made if missing)")
    rp.add_argument("--distractors", type=int, default=1_000_000)
    rp.add_argument("--plates", type=int, default=100_000)
    rp.add_argument("--backends", default="sqlite")
    rp.add_argument("--seed", type=int, default=0)
    rp.add_argument("--work")
    rp.add_argument(
        "--database-url", help="reuse this already filled database instead of a fresh one (distractors not added)"
    )
    args = ap.parse_args(argv)
    if args.cmd == "recall":
        return cmd_recall(args)
    return cmd_latency(args)


if __name__ == "__main__":
    raise SystemExit(main())
