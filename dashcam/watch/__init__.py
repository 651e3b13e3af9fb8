"""``dashcam watch``: start the ``ingest`` deployment once per new, *complete* video file.

Dashcam files reach the NAS slowly (viofosync over Wi-Fi, a card-reader copy, an SMB upload), so
a file is handed to Prefect only when it is complete:

* **Discovery** - a :mod:`watchdog` observer on every watched folder (recursive): inotify on
  Linux, or polling (:class:`watchdog.observers.polling.PollingObserver`) for NFS/SMB mounts
  where inotify does not see writes made by other machines. A file created, written, touched or
  moved/renamed into the tree becomes *pending*. Names are matched case-insensitively against
  :data:`DEFAULT_PATTERNS`; a path with any component matching :data:`DEFAULT_IGNORE` (partial
  downloads ``*.part``, ``*.tmp``, ``~*``, dotfiles and dot-folders, Synology ``@eaDir``, ...)
  is ignored, so ``clip.mp4.part`` renamed to ``clip.mp4`` is seen once, as the final name.
* **Completeness** (:class:`CompletionTracker`) - a pending file is complete when its size and
  mtime (``st_size``, ``st_mtime_ns``) have not changed for ``quiet_s`` seconds, it is not empty,
  and - with inotify, which reports ``IN_MODIFY``/``IN_CLOSE_WRITE`` - the process that last
  wrote it has closed it (a writer that stalls with the file open is waited for; a close lost to
  an inotify queue overflow is given up on after ``stale_open_s``). The quiet period restarts
  at the writer's close. Polling sees no open/close, so it relies on the quiet period alone.
* **Triggering** (:class:`PrefectTrigger`) - ``POST /deployments/{id}/create_flow_run`` of the
  ``ingest`` deployment (default ``ingest/ingest``) with ``parameters={"videos": [<absolute
  path>]}``, flow run name = the file name, tag ``dashcam-watch`` and idempotency key
  ``ingest:<video_id>`` (:func:`dashcam.video.compute_video_id`, derived from the content, not
  the name or mtime). The Prefect server keeps one flow run per (flow, idempotency key): a
  repeated key returns the existing run (HTTP 200 instead of 201). So duplicate events, a
  touched or identically re-saved file, a restarted watcher and two watchers on one tree all
  end up at the same, single run.
* **Already ingested** (:class:`IngestedIndex`) - before triggering, the results database is
  asked whether the ``videos`` table has the file's video_id; at start-up (**catch-up**) the
  whole tree is scanned and files whose (path, size) already have a ``videos`` row are skipped
  without hashing; the rest go through the same pending -> complete -> trigger path.
* **Failures** - Prefect API or database unreachable, deployment missing, file unreadable: the
  file stays pending and is retried after ``retry_initial_s``, doubling up to ``retry_max_s``.
  Nothing is forgotten while the watcher runs, and a restart catches up from the database and
  Prefect, never from a private state file.

Every decision is logged on the ``dashcam.watch`` logger in plain words: *waiting for the copy to
finish*, *queued*, *skipped: already ingested*, *skipped: already has flow run*, *failed to
trigger - will retry in N s*, *deleted before it was complete*.

Units: seconds for every ``*_s``; paths are absolute (``os.path.abspath`` of the watched folder
joined with the name; symlinks are not resolved, so the path a run receives is the one the
workers mount).

Modules
-------
* :mod:`~dashcam.watch.config` - :class:`WatchConfig`, the default globs, :class:`FileFilter`.
* :mod:`~dashcam.watch.completion` - :class:`CompletionTracker`: pending -> complete -> done.
* :mod:`~dashcam.watch.ingested` - :class:`IngestedIndex`: what the results database has.
* :mod:`~dashcam.watch.trigger` - :class:`PrefectTrigger`, :class:`TriggerResult`,
  :func:`idempotency_key`.
* :mod:`~dashcam.watch.watcher` - :class:`Watcher` (observer, events, scans, tick loop) and
  :func:`watch`.

Every name is importable from ``dashcam.watch``; all log on the one ``dashcam.watch`` logger.
"""

import logging

from dashcam.watch.completion import CompletionTracker
from dashcam.watch.config import DEFAULT_IGNORE, DEFAULT_PATTERNS, FileFilter, WatchConfig
from dashcam.watch.ingested import IngestedIndex
from dashcam.watch.trigger import PrefectTrigger, TriggerResult, idempotency_key
from dashcam.watch.watcher import Watcher, watch

log = logging.getLogger("dashcam.watch")

__all__ = [
    "DEFAULT_PATTERNS",
    "DEFAULT_IGNORE",
    "WatchConfig",
    "FileFilter",
    "CompletionTracker",
    "PrefectTrigger",
    "TriggerResult",
    "IngestedIndex",
    "Watcher",
    "idempotency_key",
    "watch",
]
