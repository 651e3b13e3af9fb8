"""The one ``dashcam`` Typer app and what every command module of :mod:`dashcam.cli` shares.

:class:`_App` (a database or settings error ends any command with one line), the ``app`` object itself
(the console script ``dashcam = "dashcam.cli:app"``), the stderr ``console``, the option types that set a
Settings field (``DataDir``, ``DatabaseUrl``, ``ModelDir``; help from the schema via ``setting_option``)
and the helpers the commands call: :func:`_settings`, :func:`_quiet_prefect`, the results-DB resolution
of read commands (:func:`_reader_db_url`, :func:`_require_existing_db`, :func:`_engine`) and output
helpers. The sibling modules (footage, service, storage, watchlists) register their commands on ``app``;
``dashcam/cli/__init__.py`` imports them in ``dashcam --help`` order.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
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


def _resolved_db_url(data_dir: Path | None, database_url: str | None) -> str:
    """The results DB a service that may start before the first ingest (``dashcam watch``) uses:
    as :func:`_reader_db_url` (given URL / data dir, else the deployed DB from the Prefect blocks
    when ``PREFECT_API_URL`` is set), said on stderr, but a SQLite file that does not exist yet is
    fine (nothing ingested). A config error ends the command with one line (exit 1)."""
    from dashcam.settings import DatabaseConfigError, redact_url, resolve_database

    try:
        url, source = resolve_database(_settings(data_dir=data_dir, database_url=database_url))
    except DatabaseConfigError as exc:
        console.print(f"error: {exc}", soft_wrap=True, markup=False, highlight=False, style="red")
        raise typer.Exit(1) from None
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


@contextmanager
def _db(data_dir, database_url, *, existing: bool = False, bad_input: type[BaseException] | tuple = ()) -> Iterator:
    """``with _db(...) as engine``: the results DB engine of :func:`_engine`, disposed on exit; an
    exception of a ``bad_input`` type raised inside ends the command with its one-line error
    (:func:`_bad_input`, exit 2)."""
    engine = _engine(data_dir, database_url, existing=existing)
    try:
        yield engine
    except bad_input as exc:
        _bad_input(exc)
    finally:
        engine.dispose()


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
