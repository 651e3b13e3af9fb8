"""The watchdog side of ``dashcam watch``: :class:`Watcher` (observer, events, scans, the tick loop) and :func:`watch`.

The :class:`Watcher` owns a watchdog observer (inotify or polling) whose thread feeds events to
the :class:`~dashcam.watch.completion.CompletionTracker` (under a lock, filtered by
:class:`~dashcam.watch.config.FileFilter`); the main thread's :meth:`Watcher.tick` hashes every
complete file, asks the :class:`~dashcam.watch.ingested.IngestedIndex` and calls the
:class:`~dashcam.watch.trigger.PrefectTrigger`, with backoff on failure. :func:`watch` runs one
until SIGTERM/SIGINT (the ``dashcam watch`` service). The package docstring
(:mod:`dashcam.watch`) describes the whole behaviour.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

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

from dashcam.watch.completion import CompletionTracker
from dashcam.watch.config import FileFilter, WatchConfig
from dashcam.watch.ingested import IngestedIndex
from dashcam.watch.trigger import PrefectTrigger, TriggerResult

if TYPE_CHECKING:
    from watchdog.observers.api import BaseObserver

# one logger for the whole watcher, named after the package (not __name__): `dashcam watch -v` sets
# its level and tests select its records by that name
log = logging.getLogger("dashcam.watch")

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
