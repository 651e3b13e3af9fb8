"""``dashcam`` command line: ingest videos, list stored plate events, read plates on photos."""

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

from dashcam.settings_cli import setting_option


class _App(typer.Typer):
    """Typer app whose commands end with a one-line error (exit 1) on a database failure,
    whichever command hit it, instead of a traceback; likewise (exit 2) on invalid settings
    (e.g. ``dashcam deploy`` with a bad ``DASHCAM_*`` value)."""

    def __call__(self, *args, **kwargs):
        try:
            return super().__call__(*args, **kwargs)
        except Exception as exc:
            from dashcam.settings import SettingsError

            if isinstance(exc, SettingsError):
                console.print("[red]error:[/] " + escape(str(exc)), soft_wrap=True, highlight=False)
                sys.exit(2)
            db = sys.modules.get("dashcam.db")
            if db is None or not isinstance(exc, db.DatabaseError):
                raise
            console.print("[red]error:[/] " + escape(_first_line(exc)), soft_wrap=True, highlight=False)
            sys.exit(1)


app = _App(help="Self-hosted ALPR for dashcam footage.", no_args_is_help=True, add_completion=False)
console = Console(stderr=True)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# Options that set a Settings field: setting_option() writes the help from the schema
# (dashcam/settings.py; tests/test_settings.py fails on help written here by hand)
DataDir = Annotated[Path | None, setting_option("data_dir")]
DatabaseUrl = Annotated[str | None, setting_option("database_url")]
ModelDir = Annotated[Path | None, setting_option("model_dir")]


def _settings(**overrides):
    """Settings from the given options (None: not given) over the environment; an invalid value
    ends the command with one line (exit 2)."""
    from dashcam.settings import Settings, SettingsError

    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except SettingsError as exc:
        console.print("[red]error:[/] " + escape(str(exc)), soft_wrap=True, highlight=False)
        raise typer.Exit(2) from None


def _quiet_prefect(verbose: bool) -> None:
    # must run before prefect is imported: Prefect reads its settings at import time
    # the run's logs still reach the Prefect API (run history in the UI); only the terminal is
    # kept for the progress bar and the summary unless --verbose
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "INFO" if verbose else "CRITICAL")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("YOLO_VERBOSE", "False")  # ultralytics' model-loading chatter


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


def _fmt(v) -> str:
    return "" if v is None else f"{v:.6f}"


def _reader_db_url(data_dir: Path | None, database_url: str | None) -> str:
    """The results DB a read command (``plates``, ``web``) uses, said on stderr with where it came
    from: the given URL / data dir, else the deployed DB from the Prefect blocks when
    ``PREFECT_API_URL`` is set (:func:`dashcam.settings.resolve_database`). A config error or a
    SQLite file that does not exist ends the command with one line (exit 1)."""
    from dashcam.settings import DatabaseConfigError, redact_url, resolve_database

    try:
        url, source = resolve_database(_settings(data_dir=data_dir, database_url=database_url))
    except DatabaseConfigError as exc:
        console.print(f"error: {exc}", soft_wrap=True, markup=False, highlight=False, style="red")
        raise typer.Exit(1) from None
    _require_existing_db(url, source)
    console.print(f"results DB: {redact_url(url)} ({source})", soft_wrap=True, markup=False, highlight=False)
    return url


def _require_existing_db(url: str, where: str) -> None:
    """Read commands: a SQLite results DB (``url``; ``where``: why that one) that does not exist
    is an error (a mistyped DASHCAM_DATA_DIR / --data-dir / URL), not a new empty database."""
    from dashcam.db import sqlite_path

    path = sqlite_path(url)
    if path is not None and not path.exists():
        console.print(
            "[red]error:[/] "
            + escape(
                f"no results database at {path} ({where}): it does not exist; "
                "check the path, or run dashcam ingest first"
            ),
            soft_wrap=True,
            highlight=False,
        )
        raise typer.Exit(1)


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


@app.command("config")
def config_cmd(
    as_json: Annotated[
        bool, typer.Option("--json", help="The settings in effect as one JSON object (secrets masked).")
    ] = False,
    markdown: Annotated[
        bool, typer.Option("--markdown", help="Print the settings table of docs/configuration.md instead.")
    ] = False,
    write_doc: Annotated[
        Path | None,
        typer.Option(
            "--write-doc", help="Rewrite the generated settings table in this Markdown file (docs/configuration.md)."
        ),
    ] = None,
) -> None:
    """Show the settings in effect (schema defaults < DASHCAM_* environment), with env var and meaning."""
    from dashcam.settings import env_var, redact_url, secret_fields
    from dashcam.settings_cli import description, settings_markdown
    from dashcam.settings_cli import write_doc as write_settings_doc

    if markdown:
        sys.stdout.write(settings_markdown(app))
        return
    if write_doc is not None:
        try:
            changed = write_settings_doc(write_doc, app)
        except (OSError, ValueError) as exc:
            console.print(
                "[red]error:[/] " + escape(f"{write_doc}: {_first_line(exc)}"), soft_wrap=True, highlight=False
            )
            raise typer.Exit(1) from None
        console.print(
            f"{write_doc}: settings table {'rewritten' if changed else 'already up to date'}", highlight=False
        )
        return
    settings = _settings()
    values = settings.model_dump(mode="json")
    values["database_url"] = redact_url(settings.db_url)  # password hidden, the rest is useful
    if as_json:
        sys.stdout.write(json.dumps(values, indent=1) + "\n")
        return
    table = Table(title="settings (dashcam.settings.Settings; docs/configuration.md)")
    for col in ("setting", "value", "from", "meaning"):
        table.add_column(col)
    secrets = secret_fields()
    for name, value in values.items():
        if name in secrets and name != "database_url":
            shown = "***" if value is not None else ""
        else:
            shown = "" if value is None else json.dumps(value) if isinstance(value, bool | list) else str(value)
        table.add_row(name, shown, env_var(name) if env_var(name) in os.environ else "default", description(name))
    Console().print(table)


@app.command()
def deploy(
    raw_dir: Annotated[str, setting_option("raw_dir", note="Saved in the NasLayout block.")],
    gpu_concurrency: Annotated[int, typer.Option("--gpu-concurrency", help="Flow runs at once on pool gpu.")] = 1,
    zombie_after_s: Annotated[
        int, typer.Option("--zombie-after-s", help="Mark a run Crashed after this long without heartbeats.")
    ] = 90,
) -> None:
    """Register work pools, blocks, deployments and crash-recovery automations on PREFECT_API_URL.

    Paths and the database come from the DASHCAM_* environment (docs/deploy.md). Idempotent.
    Prints the result-storage block that every worker needs as PREFECT_DEFAULT_RESULT_STORAGE_BLOCK.
    """
    _quiet_prefect(False)
    from deployments.register import register

    slug = register(raw_dir, gpu_concurrency=gpu_concurrency, zombie_after_s=zombie_after_s)
    Console().print(
        "registered pools gpu/server, blocks 'dashcam', deployments ingest/ingest, analyze-video/gpu, "
        "archive-video/server, finalize-video/server, retention/daily and the crash-recovery automations"
    )
    print(f"set on every worker: PREFECT_DEFAULT_RESULT_STORAGE_BLOCK={slug}".replace("=", "= "))


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


@app.command("watch")
def watch_cmd(
    dirs: Annotated[
        list[Path] | None, typer.Argument(help="Folders to watch, recursively (default: $DASHCAM_RAW_DIR).")
    ] = None,
    pattern: Annotated[
        list[str] | None,
        typer.Option(
            "--pattern", help="Video file glob, case-insensitive; repeat; replaces the default *.mp4 *.mov *.ts *.avi."
        ),
    ] = None,
    ignore: Annotated[
        list[str] | None,
        typer.Option(
            "--ignore", help="Extra glob of file/folder names to ignore; repeat; added to *.part *.tmp ~* .* @eaDir ..."
        ),
    ] = None,
    quiet_s: Annotated[
        float,
        typer.Option(
            "--quiet-s",
            envvar="DASHCAM_WATCH_QUIET_S",
            help="Seconds a file must stay unchanged (after the writer closed it) before it is ingested.",
        ),
    ] = 30.0,
    polling: Annotated[
        bool,
        typer.Option(
            "--polling",
            envvar="DASHCAM_WATCH_POLLING",
            help="Poll the tree instead of inotify: for NFS/SMB mounts written by other machines.",
        ),
    ] = False,
    poll_interval_s: Annotated[
        float,
        typer.Option(
            "--poll-interval-s", envvar="DASHCAM_WATCH_POLL_INTERVAL_S", help="Seconds between polls (--polling)."
        ),
    ] = 10.0,
    deployment: Annotated[
        str, typer.Option("--deployment", envvar="DASHCAM_DEPLOYMENT", help="Deployment to start, flow/deployment.")
    ] = "ingest/ingest",
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    no_db: Annotated[
        bool,
        typer.Option(
            "--no-db", help="Do not ask the results database what was ingested (Prefect's idempotency key alone)."
        ),
    ] = False,
    catch_up: Annotated[
        bool,
        typer.Option(
            "--catch-up/--no-catch-up", help="At start, trigger the files that arrived while the watcher was down."
        ),
    ] = True,
    rescan_s: Annotated[
        float,
        typer.Option(
            "--rescan-s",
            envvar="DASHCAM_WATCH_RESCAN_S",
            help="Rescan the tree every so many seconds as a safety net (0: never).",
        ),
    ] = 3600.0,
    retry_initial_s: Annotated[
        float, typer.Option("--retry-initial-s", help="First retry delay after a failed trigger; doubles each time.")
    ] = 5.0,
    retry_max_s: Annotated[float, typer.Option("--retry-max-s", help="Longest retry delay.")] = 300.0,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Also log debug lines (each file catch-up skipped).")
    ] = False,
) -> None:
    """Watch NAS folders and start the ingest deployment once per new, complete video file (a service)."""
    import logging

    _quiet_prefect(False)
    fmt = "%(levelname)s %(message)s" if os.environ.get("JOURNAL_STREAM") else "%(asctime)s %(levelname)s %(message)s"
    logging.basicConfig(level=logging.WARNING, format=fmt)  # others' INFO (httpx requests, alembic) is noise here
    logging.getLogger("dashcam.watch").setLevel(logging.DEBUG if verbose else logging.INFO)
    from dashcam.watch import DEFAULT_IGNORE, DEFAULT_PATTERNS, WatchConfig, watch

    if not dirs:
        raw = os.environ.get("DASHCAM_RAW_DIR")
        if not raw:
            console.print("[red]error:[/] give the folders to watch or set DASHCAM_RAW_DIR")
            raise typer.Exit(2)
        dirs = [Path(raw)]
    config = WatchConfig(
        dirs=dirs,
        patterns=tuple(pattern) if pattern else DEFAULT_PATTERNS,
        ignore=DEFAULT_IGNORE + tuple(ignore or ()),
        quiet_s=quiet_s,
        polling=polling,
        poll_interval_s=poll_interval_s,
        deployment=deployment,
        database_url=None if no_db else _settings(data_dir=data_dir, database_url=database_url).db_url,
        catch_up=catch_up,
        rescan_s=rescan_s,
        retry_initial_s=retry_initial_s,
        retry_max_s=retry_max_s,
        tick_s=min(1.0, max(0.1, quiet_s / 4)),
    )
    try:
        watch(config)
    except (OSError, RuntimeError) as exc:
        console.print(f"[red]error:[/] {exc}", soft_wrap=True)
        raise typer.Exit(1) from None


# --------------------------------------------------------------------------------------------
# storage (issue 16): keep marks, retention, the storage report, clip export


def _gb(n: int | None) -> str:
    """Bytes for people: GB (1e9) from 1 GB, else MB (1e6)."""
    if n is None:
        return "-"
    return f"{n / 1e9:.2f} GB" if n >= 1e9 else f"{n / 1e6:.1f} MB"


@app.command("keep")
def keep_cmd(
    video_id: Annotated[str, typer.Argument(help="The video's id (dashcam events shows it).")],
    unkeep: Annotated[
        bool, typer.Option("--unkeep", help="Clear the mark: retention may delete the raw file again.")
    ] = False,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Mark a video's raw file "keep": retention never deletes it (--unkeep clears the mark)."""
    from dashcam.db import make_engine
    from dashcam.storage import set_keep

    engine = make_engine(_settings(data_dir=data_dir, database_url=database_url).db_url)
    try:
        found = set_keep(engine, video_id, not unkeep)
    finally:
        engine.dispose()
    if not found:
        console.print(f"[red]error:[/] no video {video_id!r} in the database")
        raise typer.Exit(1)
    Console().print(f"{video_id}: {'no longer kept' if unkeep else 'kept (retention never deletes its raw file)'}")


@app.command("retention")
def retention_cmd(
    apply: Annotated[
        bool,
        typer.Option("--apply/--dry-run", help="Delete (--apply) or only list what would go (--dry-run, the default)."),
    ] = False,
    raw_keep_days: Annotated[float | None, setting_option("raw_keep_days")] = None,
    raw_max_gb: Annotated[float | None, setting_option("raw_max_gb")] = None,
    archive_keep_days: Annotated[float | None, setting_option("archive_keep_days")] = None,
    raw_dir: Annotated[Path | None, setting_option("raw_dir")] = None,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Also list the files kept and why.")] = False,
) -> None:
    """Apply the storage retention policy (docs/storage.md) without Prefect; one line per file."""
    import logging

    from dashcam.db import make_engine
    from dashcam.storage import apply_retention, plan_retention

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    settings = _settings(
        raw_keep_days=raw_keep_days,
        raw_max_gb=raw_max_gb,
        archive_keep_days=archive_keep_days,
        raw_dir=raw_dir,
        data_dir=data_dir,
        database_url=database_url,
    )
    out = Console()
    engine = make_engine(settings.db_url)
    try:
        plan = plan_retention(engine, settings)
        todo = [d for d in plan if d.action != "keep"]
        if not apply:
            for d in todo:
                out.print(
                    f"would {d.action} {d.tier} {d.path} ({_gb(d.size_bytes)}): {d.reason}",
                    soft_wrap=True,
                    highlight=False,
                )
        else:
            for d in todo:  # one at a time: each line is printed (and flushed) right after its deletion
                for done in apply_retention(engine, settings, [d]):
                    verb = "deleted" if done.action == "delete" else "recorded gone"
                    out.print(
                        f"{verb} {done.tier} {done.path} ({_gb(done.size_bytes)}): {done.reason}",
                        soft_wrap=True,
                        highlight=False,
                    )
                    sys.stdout.flush()
    finally:
        engine.dispose()
    if verbose:
        for d in plan:
            if d.action == "keep":
                out.print(f"keep {d.tier} {d.path}: {d.reason}", soft_wrap=True, highlight=False)
    freed = sum(d.size_bytes for d in todo if d.action == "delete")
    out.print(
        f"{'applied' if apply else 'dry run'}: {len(todo)} files, {_gb(freed)}; "
        f"{sum(1 for d in plan if d.protected)} protected",
        highlight=False,
    )


@app.command("storage")
def storage_cmd(
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    raw_dir: Annotated[Path | None, setting_option("raw_dir")] = None,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Used space per tier (raw, heavy output, archive), what retention would free, the protected set."""
    from dashcam.storage import storage_report

    rep = storage_report(_settings(raw_dir=raw_dir, data_dir=data_dir, database_url=database_url))
    if as_json:
        print(json.dumps(rep, indent=1, default=str))
        return
    out = Console()
    t = Table(title="storage")
    for c in ("tier", "path", "used", "retention would free"):
        t.add_column(c)
    free = rep["retention"]["would_free_bytes"]
    tiers = rep["tiers"]
    t.add_row("raw", str(tiers["raw"]["path"] or "(ingested files)"), _gb(tiers["raw"]["bytes"]), _gb(free["raw"]))
    t.add_row("heavy output (work)", tiers["work"]["path"], _gb(tiers["work"]["bytes"]), "-")
    t.add_row(
        "archive",
        tiers["archive"]["path"],
        f"{_gb(tiers['archive']['bytes'])} (video {_gb(tiers['archive']['video_bytes'])})",
        _gb(free["archive"]),
    )
    out.print(t)
    r = rep["retention"]
    out.print(
        f"policy: raw_keep_days={r['raw_keep_days']:g} raw_max_gb={r['raw_max_gb']} "
        f"archive_keep_days={r['archive_keep_days']}; videos: {rep['videos']}",
        highlight=False,
        soft_wrap=True,
    )
    if rep["protected"]:
        p = Table(title="protected (never deleted automatically)")
        for c in ("video_id", "path", "why", "size"):
            p.add_column(c)
        for x in rep["protected"]:
            p.add_row(x["video_id"], x["path"], x["reason"], _gb(x["size_bytes"]))
        out.print(p)


@app.command("clip")
def clip_cmd(
    event_id: Annotated[
        str, typer.Argument(help="A plate event's id (VIDEO_ID:TRACK_ID, as `dashcam events --json` shows).")
    ],
    before: Annotated[float, typer.Option("--before", help="Seconds before the event.")] = 10.0,
    after: Annotated[float, typer.Option("--after", help="Seconds after the event.")] = 10.0,
    out_path: Annotated[
        Path | None, typer.Option("--out", help="Output MP4 (default: ./<plate>_<video_id>_<track>.mp4).")
    ] = None,
    blur: Annotated[
        bool,
        typer.Option(
            "--blur",
            help="Blur every tracked plate, and faces with archive_blur=plates+faces (docs/storage.md, privacy blur).",
        ),
    ] = False,
    keep_watched: Annotated[
        bool,
        typer.Option("--keep-watched", help="With --blur: leave plates with a watch-list hit readable (owner's copy)."),
    ] = False,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Cut the moment of a plate event from the archive copy (or the raw file while it exists);
    front and rear side by side when both recordings of the moment are ingested."""
    from dashcam.archive import ArchiveError
    from dashcam.blur import BlurError, clip_plan, watched_tracks
    from dashcam.clip import ClipError, export_clip
    from dashcam.db import make_engine

    settings = _settings(data_dir=data_dir, database_url=database_url)
    engine = make_engine(settings.db_url)

    def plans(v: dict):
        skip = watched_tracks(engine, v["id"]) if keep_watched else ()
        return clip_plan(
            settings.archive_dir,
            settings.work_dir,
            v,
            settings.detect_fps,
            skip_tracks=skip,
            faces=settings.archive_blur == "plates+faces",
        )

    try:
        res = export_clip(engine, event_id, before_s=before, after_s=after, out=out_path, blur=plans if blur else None)
    except (ClipError, ArchiveError, BlurError, ValueError) as exc:
        console.print(f"[red]error:[/] {_first_line(exc)}", soft_wrap=True, highlight=False)
        raise typer.Exit(1) from None
    finally:
        engine.dispose()
    Console().print(
        f"wrote {res['path']}: {res['duration_s']:.2f} s {res['width']}x{res['height']} "
        f"from {', '.join(res['sources'])}",
        soft_wrap=True,
        highlight=False,
    )


# Watch lists, alerts, corrections, notes (issue 15; dashcam.watch_lists, docs/alerts.md)

watchlist_app = typer.Typer(
    help="Watch lists: plates (or * ? patterns, /regex/) to be told about.", no_args_is_help=True
)
alerts_app = typer.Typer(
    help="Prefect automations that send a notification on each watch-list hit.", no_args_is_help=True
)
app.add_typer(watchlist_app, name="watchlist")
app.add_typer(alerts_app, name="alerts")


def _engine(data_dir, database_url, *, existing: bool = False):
    """The results DB of the watch-list/correction commands, resolved as the read commands do
    (:func:`_reader_db_url`; ``existing``: a missing SQLite file is an error)."""
    from dashcam.db import make_engine

    if existing:
        return make_engine(_reader_db_url(data_dir, database_url))
    from dashcam.settings import DatabaseConfigError, resolve_database

    try:
        url, _ = resolve_database(_settings(data_dir=data_dir, database_url=database_url))
    except DatabaseConfigError as exc:
        console.print(f"error: {exc}", soft_wrap=True, markup=False, highlight=False, style="red")
        raise typer.Exit(1) from None
    return make_engine(url)


def _bad_input(exc: BaseException) -> None:
    console.print("[red]error:[/] " + escape(_first_line(exc)), soft_wrap=True, highlight=False)
    raise typer.Exit(2)


def _print_rows(rows: list[dict], cols: tuple[str, ...], title: str, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=1) + "\n")
        return
    table = Table(title=title)
    for c in cols:
        table.add_column(c)
    for r in rows:
        table.add_row(
            *("" if r.get(c) is None else (f"{r[c]:.3f}" if isinstance(r[c], float) else str(r[c])) for c in cols)
        )
    Console().print(table)


@watchlist_app.command("add")
def watchlist_add(
    pattern: Annotated[
        str, typer.Argument(help="A plate (XS-NB-23; =XSNB23 for exact only), a wildcard (XS*23, ?SNB2?) or a /regex/.")
    ],
    watchlist: Annotated[str, typer.Option("--list", help="Watch list name (created if new).")] = "default",
    label: Annotated[
        str,
        typer.Option("--label", help="Shown in hits and alerts, e.g. 'hit and run 2026-11-02' (<= 200 characters)."),
    ] = "",
    notes: Annotated[str, typer.Option("--notes", help="Free text (<= 2000 characters).")] = "",
    fuzzy: Annotated[
        bool, typer.Option("--fuzzy/--no-fuzzy", help="Plain plates also match OCR look-alikes (docs/search.md).")
    ] = True,
    min_score: Annotated[
        float | None,
        typer.Option("--min-score", help="Score a fuzzy match needs, (0, 1]; default DASHCAM_WATCH_MIN_SCORE (0.75)."),
    ] = None,
    active_from: Annotated[
        str | None, typer.Option("--from", help="Only events from this time (ISO 8601, UTC when no offset).")
    ] = None,
    active_until: Annotated[str | None, typer.Option("--until", help="Only events up to this time.")] = None,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Add a plate to a watch list; events ingested from now on are matched against it."""
    from dashcam.watch_lists import WatchListError, add_entry

    engine = _engine(data_dir, database_url)
    try:
        e = add_entry(
            engine,
            pattern,
            watchlist=watchlist,
            label=label,
            notes=notes,
            fuzzy=fuzzy,
            min_score=min_score,
            active_from=active_from,
            active_until=active_until,
        )
    except WatchListError as exc:
        _bad_input(exc)
    finally:
        engine.dispose()
    console.print(
        f"added entry {e['id']} to watch list {e['watchlist']!r}: {e['kind']} {e['pattern']}"
        f"{' (fuzzy)' if e['fuzzy'] else ''}",
        highlight=False,
        markup=False,
    )


@watchlist_app.command("list")
def watchlist_list(
    watchlist: Annotated[str | None, typer.Option("--list", help="Only this watch list.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="A JSON array of the entries.")] = False,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """List watch-list entries with their hit counts."""
    from dashcam.watch_lists import list_entries

    engine = _engine(data_dir, database_url, existing=True)
    try:
        rows = list_entries(engine, watchlist)
    finally:
        engine.dispose()
    _print_rows(
        rows,
        (
            "id",
            "watchlist",
            "kind",
            "pattern",
            "fuzzy",
            "min_score",
            "label",
            "active_from",
            "active_until",
            "n_hits",
            "last_hit",
        ),
        f"{len(rows)} watch-list entries",
        as_json,
    )


@watchlist_app.command("remove")
def watchlist_remove(
    entry_id: Annotated[int, typer.Argument(help="Entry id (dashcam watchlist list).")],
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Remove a watch-list entry and its hits."""
    from dashcam.watch_lists import remove_entry

    engine = _engine(data_dir, database_url, existing=True)
    try:
        ok = remove_entry(engine, entry_id)
    finally:
        engine.dispose()
    if not ok:
        console.print(f"[red]error:[/] no watch-list entry {entry_id}", highlight=False)
        raise typer.Exit(1)
    console.print(f"removed entry {entry_id}", highlight=False)


@watchlist_app.command("hits")
def watchlist_hits(
    watchlist: Annotated[str | None, typer.Option("--list", help="Only this watch list.")] = None,
    limit: Annotated[int, typer.Option("--limit", help="At most this many, newest first.")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="A JSON array of the hits.")] = False,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """List stored watch-list hits, newest event first."""
    from dashcam.watch_lists import list_hits

    engine = _engine(data_dir, database_url, existing=True)
    try:
        rows = list_hits(engine, watchlist=watchlist, limit=limit)
    finally:
        engine.dispose()
    _print_rows(
        rows,
        ("ts", "plate", "matched_text", "score", "watchlist", "label", "event_id", "lat", "lon", "crop_path"),
        f"{len(rows)} watch-list hits",
        as_json,
    )


@watchlist_app.command("import")
def watchlist_import(
    csv_path: Annotated[
        Path,
        typer.Argument(
            help="CSV with header watchlist,pattern,label,notes,fuzzy,min_score,active_from,active_until (pattern required)."
        ),
    ],
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Add the entries of a CSV file (all or none: a bad row is named and nothing is added)."""
    from dashcam.watch_lists import WatchListError, import_csv

    engine = _engine(data_dir, database_url)
    try:
        n = import_csv(engine, csv_path)
    except WatchListError as exc:
        _bad_input(exc)
    finally:
        engine.dispose()
    console.print(f"imported {n} entries from {csv_path}", highlight=False, markup=False)


@watchlist_app.command("export")
def watchlist_export(
    csv_path: Annotated[Path, typer.Argument(help="CSV file to write (dashcam watchlist import reads it back).")],
    watchlist: Annotated[str | None, typer.Option("--list", help="Only this watch list.")] = None,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Write the watch-list entries to a CSV file."""
    from dashcam.watch_lists import WatchListError, export_csv

    engine = _engine(data_dir, database_url, existing=True)
    try:
        n = export_csv(engine, csv_path, watchlist)
    except WatchListError as exc:
        _bad_input(exc)
    finally:
        engine.dispose()
    console.print(f"exported {n} entries to {csv_path}", highlight=False, markup=False)


@app.command("correct")
def correct_cmd(
    event_id: Annotated[str, typer.Argument(help="Event id <video_id>:<track_id> (dashcam plates --json: id).")],
    text: Annotated[str, typer.Argument(help="The right plate text.")],
    note: Annotated[str, typer.Option("--note", help="Why / what (kept with the correction).")] = "",
    by: Annotated[str | None, typer.Option("--by", help="Who corrects (default $USER).")] = None,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Correct an event's plate; the OCR reading is kept beside it and re-ingesting keeps the correction."""
    from dashcam.watch_lists import WatchListError, correct_event

    engine = _engine(data_dir, database_url, existing=True)
    try:
        c = correct_event(engine, event_id, text, note=note, by=by)
    except WatchListError as exc:
        _bad_input(exc)
    finally:
        engine.dispose()
    console.print(f"{c['event_id']}: {c['ocr_text']} -> {c['text']} (by {c['by']})", highlight=False, markup=False)


def _plate_note(plate: str, text: str, kind: str, by, data_dir, database_url) -> None:
    from dashcam.watch_lists import WatchListError, add_plate_note

    engine = _engine(data_dir, database_url)
    try:
        n = add_plate_note(engine, plate, text, kind=kind, by=by)
    except WatchListError as exc:
        _bad_input(exc)
    finally:
        engine.dispose()
    console.print(f"{n['plate']}: {kind} {n['text']!r} (by {n['by']})", highlight=False, markup=False)


@app.command("note")
def note_cmd(
    plate: Annotated[str, typer.Argument(help="Plate text.")],
    text: Annotated[str, typer.Argument(help="The note (<= 2000 characters).")],
    by: Annotated[str | None, typer.Option("--by", help="Who (default $USER).")] = None,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Add a note to a plate."""
    _plate_note(plate, text, "note", by, data_dir, database_url)


@app.command("tag")
def tag_cmd(
    plate: Annotated[str, typer.Argument(help="Plate text.")],
    tag: Annotated[str, typer.Argument(help="One word: letters, digits, - and _.")],
    by: Annotated[str | None, typer.Option("--by", help="Who (default $USER).")] = None,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Tag a plate (e.g. neighbour, work)."""
    _plate_note(plate, tag, "tag", by, data_dir, database_url)


ALERT_PREFIX = "dashcam-alert: "


def _prefect_call(what: str, fn):
    """Run a Prefect API call; one-line error (exit 1) when no server is configured (an ephemeral
    API would keep the automation nowhere), or the API is unreachable or refuses."""
    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():
        console.print(
            "[red]error:[/] "
            + escape(
                f"{what}: PREFECT_API_URL is not set; alerts live on a running Prefect server (docs/alerts.md, step 2)"
            ),
            soft_wrap=True,
            highlight=False,
        )
        raise typer.Exit(1)
    try:
        return fn()
    except (typer.Exit, SystemExit):
        raise
    except Exception as exc:  # noqa: BLE001 - httpx / Prefect errors: one line for the user
        console.print(
            "[red]error:[/] "
            + escape(
                f"{what}: {type(exc).__name__}: {_first_line(exc)} (is PREFECT_API_URL set to your Prefect server?)"
            ),
            soft_wrap=True,
            highlight=False,
        )
        raise typer.Exit(1) from None


@alerts_app.command("add")
def alerts_add(
    block: Annotated[
        str,
        typer.Option(
            "--block",
            help="Notification block TYPE/NAME, e.g. slack-webhook/family, custom-webhook/ntfy (prefect block ls).",
        ),
    ],
    name: Annotated[str | None, typer.Option("--name", help="Automation name (default: the block).")] = None,
    watchlist: Annotated[str | None, typer.Option("--list", help="Only hits of this watch list.")] = None,
    plate: Annotated[str | None, typer.Option("--plate", help="Only hits of this (final) plate.")] = None,
) -> None:
    """Create a Prefect automation: on each dashcam.watchlist.hit event, send a message (plate,
    label, time, OpenStreetMap link, crop) through the notification block."""
    _quiet_prefect(False)
    if block.count("/") != 1 or not all(block.split("/")):
        _bad_input(ValueError(f"--block must be TYPE/NAME (e.g. custom-webhook/ntfy), got {block!r}"))
    plate_n = None
    if plate is not None:
        from dashcam.watch_lists import WatchListError, _plate_text

        try:
            plate_n = _plate_text(plate)
        except WatchListError as exc:
            _bad_input(exc)
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    from dashcam.watch_lists import alert_automation

    btype, bname = block.split("/")
    auto_name = ALERT_PREFIX + (name or block)

    def create():
        with get_client(sync_client=True) as client:
            try:
                doc = client.read_block_document_by_name(bname, btype)
            except ObjectNotFound:
                console.print(
                    "[red]error:[/] "
                    + escape(
                        f"no Prefect block {block} (create it in the Prefect UI or with "
                        "Python, see docs/alerts.md; list them with prefect block ls)"
                    ),
                    highlight=False,
                )
                raise typer.Exit(2) from None
            if client.read_automations_by_name(auto_name):
                console.print(
                    "[red]error:[/] "
                    + escape(f"an automation named {auto_name!r} exists; remove it first or pass --name"),
                    highlight=False,
                )
                raise typer.Exit(2)
            return alert_automation(auto_name, doc.id, watchlist=watchlist, plate=plate_n).create()

    auto = _prefect_call(f"creating the automation for {block}", create)
    console.print(f"created automation {auto.name!r} ({auto.id})", highlight=False, markup=False)


@alerts_app.command("list")
def alerts_list(as_json: Annotated[bool, typer.Option("--json", help="A JSON array.")] = False) -> None:
    """List the automations made by dashcam alerts add."""
    _quiet_prefect(False)
    from prefect.client.orchestration import get_client

    def read():
        with get_client(sync_client=True) as client:
            return [a for a in client.read_automations() if a.name.startswith(ALERT_PREFIX)]

    rows = [
        {
            "name": a.name[len(ALERT_PREFIX) :],
            "id": str(a.id),
            "enabled": a.enabled,
            "block_document_id": str(a.actions[0].block_document_id) if a.actions else None,
            "match": json.dumps(a.trigger.match.model_dump(mode="json")) if hasattr(a.trigger, "match") else "",
        }
        for a in _prefect_call("reading the automations", read)
    ]
    _print_rows(
        rows, ("name", "id", "enabled", "block_document_id", "match"), f"{len(rows)} alert automations", as_json
    )


@alerts_app.command("remove")
def alerts_remove(name: Annotated[str, typer.Argument(help="The alert's name (dashcam alerts list).")]) -> None:
    """Delete an alert automation."""
    _quiet_prefect(False)
    from prefect.client.orchestration import get_client

    def delete():
        with get_client(sync_client=True) as client:
            found = client.read_automations_by_name(ALERT_PREFIX + name)
            for a in found:
                client.delete_automation(a.id)
            return len(found)

    if not _prefect_call(f"removing alert {name}", delete):
        console.print("[red]error:[/] " + escape(f"no alert named {name!r} (dashcam alerts list)"), highlight=False)
        raise typer.Exit(1)
    console.print(f"removed alert {name!r}", highlight=False, markup=False)


if __name__ == "__main__":
    app()


@app.command("web")
def web_cmd(
    host: Annotated[
        str, typer.Option("--host", help="Address to listen on; anything but loopback needs DASHCAM_WEB_TOKEN.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port.")] = 8000,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    archive_dir: Annotated[
        Path | None, setting_option("archive_dir", note="The only folder media is served from.")
    ] = None,
) -> None:
    """Serve the web UI (dashboard, drives, map, plates, search) on HOST:PORT."""
    from dashcam.web.security import is_loopback

    settings = _settings(data_dir=data_dir, database_url=database_url, archive_dir=archive_dir)
    token = settings.web_token.get_secret_value() if settings.web_token else ""
    if not is_loopback(host) and not token:
        console.print(
            f"[red]Refusing to listen on {host}: set DASHCAM_WEB_TOKEN (an access token) to serve beyond this machine.[/red]"
        )
        raise typer.Exit(2)
    import uvicorn
    from pydantic import SecretStr

    from dashcam.db import DatabaseError
    from dashcam.web import create_app

    settings = settings.model_copy(update={"database_url": SecretStr(_reader_db_url(data_dir, database_url))})

    try:
        web_app = create_app(settings)
    except DatabaseError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    console.print(f"dashcam web on http://{host}:{port}/ ({'login with the access token' if token else 'no login'})")
    uvicorn.run(web_app, host=host, port=port, log_level="warning", proxy_headers=False, server_header=False)
