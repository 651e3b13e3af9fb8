"""When a watched file is complete: :class:`CompletionTracker`, the per-path state machine.

*pending -> complete -> done*: a pending file (:class:`_Pending`: last seen size/mtime, writer open
or closed, retry backoff) becomes complete after a quiet period without change (and the writer's
close, with inotify); a handled file is remembered in the tracker's *done* ledger by (size,
mtime_ns), so events that leave it unchanged are ignored and a changed file is checked again.
No watchdog, no threads and no Prefect here: :class:`dashcam.watch.watcher.Watcher` feeds it
events under its lock and asks :meth:`CompletionTracker.due` periodically; tests drive it with a
fake clock.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# one logger for the whole watcher, named after the package (not __name__): `dashcam watch -v` sets
# its level and tests select its records by that name
log = logging.getLogger("dashcam.watch")


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
