"""``dashcam`` commands that set up and run the household's services: ``config`` (settings in effect,
the generated settings doc), ``deploy`` (Prefect pools, blocks, deployments, automations), ``watch`` (the
NAS folder watcher) and ``web`` (the web UI server).

Registered on the shared app of :mod:`dashcam.cli.common`, after :mod:`dashcam.cli.footage`.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from dashcam.cli.common import (
    DatabaseUrl,
    DataDir,
    _first_line,
    _quiet_prefect,
    _reader_db_url,
    _resolved_db_url,
    _settings,
    app,
    console,
)
from dashcam.settings_cli import setting_option


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
        database_url=None if no_db else _resolved_db_url(data_dir, database_url),
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
