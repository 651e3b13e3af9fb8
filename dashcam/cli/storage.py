"""``dashcam`` storage commands (issue 16; docs/storage.md): ``keep`` marks, ``retention``, the
``storage`` report and ``clip`` export. The logic lives in :mod:`dashcam.storage`, :mod:`dashcam.clip`
and :mod:`dashcam.blur`; this module only parses options and prints.

Registered on the shared app of :mod:`dashcam.cli.common`, after :mod:`dashcam.cli.service`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from dashcam.cli.common import (
    DatabaseUrl,
    DataDir,
    _first_line,
    _settings,
    app,
    console,
)
from dashcam.settings_cli import setting_option


def _gb(n: int | None) -> str:
    """Bytes for people: GB (1e9) from 1 GB, else MB (1e6)."""
    if n is None:
        return "-"
    return f"{n / 1e9:.2f} GB" if n >= 1e9 else f"{n / 1e6:.1f} MB"


@app.command("keep")
def keep_cmd(
    video_id: Annotated[str, typer.Argument(help="The video's id (`dashcam plates --json` shows it as video_id).")],
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
        str, typer.Argument(help="A plate event's id (VIDEO_ID:TRACK_ID, the id `dashcam plates --json` shows).")
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
