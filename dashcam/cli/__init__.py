"""``dashcam`` command line: ingest videos, list stored plate events, read plates on photos, run the
services, manage storage and watch lists.

One Typer app (``app``, the console script ``dashcam = "dashcam.cli:app"``) defined in
:mod:`dashcam.cli.common` with the shared option types and helpers; the commands, grouped by concern,
register themselves on it when their module is imported here, in ``dashcam --help`` order:

* :mod:`dashcam.cli.footage`: ``ingest``, ``plates``, ``read``, ``gps``
* :mod:`dashcam.cli.service`: ``config``, ``deploy``, ``watch``, ``web``
* :mod:`dashcam.cli.storage`: ``keep``, ``retention``, ``storage``, ``clip``
* :mod:`dashcam.cli.watchlists`: ``correct``, ``note``, ``tag`` and the ``watchlist`` / ``alerts`` sub-apps

Every name of the former single-module ``dashcam/cli.py`` stays importable from here.
``python -m dashcam.cli`` runs :mod:`dashcam.cli.__main__`.
"""

from __future__ import annotations

from dashcam.cli.common import (
    DatabaseUrl,
    DataDir,
    ModelDir,
    _App,
    _bad_input,
    _engine,
    _first_line,
    _fmt,
    _print_rows,
    _quiet_prefect,
    _reader_db_url,
    _require_existing_db,
    _settings,
    app,
    console,
)
from dashcam.cli.footage import _check_gpx, _print_summary, _report_ingest, _split_videos, gps_cmd, ingest, plates, read
from dashcam.cli.service import config_cmd, deploy, watch_cmd, web_cmd
from dashcam.cli.storage import _gb, clip_cmd, keep_cmd, retention_cmd, storage_cmd
from dashcam.cli.watchlists import (
    ALERT_PREFIX,
    _plate_note,
    _prefect_call,
    alerts_add,
    alerts_app,
    alerts_list,
    alerts_remove,
    correct_cmd,
    note_cmd,
    tag_cmd,
    watchlist_add,
    watchlist_app,
    watchlist_export,
    watchlist_hits,
    watchlist_import,
    watchlist_list,
    watchlist_remove,
)

__all__ = [
    "ALERT_PREFIX",
    "DataDir",
    "DatabaseUrl",
    "ModelDir",
    "_App",
    "_bad_input",
    "_check_gpx",
    "_engine",
    "_first_line",
    "_fmt",
    "_gb",
    "_plate_note",
    "_prefect_call",
    "_print_rows",
    "_print_summary",
    "_quiet_prefect",
    "_reader_db_url",
    "_report_ingest",
    "_require_existing_db",
    "_settings",
    "_split_videos",
    "alerts_add",
    "alerts_app",
    "alerts_list",
    "alerts_remove",
    "app",
    "clip_cmd",
    "config_cmd",
    "console",
    "correct_cmd",
    "deploy",
    "gps_cmd",
    "ingest",
    "keep_cmd",
    "note_cmd",
    "plates",
    "read",
    "retention_cmd",
    "storage_cmd",
    "tag_cmd",
    "watch_cmd",
    "watchlist_add",
    "watchlist_app",
    "watchlist_export",
    "watchlist_hits",
    "watchlist_import",
    "watchlist_list",
    "watchlist_remove",
    "web_cmd",
]
