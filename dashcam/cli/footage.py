"""``dashcam`` commands on footage and photos: ``ingest`` (the Prefect flow in this process, with a
progress bar and a summary table), ``plates`` (list/search stored plate events), ``read`` (plates on still
photos) and ``gps`` (where a video's GPS track comes from, GPX export).

Registered on the shared app of :mod:`dashcam.cli.common`; first in ``dashcam --help``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from dashcam.cli.common import (
    DatabaseUrl,
    DataDir,
    ModelDir,
    _first_line,
    _fmt,
    _quiet_prefect,
    _reader_db_url,
    _settings,
    app,
    console,
)
from dashcam.settings_cli import setting_option


@app.command()
def ingest(
    videos: Annotated[list[Path], typer.Argument(help="Dashcam video files (MP4, MOV, AVI, TS).")],
    gpx: Annotated[Path | None, setting_option("gpx", note="Used for every video given.")] = None,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    archive_dir: Annotated[Path | None, setting_option("archive_dir")] = None,
    work_dir: Annotated[Path | None, setting_option("work_dir")] = None,
    model_dir: ModelDir = None,
    detect_fps: Annotated[float | None, setting_option("detect_fps")] = None,
    archive_height: Annotated[int | None, setting_option("archive_height")] = None,
    camera_tz: Annotated[str | None, setting_option("camera_tz")] = None,
    max_parallel_videos: Annotated[int | None, setting_option("max_parallel_videos", "--parallel", "-j")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show Prefect's task logs.")] = False,
) -> None:
    """Run the Prefect flow ``ingest`` in this process on VIDEOS and print the plates found.

    Before any analysis: each path is checked (a missing file or a directory is reported and
    skipped, the others are ingested, the exit status is then 1), ``--gpx`` is read, and the
    results database is connected and migrated (an unreachable database fails in seconds).
    Without ``PREFECT_API_URL`` a local Prefect API server is started as a child of this process
    (same database as Prefect's ephemeral server, so run history persists) and dies with it.
    At start, temp files of killed runs are swept and runs left Running by a dead ``dashcam
    ingest`` are marked Crashed.
    """
    _quiet_prefect(verbose)
    settings = _settings(
        data_dir=data_dir,
        database_url=database_url,
        archive_dir=archive_dir,
        work_dir=work_dir,
        model_dir=model_dir,
        detect_fps=detect_fps,
        archive_height=archive_height,
        camera_tz=camera_tz,
        max_parallel_videos=max_parallel_videos,
    )
    good, bad = _split_videos(videos)
    for b in bad:
        console.print("[red]error:[/] " + escape(b), soft_wrap=True, highlight=False)
    if not good:
        raise typer.Exit(2)
    if gpx is not None:
        _check_gpx(gpx, settings.gps_max_gap_s)

    from dashcam.archive import sweep_stale_tmp
    from dashcam.db import _safe_url, check_database

    console.print(
        f"results database {_safe_url(settings.db_url)}; archive {settings.archive_dir}; work {settings.work_dir}",
        soft_wrap=True,
        highlight=False,
    )
    check_database(settings.db_url)  # DatabaseError -> one line, exit 1 (_App)
    swept = sweep_stale_tmp(settings.archive_dir, settings.work_dir)
    if swept:
        console.print(f"removed {len(swept)} temp file(s) left by a killed run", highlight=False)

    from prefect import tags
    from prefect.context import refresh_global_settings_context
    from prefect.settings import PREFECT_API_URL

    from dashcam.pipeline import add_progress_listener
    from dashcam.prefect_local import OWNER_TAG, LocalApiServer, crash_orphaned_runs, owner_tag
    from flows.ingest import ingest as ingest_flow

    server = None
    if not PREFECT_API_URL.value():
        try:
            server = LocalApiServer().start()
        except RuntimeError as exc:
            console.print(
                "[red]error:[/] " + escape(f"{_first_line(exc)} (set PREFECT_API_URL to use a running server)"),
                soft_wrap=True,
                highlight=False,
            )
            raise typer.Exit(1) from None
        os.environ["PREFECT_API_URL"] = server.api_url
        refresh_global_settings_context()
    try:
        try:
            crashed = crash_orphaned_runs()
        except Exception as exc:  # noqa: BLE001 - housekeeping; the run itself reports an unreachable API
            console.print(
                f"warning: could not look for runs of killed dashcam ingest processes: {_first_line(exc)}",
                soft_wrap=True,
                highlight=False,
            )
            crashed = []
        if crashed:
            console.print(f"marked {len(crashed)} run(s) of killed dashcam ingest processes Crashed", highlight=False)
        t0 = time.perf_counter()
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("frames"),
            TextColumn("{task.fields[fps]:.1f} fps"),
            TextColumn("{task.fields[plates]} reads / {task.fields[tracks]} vehicles"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        ) as progress:
            bars: dict[str, tuple[TaskID, float]] = {}

            def on_progress(p) -> None:
                if p.video_id not in bars:
                    bars[p.video_id] = (
                        progress.add_task(p.video_id, total=p.frame_count, fps=0.0, plates=0, tracks=0),
                        time.perf_counter(),
                    )
                tid, start = bars[p.video_id]
                elapsed = max(time.perf_counter() - start, 1e-6)
                progress.update(
                    tid,
                    completed=min(p.frames_decoded, p.frame_count),
                    fps=p.frames_decoded / elapsed,
                    plates=p.plates_read,
                    tracks=p.tracks_with_plates,
                )

            remove = add_progress_listener(on_progress)
            try:
                with tags(OWNER_TAG, owner_tag()):
                    state = ingest_flow(
                        [str(v.resolve()) for v in good],
                        gpx=str(gpx.resolve()) if gpx else None,
                        settings=settings,
                        return_state=True,
                    )
            finally:
                remove()
    finally:
        if server is not None:
            server.stop()

    _report_ingest(state, time.perf_counter() - t0)
    if bad:
        raise typer.Exit(1)


def _split_videos(videos: list[Path]) -> tuple[list[Path], list[str]]:
    """The regular files among VIDEOS, and one problem line for each other path (missing, a folder, ...)."""
    good: list[Path] = []
    bad: list[str] = []
    for v in videos:
        if v.is_dir():
            bad.append(f"{v}: is a directory, not a video file (give the files in it, e.g. {v}{os.sep}*.MP4)")
        elif not v.exists():
            bad.append(f"{v}: no such file")
        elif not v.is_file():
            bad.append(f"{v}: not a regular file")
        else:
            good.append(v)
    return good, bad


def _check_gpx(gpx: Path, max_gap_s: float) -> None:
    """Read ``--gpx`` before any analysis; an unreadable track is one error line and exit status 2."""
    from datetime import date

    from dashcam.gps import GpsError, load_track_file

    try:  # the date hint only stands in for date-less NMEA here
        load_track_file(gpx, max_gap_s, date_hint=date.today())
    except GpsError as exc:
        console.print("[red]error:[/] " + escape(f"--gpx {gpx}: {_first_line(exc)}"), soft_wrap=True, highlight=False)
        raise typer.Exit(2) from None


def _report_ingest(state, wall: float) -> None:
    """Print the summary table and warnings of the ``ingest`` flow run STATE (also the videos that did
    finish when others failed); a failed run prints its one line per failed video and exits 1."""
    result = state.result(raise_on_failure=False)
    summaries = result if state.is_completed() else getattr(result, "summaries", None)
    if summaries:
        _print_summary(summaries, wall)
        for s in summaries:  # under the table, on stdout like it
            for w in s.warnings:
                Console().print(f"warning: {Path(s.path).name}: {w}", soft_wrap=True, highlight=False, markup=False)
    if not state.is_completed():  # IngestError: "N of M videos failed:" + one line per failed video
        console.print("[red]ingest failed:[/] " + escape(str(result)), soft_wrap=True, highlight=False)
        raise typer.Exit(1)


def _print_summary(summaries, wall: float) -> None:
    table = Table(title=f"ingested {len(summaries)} video(s) in {wall:.1f} s")
    for col in ("video", "video_id", "duration", "analysed frames", "analyse time", "real-time factor", "plates"):
        table.add_column(col)
    for s in summaries:
        rtf = s.duration_s / s.wall_s if s.wall_s else 0.0
        plates = ", ".join(f"{p} ({c:.2f})" for p, c in s.plates) or "-"
        table.add_row(
            Path(s.path).name,
            s.video_id,
            f"{s.duration_s:.1f} s",
            str(s.frames_analyzed),
            f"{s.wall_s:.1f} s",
            f"{rtf:.2f}x",
            plates,
        )
    Console().print(table)
    for s in summaries:
        if getattr(s, "damage", None):
            from rich.markup import escape

            Console().print(
                f"[yellow]{escape(Path(s.path).name)} is damaged:[/] {escape(s.damage)} "
                "(the plates read before the damage are stored)",
                soft_wrap=True,
            )


@app.command()
def plates(
    video: Annotated[str | None, typer.Option("--video", help="Only this video_id.")] = None,
    plate: Annotated[
        str | None, typer.Option("--plate", help="Plate pattern, * and ? wildcards, case-insensitive.")
    ] = None,
    fuzzy: Annotated[
        str | None,
        typer.Option(
            "--fuzzy",
            help="Misread-tolerant search: exact matches, then OCR look-alikes ranked by score (docs/search.md).",
        ),
    ] = None,
    regex: Annotated[
        str | None,
        typer.Option(
            "--regex", help="Case-insensitive regular expression searched in the plate and its alternative readings."
        ),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", help="At most this many results for --fuzzy/--regex.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line (all columns).")] = False,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """List stored plate events (from the deployed results DB when PREFECT_API_URL is set)."""
    from dashcam.db import make_engine, query_events

    if sum(x is not None for x in (plate, fuzzy, regex)) > 1:
        console.print("[red]error:[/] use only one of --plate, --fuzzy, --regex")
        raise typer.Exit(2)
    engine = make_engine(_reader_db_url(data_dir, database_url))
    try:
        searched = fuzzy is not None or regex is not None  # dashcam.search (docs/search.md)
        if searched:
            from dashcam.search import SearchError, search_events

            if sum(x is not None for x in (plate, fuzzy, regex)) > 1:
                console.print("[red]error:[/] use only one of --plate, --fuzzy, --regex")
                raise typer.Exit(2)
            q = f"/{regex}/" if regex is not None else fuzzy
            try:
                page = search_events(engine, q, video_ids=[video] if video else None, limit=limit)
            except SearchError as exc:
                console.print(f"[red]error:[/] {exc}", soft_wrap=True)
                raise typer.Exit(2) from None
            rows = page.rows
        else:
            rows = query_events(engine, video_id=video, plate=plate)
    finally:
        engine.dispose()
    if as_json:
        for r in rows:
            sys.stdout.write(json.dumps(r) + "\n")
        return
    title = f"{len(rows)} of {page.total} plate events ({page.kind})" if searched else f"{len(rows)} plate events"
    table = Table(title=title)
    cols: tuple[str, ...] = ("ts", "final_plate", "confidence", "reads", "video_id", "frame_idx", "lat", "lon", "crop")
    if searched:
        cols = ("score", "matched", *cols)
    for col in cols:
        table.add_column(col)
    for r in rows:
        cells = [
            r["ts"],
            r["final_plate"],
            f"{r['plate_confidence']:.2f}",
            str(r["n_reads"]),
            r["video_id"],
            str(r["frame_idx"]),
            _fmt(r["lat"]),
            _fmt(r["lon"]),
            r["crop_path"] or "",
        ]
        if searched:
            cells = [f"{r['score']:.3f}", r["matched_text"], *cells]
        table.add_row(*cells)
    Console().print(table)


@app.command()
def read(
    images: Annotated[list[Path], typer.Argument(help="Photos (JPEG/PNG).")],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per image per line.")] = False,
    model_dir: ModelDir = None,
) -> None:
    """Detect and read licence plates on still photos.

    With ``--json`` stdout carries only the JSON lines: everything else (model loading, warnings,
    errors) goes to stderr. A missing, unreadable or oversized image is reported (one line) and
    the others are still read; the exit status is then 1.
    """
    os.environ.setdefault("YOLO_VERBOSE", "False")
    data_out = sys.stdout
    if as_json:  # fd 1 -> stderr for everyone (ultralytics' logger, C libraries); JSON -> the real stdout
        sys.stdout.flush()
        data_out = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
        os.dup2(2, 1)
    from dashcam.alpr import read_image

    settings = _settings(model_dir=model_dir)
    failed = 0
    for image in images:
        try:
            found = read_image(image, settings)
        except (OSError, ValueError) as exc:
            console.print("[red]error:[/] " + escape(f"{image}: {_first_line(exc)}"), soft_wrap=True, highlight=False)
            failed += 1
            continue
        if as_json:
            data_out.write(json.dumps({"image": str(image), "plates": found}) + "\n")
        else:
            Console().print(
                f"{image}: " + (", ".join(f"{p['text']} ({p['text_conf']:.2f})" for p in found) or "no plate")
            )
    data_out.flush()
    if failed:
        raise typer.Exit(1)


@app.command("gps")
def gps_cmd(
    video: Annotated[Path, typer.Argument(help="A dashcam video (MP4/MOV) or any video with a GPS sidecar.")],
    gpx_out: Annotated[Path | None, typer.Option("--gpx", help="Write the video's GPS track to this GPX file.")] = None,
    track: Annotated[Path | None, setting_option("gpx", "--track")] = None,
    camera_tz: Annotated[str | None, setting_option("camera_tz")] = None,
    track_dir: Annotated[Path | None, setting_option("gps_track_dir", "--track-dir")] = None,
) -> None:
    """Show where a video's GPS track comes from (embedded, sidecar, track folder) and export it as GPX."""
    import logging

    from dashcam.gps import GpsError, find_track, track_to_gpx
    from dashcam.video import VideoError, probe

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    settings = _settings(gpx=track, camera_tz=camera_tz, gps_track_dir=track_dir)
    try:
        info = probe(video, camera_tz=settings.camera_tz)
    except (VideoError, ValueError, OSError) as exc:
        console.print(f"[red]error:[/] {video}: {exc}")
        raise typer.Exit(1) from None
    problems: list[str] = []
    try:
        found = find_track(video, info, settings, problems=problems)
    except GpsError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from None
    out = Console()
    if found is None:
        if problems:  # a track file exists but is corrupt: name it instead of "no .gpx"
            out.print(f"{video.name}: no usable GPS: " + "; ".join(problems), soft_wrap=True, highlight=False)
            raise typer.Exit(1)
        out.print(
            f"{video.name}: no GPS (no embedded track, no same-stem .gpx/.nmea/.log"
            f"{', no track in ' + str(settings.gps_track_dir) if settings.gps_track_dir else ''})"
        )
        raise typer.Exit(1 if gpx_out else 0)
    trk, source = found
    assert trk.start is not None and trk.end is not None  # find_track gives only tracks with points
    for p in problems:  # e.g. a corrupt sidecar skipped for the track directory's log
        console.print(f"warning: {p}", soft_wrap=True, highlight=False)
    from datetime import timedelta

    from dashcam.gps import route_points

    route = route_points(trk, info.recording_start, info.recording_start + timedelta(seconds=info.duration_s))
    out.print(
        f"{video.name}: {len(trk)} GPS points from {source}, {trk.start.isoformat()} .. {trk.end.isoformat()} UTC"
    )
    out.print(
        f"  recording start {info.recording_start.isoformat()} ({info.recording_start_source}, camera_tz={settings.camera_tz}); "
        f"clock offset GPS - video {trk.clock_offset_s:+.1f} s; {len(route)} of {int(info.duration_s) + 1} seconds of video positioned"
    )
    if gpx_out:
        gpx_out.parent.mkdir(parents=True, exist_ok=True)
        gpx_out.write_text(track_to_gpx(trk, name=video.name), encoding="utf-8")
        out.print(f"  wrote {gpx_out}")
