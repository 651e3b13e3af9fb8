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
"""

from __future__ import annotations

import fnmatch
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from watchdog.events import (
    DirDeletedEvent,
    DirMovedEvent,
    FileAttribEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)

if TYPE_CHECKING:
    from uuid import UUID

    from watchdog.observers.api import BaseObserver

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

#: Dashcam containers (matched case-insensitively against the file name).
DEFAULT_PATTERNS: tuple[str, ...] = ("*.mp4", "*.mov", "*.ts", "*.avi")

#: Matched case-insensitively against every path component below the watched folder: a file is
#: ignored when its name or any folder it is in matches. Partial/temporary names of browsers,
#: rsync, WinSCP, Syncthing, Resilio and Office-style lock files; dotfiles and dot-folders
#: (rsync's ``.name.XXXXXX``, ``.stfolder``); Synology's ``@eaDir`` thumbnails and ``#recycle``.
DEFAULT_IGNORE: tuple[str, ...] = (
    "*.part",
    "*.partial",
    "*.tmp",
    "*.temp",
    "*.crdownload",
    "*.download",
    "*.filepart",
    "*.!sync",
    "*.syncthing.*",
    "~*",
    ".*",
    "@eaDir",
    "#recycle",
    "#snapshot",
)

_EVENT_FILTER = [
    FileCreatedEvent,
    FileModifiedEvent,
    FileAttribEvent,
    FileClosedEvent,
    FileMovedEvent,
    FileDeletedEvent,
    DirMovedEvent,
    DirDeletedEvent,
]


def idempotency_key(video_id: str) -> str:
    """The idempotency key of the one ``ingest`` flow run of a video: ``ingest:<video_id>``."""
    return f"ingest:{video_id}"


@dataclass
class WatchConfig:
    """What ``dashcam watch`` does; every field has a CLI flag (see ``dashcam watch --help``).

    Attributes:
        dirs: folders to watch, recursively (must exist).
        patterns: file-name globs that are videos (case-insensitive); replaces the default.
        ignore: globs for path components to ignore (case-insensitive).
        quiet_s: seconds a file's size and mtime must stay unchanged (after the writer closed it,
            with inotify) before it counts as complete.
        polling: use watchdog's PollingObserver (NFS/SMB mounts) instead of inotify.
        poll_interval_s: seconds between two polls of the tree (polling mode only).
        deployment: ``flow-name/deployment-name`` to start.
        database_url: results database asked whether a video was ingested; None: ask only Prefect.
        catch_up: scan the tree at start and trigger what has not been ingested.
        rescan_s: rescan the tree every so many seconds (0: never) - a safety net for events
            lost to an inotify queue overflow or a remount; cheap, files already handled are
            recognised by path, size and mtime without reading them.
        retry_initial_s, retry_max_s: backoff after a failed trigger: initial delay, doubling
            up to the maximum.
        stale_open_s: seconds after which a file that is still open for writing but unchanged is
            taken to be complete anyway (its close event was lost).
        tick_s: seconds between two checks of the pending files.
    """

    dirs: list[Path]
    patterns: tuple[str, ...] = DEFAULT_PATTERNS
    ignore: tuple[str, ...] = DEFAULT_IGNORE
    quiet_s: float = 30.0
    polling: bool = False
    poll_interval_s: float = 10.0
    deployment: str = "ingest/ingest"
    database_url: str | None = None
    catch_up: bool = True
    rescan_s: float = 3600.0
    retry_initial_s: float = 5.0
    retry_max_s: float = 300.0
    stale_open_s: float = 3600.0
    tick_s: float = 1.0


# --------------------------------------------------------------------------------------------
# which files


class FileFilter:
    """Which paths under the watched roots are dashcam videos to ingest."""

    def __init__(
        self, roots: Sequence[str], patterns: Iterable[str] = DEFAULT_PATTERNS, ignore: Iterable[str] = DEFAULT_IGNORE
    ):
        self.roots = sorted((os.path.abspath(r) for r in roots), key=len, reverse=True)
        self.patterns = tuple(p.lower() for p in patterns)
        self.ignore = tuple(p.lower() for p in ignore)

    def ignored_name(self, name: str) -> bool:
        """True when one path component (file or folder name) matches an ignore glob."""
        low = name.lower()
        return any(fnmatch.fnmatchcase(low, p) for p in self.ignore)

    def wanted(self, path: str) -> bool:
        """True for a video file name under a watched root with no ignored component."""
        path = os.path.abspath(path)
        name = os.path.basename(path)
        if not any(fnmatch.fnmatchcase(name.lower(), p) for p in self.patterns):
            return False
        root = next((r for r in self.roots if path == r or path.startswith(r.rstrip(os.sep) + os.sep)), None)
        rel = os.path.relpath(path, root) if root else name
        return not any(self.ignored_name(part) for part in Path(rel).parts)


# --------------------------------------------------------------------------------------------
# when a file is complete


@dataclass
class _Pending:
    size: int
    mtime_ns: int
    changed_at: float  # clock() of the last observed change (or of the writer's close)
    writer_open: bool = False
    attempts: int = 0
    retry_at: float = 0.0
    said: set[str] = field(default_factory=set)  # one-time log notes already written


class CompletionTracker:
    """Per-path state machine *pending -> complete -> done*, driven by events and a clock.

    No watchdog and no threads: the :class:`Watcher` feeds it events (under its own lock) and
    calls :meth:`due` periodically; tests feed it directly with a fake clock.

    Args:
        quiet_s: seconds without a change of (size, mtime) - and, when close events are tracked,
            since the writer closed the file - before a file is complete.
        stale_open_s: seconds without change after which a file still marked open for writing is
            taken to be complete (its close event was lost).
        clock: monotonic seconds (default :func:`time.monotonic`).
        stat: ``os.stat``-like function.
    """

    def __init__(
        self,
        quiet_s: float,
        *,
        stale_open_s: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
        stat: Callable[[str], os.stat_result] = os.stat,
    ):
        self.quiet_s = quiet_s
        self.stale_open_s = stale_open_s
        self.clock = clock
        self.stat = stat
        self._pending: dict[str, _Pending] = {}
        self._done: dict[str, tuple[int, int]] = {}  # path -> (size, mtime_ns) when handled

    # events ---------------------------------------------------------------------------------

    def observe(self, path: str, reason: str = "new file") -> bool:
        """A file appeared or may have changed (created, moved in, touched, found by a scan).

        Returns True when the path became pending now (it was not pending and is not handled
        with the same size and mtime), False when there is nothing new to do.
        """
        try:
            st = self.stat(path)
        except OSError:
            return False  # gone already (or unreadable: a later event or rescan brings it back)
        sig = (st.st_size, st.st_mtime_ns)
        p = self._pending.get(path)
        if p is not None:
            if (p.size, p.mtime_ns) != sig:
                p.size, p.mtime_ns, p.changed_at = st.st_size, st.st_mtime_ns, self.clock()
            return False
        if self._done.get(path) == sig:
            return False
        was_done = self._done.pop(path, None) is not None
        self._pending[path] = _Pending(st.st_size, st.st_mtime_ns, self.clock())
        if was_done:
            log.info("%s: changed after it was handled; checking it again once it is complete", path)
        else:
            log.info("%s: %s; waiting for the copy to finish (%g s without change)", path, reason, self.quiet_s)
        return True

    def wrote(self, path: str) -> None:
        """Data was written (inotify ``IN_MODIFY``): the writer has the file open."""
        self._writer(path, "new file being written", True)

    def closed(self, path: str) -> None:
        """The writer closed the file (inotify ``IN_CLOSE_WRITE``); the quiet period restarts."""
        self._writer(path, "new file", False)

    def _writer(self, path: str, reason: str, writer_open: bool) -> None:
        self.observe(path, reason)
        p = self._pending.get(path)
        if p is not None:
            p.writer_open = writer_open
            p.changed_at = self.clock()

    def forget(self, path: str) -> bool:
        """The file was deleted or moved away. Returns True when it was pending."""
        self._done.pop(path, None)
        return self._pending.pop(path, None) is not None

    def forget_tree(self, folder: str) -> list[str]:
        """A folder was deleted or moved away: forget everything below it; returns pending paths dropped."""
        prefix = folder.rstrip(os.sep) + os.sep
        for path in [p for p in self._done if p.startswith(prefix)]:
            del self._done[path]
        dropped = [p for p in self._pending if p.startswith(prefix)]
        for path in dropped:
            del self._pending[path]
        return dropped

    # decisions ------------------------------------------------------------------------------

    def due(self) -> list[str]:
        """Re-stat every pending file; return those that are complete and not waiting for a retry."""
        now = self.clock()
        out: list[str] = []
        for path, p in list(self._pending.items()):
            try:
                st = self.stat(path)
            except FileNotFoundError:
                del self._pending[path]
                log.info("%s: deleted or moved away before it was complete; dropped", path)
                continue
            except OSError:
                continue
            if (st.st_size, st.st_mtime_ns) != (p.size, p.mtime_ns):
                p.size, p.mtime_ns, p.changed_at = st.st_size, st.st_mtime_ns, now
                continue
            quiet_for = now - p.changed_at
            if quiet_for < self.quiet_s or now < p.retry_at:
                continue
            if p.writer_open:
                if quiet_for < self.stale_open_s:
                    self._say(
                        p,
                        "open",
                        logging.INFO,
                        "%s: unchanged for %g s but still open for writing; waiting for the writer to close it",
                        path,
                        self.quiet_s,
                    )
                    continue
                self._say(
                    p,
                    "stale",
                    logging.WARNING,
                    "%s: still open for writing after %g s without change; "
                    "taking it as complete (its close event was probably lost)",
                    path,
                    self.stale_open_s,
                )
            if st.st_size == 0:
                self._say(p, "empty", logging.INFO, "%s: empty file; waiting for data", path)
                continue
            out.append(path)
        return out

    def retry_later(self, path: str, delay_s: float) -> int:
        """Keep ``path`` pending and make it due again in ``delay_s``; returns the attempt count."""
        p = self._pending.get(path)
        if p is None:
            return 0
        p.attempts += 1
        p.retry_at = self.clock() + delay_s
        return p.attempts

    def attempts(self, path: str) -> int:
        p = self._pending.get(path)
        return p.attempts if p else 0

    def mark_done(self, path: str, size: int | None = None, mtime_ns: int | None = None) -> None:
        """``path`` was handled (queued or skipped); events that leave it unchanged are ignored."""
        p = self._pending.pop(path, None)
        if size is None or mtime_ns is None:
            if p is None:
                return
            size, mtime_ns = p.size, p.mtime_ns
        self._done[path] = (size, mtime_ns)

    def is_handled(self, path: str, size: int, mtime_ns: int) -> bool:
        """True when ``path`` is pending, or was handled with this size and mtime."""
        return path in self._pending or self._done.get(path) == (size, mtime_ns)

    def pending(self) -> list[str]:
        return list(self._pending)

    @staticmethod
    def _say(p: _Pending, key: str, level: int, msg: str, *args: Any) -> None:
        if key not in p.said:
            p.said.add(key)
            log.log(level, msg, *args)


# --------------------------------------------------------------------------------------------
# asking the database and Prefect


class IngestedIndex:
    """Read-only questions to the results database (the ``videos`` table).

    The engine is created on first use (:func:`dashcam.db.make_engine`, which also brings the
    schema up to date, as every worker does) and re-created after a failure. Methods raise
    :class:`dashcam.db.DatabaseError` when the database cannot be reached.
    """

    def __init__(self, url: str):
        self.url = url
        self._engine = None

    def _get_engine(self):
        if self._engine is None:
            from dashcam.db import make_engine

            self._engine = make_engine(self.url)
        return self._engine

    def _reset(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def has_video(self, video_id: str) -> bool:
        """True when the ``videos`` table has a row for ``video_id``."""
        from dashcam.db import DatabaseError, get_video

        try:
            return get_video(self._get_engine(), video_id) is not None
        except DatabaseError:
            self._reset()
            raise

    def ingested_paths(self) -> set[tuple[str, int]]:
        """(path, size_bytes) of every ingested video: lets catch-up skip files without reading them."""
        import sqlalchemy as sa
        from sqlalchemy.exc import SQLAlchemyError

        from dashcam.db import VIDEOS, DatabaseError

        try:
            with self._get_engine().connect() as conn:
                return {(r.path, r.size_bytes) for r in conn.execute(sa.select(VIDEOS.c.path, VIDEOS.c.size_bytes))}
        except SQLAlchemyError as exc:
            self._reset()
            raise DatabaseError(f"listing ingested videos failed: {exc}") from exc
        except DatabaseError:
            self._reset()
            raise

    def close(self) -> None:
        self._reset()


@dataclass
class TriggerResult:
    """What the Prefect server answered: the flow run, and whether it was created just now."""

    flow_run_id: str
    flow_run_name: str
    state: str
    created: bool


class PrefectTrigger:
    """Creates the one flow run of a file on ``deployment`` (``flow/deployment``) via ``PREFECT_API_URL``.

    Raises whatever the Prefect client raises (``httpx`` connection errors, ``PrefectHTTPStatusError``,
    ``prefect.exceptions.ObjectNotFound`` when the deployment does not exist); the watcher retries.
    """

    def __init__(self, deployment: str = "ingest/ingest", tags: Sequence[str] = ("dashcam-watch",)):
        self.deployment = deployment
        self.tags = list(tags)
        self._deployment_id: UUID | None = None

    def __call__(self, path: str, video_id: str) -> TriggerResult:
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.actions import DeploymentFlowRunCreate
        from prefect.states import Scheduled, to_state_create

        body = DeploymentFlowRunCreate(
            parameters={"videos": [path]},
            name=os.path.basename(path),
            tags=self.tags,
            idempotency_key=idempotency_key(video_id),
            state=to_state_create(Scheduled()),
        ).model_dump(mode="json", exclude_unset=True)
        with get_client(sync_client=True) as client:
            if self._deployment_id is None:
                self._deployment_id = client.read_deployment_by_name(self.deployment).id
            try:
                # the raw request, not client.create_flow_run_from_deployment(): the status code
                # (201 created / 200 existing run for this idempotency key) is the answer we log
                response = client.request(
                    "POST", "/deployments/{id}/create_flow_run", path_params={"id": self._deployment_id}, json=body
                )
            except Exception:
                self._deployment_id = None  # the deployment may have been re-created
                raise
        run = response.json()
        return TriggerResult(
            str(run["id"]), run["name"], (run.get("state") or {}).get("name") or "?", response.status_code == 201
        )


# --------------------------------------------------------------------------------------------
# the watcher


class _Handler(FileSystemEventHandler):
    def __init__(self, watcher: Watcher):
        self.w = watcher

    def on_any_event(self, event: FileSystemEvent) -> None:
        try:
            self.w.handle_event(event)
        except Exception:  # never let one odd event kill the observer thread
            log.exception("error handling %r", event)


class Watcher:
    """Watches ``config.dirs`` and starts one ``ingest`` run per complete video file.

    Use :meth:`run` (blocks until ``stop`` is set) or :meth:`start` / :meth:`tick` / :meth:`stop`.

    Args:
        config: what to watch and how.
        trigger: callable ``(path, video_id) -> TriggerResult``; default :class:`PrefectTrigger`
            on ``config.deployment``.
        index: the results-database index; default :class:`IngestedIndex` on
            ``config.database_url`` (None: Prefect's idempotency key alone prevents duplicates).
        clock: monotonic seconds.

    Raises (from :meth:`start`):
        FileNotFoundError: a watched folder does not exist.
        OSError: inotify cannot watch the tree (e.g. ``fs.inotify.max_user_watches`` too low).
    """

    def __init__(
        self,
        config: WatchConfig,
        *,
        trigger: Callable[[str, str], TriggerResult] | None = None,
        index: IngestedIndex | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.cfg = config
        self.roots = [os.path.abspath(d) for d in config.dirs]
        self.filter = FileFilter(self.roots, config.patterns, config.ignore)
        self.tracker = CompletionTracker(config.quiet_s, stale_open_s=config.stale_open_s, clock=clock)
        self.trigger = trigger or PrefectTrigger(config.deployment)
        self.index = (
            index if index is not None else (IngestedIndex(config.database_url) if config.database_url else None)
        )
        self.clock = clock
        self.handler = _Handler(self)
        self.observer: BaseObserver | None = None
        self.track_close = False
        self._lock = threading.Lock()
        self._last_scan = clock()
        self._last_health = clock()
        self.ready = threading.Event()  # set when start() has finished (observer running, catch-up done)
        self.stats = {"queued": 0, "existing_run": 0, "ingested": 0, "failed_attempts": 0}

    # life cycle -----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the observer, then (``catch_up``) scan the tree for files not yet ingested."""
        for root in self.roots:
            if not os.path.isdir(root):
                raise FileNotFoundError(f"watched folder {root} does not exist (is the NAS share mounted?)")
        if self.cfg.polling:
            from watchdog.observers.polling import PollingObserver

            observer: BaseObserver = PollingObserver(timeout=self.cfg.poll_interval_s)
        else:
            from watchdog.observers import Observer

            observer = Observer()
        self.observer = observer
        # only inotify reports IN_CLOSE_WRITE; FSEvents/kqueue/polling do not
        self.track_close = type(observer).__name__ == "InotifyObserver"
        for root in self.roots:
            try:
                observer.schedule(self.handler, root, recursive=True, event_filter=_EVENT_FILTER)
            except OSError as exc:
                raise OSError(
                    exc.errno,
                    f"cannot watch {root}: {exc.strerror or exc}; raise the inotify limit "
                    "(sysctl fs.inotify.max_user_watches=524288) or use --polling",
                ) from exc
        observer.start()
        mode = (
            f"polling every {self.cfg.poll_interval_s:g} s"
            if self.cfg.polling
            else type(self.observer).__name__.replace("Observer", "").lower() or "native"
        )
        log.info(
            "watching %s (%s; patterns %s; complete after %g s without change%s) -> deployment %s",
            ", ".join(self.roots),
            mode,
            " ".join(self.cfg.patterns),
            self.cfg.quiet_s,
            " and the writer's close" if self.track_close else "",
            self.cfg.deployment,
        )
        if self.cfg.catch_up:
            self.scan("catch-up")
        self.ready.set()

    def stop(self) -> None:
        """Stop the observer (pending files are found again by the next start's catch-up)."""
        if self.observer is not None:
            self.observer.stop()
            self.observer.join(timeout=10)
            self.observer = None
        if self.index is not None:
            self.index.close()

    def run(self, stop: threading.Event) -> None:
        """:meth:`start`, then :meth:`tick` every ``tick_s`` until ``stop`` is set; then :meth:`stop`.

        Raises RuntimeError when the observer dies or a watched folder disappears (unmounted
        share): the service manager restarts the watcher, whose catch-up closes the gap.
        """
        self.start()
        try:
            while not stop.wait(self.cfg.tick_s):
                self.tick()
        finally:
            self.stop()

    # events (observer thread) ---------------------------------------------------------------

    def handle_event(self, event: FileSystemEvent) -> None:
        """Feed one watchdog event to the tracker (thread-safe)."""
        src = os.fsdecode(event.src_path)
        if isinstance(event, (DirDeletedEvent, DirMovedEvent)):
            with self._lock:
                dropped = self.tracker.forget_tree(src)
            for path in dropped:
                log.info("%s: its folder was deleted or moved away before the file was complete; dropped", path)
            if isinstance(event, DirMovedEvent):
                self._found_later(os.fsdecode(event.dest_path))
            return
        if event.is_directory:
            return
        if isinstance(event, FileMovedEvent):
            dest = os.fsdecode(event.dest_path)
            with self._lock:
                was_pending = self.tracker.forget(src) if src else False
                if dest and self.filter.wanted(dest):
                    self.tracker.observe(dest, "moved or renamed into place")
            if was_pending and not (dest and self.filter.wanted(dest)):
                log.info("%s: moved away before it was complete; dropped", src)
            return
        if not self.filter.wanted(src):
            return
        with self._lock:
            if isinstance(event, FileDeletedEvent):
                if self.tracker.forget(src):
                    log.info("%s: deleted before it was complete; dropped", src)
            elif isinstance(event, FileClosedEvent):
                self.tracker.closed(src)
            elif isinstance(event, FileModifiedEvent) and self.track_close:
                self.tracker.wrote(src)
            else:  # created, modified (polling), attrib
                self.tracker.observe(src, "new file")

    def _found_later(self, folder: str) -> None:
        """A folder was moved into the tree: its files count as new (watchdog also reports most of them)."""
        for path in self._walk([folder]):
            with self._lock:
                self.tracker.observe(path, "moved into place with its folder")

    # periodic work (main thread) ------------------------------------------------------------

    def _walk(self, roots: Iterable[str]) -> Iterable[str]:
        for root in roots:
            for dirpath, dirnames, filenames in os.walk(root):
                dirnames[:] = [d for d in dirnames if not self.filter.ignored_name(d)]
                for name in filenames:
                    path = os.path.join(dirpath, name)
                    if self.filter.wanted(path):
                        yield path

    def scan(self, why: str = "rescan") -> int:
        """Walk the tree; make every video file that is neither handled nor ingested pending.

        Files whose (path, size) have a ``videos`` row are skipped without being read. Returns
        the number of files that became pending.
        """
        ingested: set[tuple[str, int]] = set()
        if self.index is not None:
            try:
                ingested = self.index.ingested_paths()
            except Exception as exc:
                log.warning(
                    "%s: cannot ask the database which files were ingested (%s); checking every file "
                    "one by one instead",
                    why,
                    exc,
                )
        found = skipped = new = 0
        for path in self._walk(self.roots):
            try:
                st = os.stat(path)
            except OSError:
                continue
            found += 1
            with self._lock:
                if self.tracker.is_handled(path, st.st_size, st.st_mtime_ns):
                    continue
                if (path, st.st_size) in ingested:
                    self.tracker.mark_done(path, st.st_size, st.st_mtime_ns)
                    skipped += 1
                    log.debug("%s: skipped, already ingested (found in the database by path and size)", path)
                    continue
                if self.tracker.observe(path, f"found by {why}, not ingested yet"):
                    new += 1
        if why == "catch-up" or new:
            log.info(
                "%s: %d video file(s) under %s: %d already ingested, %d new to check",
                why,
                found,
                ", ".join(self.roots),
                skipped,
                new,
            )
        self._last_scan = self.clock()
        return new

    def tick(self) -> None:
        """Trigger every pending file that is complete; rescan and health-check when due."""
        with self._lock:
            due = self.tracker.due()
        for path in due:
            self._handle(path)
        now = self.clock()
        if self.cfg.rescan_s and now - self._last_scan >= self.cfg.rescan_s:
            self.scan("rescan")
        if now - self._last_health >= 10:
            self._last_health = now
            self._check_health()

    def _check_health(self) -> None:
        if self.observer is None:
            return
        dead = [r for r in self.roots if not os.path.isdir(r)]
        if dead:
            raise RuntimeError(
                f"watched folder {', '.join(dead)} disappeared (share unmounted?); stopping so "
                "that a restart catches up"
            )
        if not self.observer.is_alive() or any(not e.is_alive() for e in list(self.observer.emitters)):
            raise RuntimeError("the file-system observer stopped; stopping so that a restart catches up")

    def _retry(self, path: str, what: str, exc: BaseException | str) -> None:
        with self._lock:
            n = self.tracker.attempts(path) + 1
            delay = min(self.cfg.retry_max_s, self.cfg.retry_initial_s * 2 ** (n - 1))
            self.tracker.retry_later(path, delay)
        self.stats["failed_attempts"] += 1
        reason = exc if isinstance(exc, str) else (f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
        log.warning("%s: failed to trigger - %s (%s) - will retry in %g s (attempt %d)", path, what, reason, delay, n)

    def _handle(self, path: str) -> None:
        from dashcam.video import VideoError, compute_video_id

        try:
            st = os.stat(path)
            video_id = compute_video_id(path)
            st2 = os.stat(path)
        except FileNotFoundError:
            with self._lock:
                self.tracker.forget(path)
            log.info("%s: deleted or moved away before it was handled; dropped", path)
            return
        except (VideoError, OSError) as exc:
            self._retry(path, "cannot read the file", exc)
            return
        if (st.st_size, st.st_mtime_ns) != (st2.st_size, st2.st_mtime_ns):
            return  # changed while hashing: the tracker sees the change on the next tick
        if self.index is not None:
            try:
                if self.index.has_video(video_id):
                    with self._lock:
                        self.tracker.mark_done(path, st.st_size, st.st_mtime_ns)
                    self.stats["ingested"] += 1
                    log.info("%s: skipped, already ingested (video_id %s is in the database)", path, video_id)
                    return
            except Exception as exc:
                self._retry(path, "the database is unreachable", exc)
                return
        try:
            result = self.trigger(path, video_id)
        except Exception as exc:
            self._retry(path, f"Prefect did not create the run of deployment {self.cfg.deployment}", exc)
            return
        with self._lock:
            self.tracker.mark_done(path, st.st_size, st.st_mtime_ns)
            self.tracker.observe(path)  # pending again if it changed while it was being handled
        if result.created:
            self.stats["queued"] += 1
            log.info(
                "%s: queued, flow run '%s' (%s) scheduled on deployment %s",
                path,
                result.flow_run_name,
                result.flow_run_id,
                self.cfg.deployment,
            )
        else:
            self.stats["existing_run"] += 1
            log.info(
                "%s: skipped, this video (id %s) already has flow run '%s' (%s, %s); not started twice",
                path,
                video_id,
                result.flow_run_name,
                result.flow_run_id,
                result.state,
            )


def watch(config: WatchConfig, stop: threading.Event | None = None) -> None:
    """Run a :class:`Watcher` until ``stop`` is set (default: until SIGTERM/SIGINT).

    Raises whatever :meth:`Watcher.run` raises (missing folder, inotify limit, observer died).
    """
    import signal

    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    watcher = Watcher(config)
    watcher.run(stop)
    log.info(
        "stopped: %d queued, %d already had a run, %d already ingested; %d pending file(s) left for the "
        "next start's catch-up",
        watcher.stats["queued"],
        watcher.stats["existing_run"],
        watcher.stats["ingested"],
        len(watcher.tracker.pending()),
    )
