"""What ``dashcam watch`` watches: :class:`WatchConfig` and which files count as dashcam videos.

Holds the default name globs (:data:`DEFAULT_PATTERNS`, :data:`DEFAULT_IGNORE`), the watcher's
configuration and :class:`FileFilter` (which paths under the watched folders are videos to
ingest). Pure logic, no I/O beyond ``os.path``; :mod:`dashcam.watch.watcher` builds its filter and
its :class:`~dashcam.watch.completion.CompletionTracker` from a :class:`WatchConfig`.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

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
