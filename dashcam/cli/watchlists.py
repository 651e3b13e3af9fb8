"""``dashcam`` commands on watch lists, alerts, corrections and notes (issue 15; :mod:`dashcam.watch_lists`,
docs/alerts.md): the ``watchlist`` and ``alerts`` sub-apps and the ``correct``, ``note`` and ``tag``
commands.

Registered on the shared app of :mod:`dashcam.cli.common`, last (the sub-apps are listed after the commands
in ``dashcam --help`` anyway).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from dashcam.cli.common import (
    DatabaseUrl,
    DataDir,
    _bad_input,
    _db,
    _first_line,
    _print_rows,
    _quiet_prefect,
    app,
    console,
)

watchlist_app = typer.Typer(
    help="Watch lists: plates (or * ? patterns, /regex/) to be told about.", no_args_is_help=True
)
alerts_app = typer.Typer(
    help="Prefect automations that send a notification on each watch-list hit.", no_args_is_help=True
)
app.add_typer(watchlist_app, name="watchlist")
app.add_typer(alerts_app, name="alerts")


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

    with _db(data_dir, database_url, bad_input=WatchListError) as engine:
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

    with _db(data_dir, database_url, existing=True) as engine:
        rows = list_entries(engine, watchlist)
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

    with _db(data_dir, database_url, existing=True) as engine:
        ok = remove_entry(engine, entry_id)
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

    with _db(data_dir, database_url, existing=True) as engine:
        rows = list_hits(engine, watchlist=watchlist, limit=limit)
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

    with _db(data_dir, database_url, bad_input=WatchListError) as engine:
        n = import_csv(engine, csv_path)
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

    with _db(data_dir, database_url, existing=True, bad_input=WatchListError) as engine:
        n = export_csv(engine, csv_path, watchlist)
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

    with _db(data_dir, database_url, existing=True, bad_input=WatchListError) as engine:
        c = correct_event(engine, event_id, text, note=note, by=by)
    console.print(f"{c['event_id']}: {c['ocr_text']} -> {c['text']} (by {c['by']})", highlight=False, markup=False)


def _plate_note(plate: str, text: str, kind: str, by, data_dir, database_url) -> None:
    from dashcam.watch_lists import WatchListError, add_plate_note

    with _db(data_dir, database_url, bad_input=WatchListError) as engine:
        n = add_plate_note(engine, plate, text, kind=kind, by=by)
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
