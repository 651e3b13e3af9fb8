"""Watch lists, watch hits, plate corrections and plate notes (issue 15): pure logic, no Prefect server.

(Not to be confused with :mod:`dashcam.watch`, the file watcher.)

Watch lists
-----------
A watch list (table ``watchlists``) holds entries (``watch_entries``) written in the query language
of :mod:`dashcam.search` (docs/search.md): a plain plate ``XS-NB-23`` (kind ``exact``; with
``fuzzy`` on, the default, also its OCR-confusion-aware look-alikes scoring at least ``min_score``,
default :data:`DEFAULT_MIN_SCORE`), ``=XSNB23`` (exact only), a wildcard ``XS*23`` / ``?SNB2?``
(kind ``wildcard``) or a regex ``/^XS.*3$/`` (kind ``regex``). Matching is
:func:`dashcam.search.search_events` itself, restricted to one video and the entry's active
window (``active_from`` <= event ``ts`` <= ``active_until``), so an entry matches exactly what
the same text typed into the search finds: the final plate (score 1.0) or an alternative reading
of the track (``plate_readings``, score x :data:`dashcam.search.ALTERNATIVE_WEIGHT`). There is no
second matcher here.

:func:`match_video` (run by the ``watch-lists`` task after ``persist``) stores one
``watch_hits`` row per (entry, event) with ``INSERT ... ON CONFLICT DO NOTHING`` and returns only
the rows it inserted, so a re-ingest neither duplicates hits nor alerts twice. :func:`hit_event`
turns a new hit into the keyword arguments of ``prefect.events.emit_event`` (event
:data:`HIT_EVENT`); :func:`alert_automation` builds the Prefect automation that sends a
notification block's message for those events (docs/alerts.md). Prefect delivers the alerts.

Corrections and notes
---------------------
:func:`correct_event` stores a user's plate correction in ``corrections`` keyed on the stable event
id ``<video_id>:<track_id>`` with the OCR text beside it, who and when, and applies it:
``vehicles.final_plate`` (and its confusion key) become the corrected text and the OCR text
becomes an alternative reading, so search, plate pages, exports and watch-list matching all use
the corrected text while a search for the OCR text still finds the event.
:func:`dashcam.db.save_video` calls :func:`apply_corrections` in its transaction, so a re-ingest
re-applies them; a correction whose event id no longer exists (the tracker numbered the tracks
differently) is re-attached to the event of the same video whose frame range overlaps its own
the most. :func:`add_plate_note` keeps notes and tags per plate text (``plate_notes``).

Every function raises :class:`WatchListError` (a ``ValueError``, one line fit to show the user) for
bad input and :class:`dashcam.db.DatabaseError` when the database fails.

Modules
-------
This package was one module; it is split by concern, and every name (public, and the private ones
other modules import) is still importable from ``dashcam.watch_lists``:

- :mod:`.common`: limits and defaults, :class:`WatchListError`, input validation, ``_begin`` / ``_db_error``
- :mod:`.entries`: watch lists and entries (add, list, update, remove), CSV import/export
- :mod:`.matching`: :func:`match_video`, :func:`match_entry`, :func:`list_hits`
- :mod:`.alerts`: :func:`hit_event`, :func:`osm_url`, :func:`alert_automation`, the alert templates
- :mod:`.corrections`: :func:`correct_event`, :func:`apply_corrections`, :func:`list_corrections`
- :mod:`.notes`: notes and tags per plate

Imports point one way: ``common`` <- ``entries``, ``matching``, ``alerts``, ``notes``;
``matching`` <- ``corrections``. None imports this ``__init__``.
"""

from __future__ import annotations

from dashcam.watch_lists.alerts import ALERT_BODY as ALERT_BODY
from dashcam.watch_lists.alerts import ALERT_SUBJECT as ALERT_SUBJECT
from dashcam.watch_lists.alerts import alert_automation, hit_event, osm_url
from dashcam.watch_lists.common import CSV_FIELDS as CSV_FIELDS
from dashcam.watch_lists.common import DEFAULT_LIST as DEFAULT_LIST
from dashcam.watch_lists.common import (
    DEFAULT_MIN_SCORE,
    HIT_EVENT,
    WatchListError,
    entry_query,
    parse_pattern,
)
from dashcam.watch_lists.common import MAX_BY as MAX_BY
from dashcam.watch_lists.common import MAX_LABEL as MAX_LABEL
from dashcam.watch_lists.common import MAX_NAME as MAX_NAME
from dashcam.watch_lists.common import MAX_NOTES as MAX_NOTES
from dashcam.watch_lists.common import MAX_PLATE as MAX_PLATE
from dashcam.watch_lists.common import MAX_TAG as MAX_TAG
from dashcam.watch_lists.common import _begin as _begin
from dashcam.watch_lists.common import _db_error as _db_error
from dashcam.watch_lists.common import _entry_row as _entry_row
from dashcam.watch_lists.common import _now as _now
from dashcam.watch_lists.common import _plate_text as _plate_text
from dashcam.watch_lists.common import _text as _text
from dashcam.watch_lists.common import _when as _when
from dashcam.watch_lists.common import _who as _who
from dashcam.watch_lists.corrections import _undo as _undo
from dashcam.watch_lists.corrections import apply_corrections, correct_event, list_corrections
from dashcam.watch_lists.entries import _list_id as _list_id
from dashcam.watch_lists.entries import (
    add_entry,
    add_list,
    export_csv,
    import_csv,
    import_rows,
    list_entries,
    list_lists,
    remove_entry,
    remove_list,
    update_entry,
)
from dashcam.watch_lists.matching import _insert_ignore as _insert_ignore
from dashcam.watch_lists.matching import _match as _match
from dashcam.watch_lists.matching import list_hits, match_entry, match_video
from dashcam.watch_lists.notes import add_plate_note, list_plate_notes, remove_plate_note

__all__ = [
    "DEFAULT_MIN_SCORE",
    "HIT_EVENT",
    "WatchListError",
    "add_entry",
    "add_list",
    "add_plate_note",
    "alert_automation",
    "apply_corrections",
    "correct_event",
    "entry_query",
    "export_csv",
    "hit_event",
    "import_csv",
    "import_rows",
    "list_corrections",
    "list_entries",
    "list_hits",
    "list_lists",
    "list_plate_notes",
    "match_entry",
    "match_video",
    "osm_url",
    "parse_pattern",
    "remove_entry",
    "remove_list",
    "remove_plate_note",
    "update_entry",
]
