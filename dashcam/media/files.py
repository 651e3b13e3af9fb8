"""Atomic file writes through flock'd temporary files, and the sweep of temp files of killed writers.

Every file appears complete or not at all: it is written under a hidden temporary name in the
destination folder (``.<name>.<8 hex>.tmp``, :func:`tmp_name`), fsynced, optionally verified,
then renamed over the destination with ``os.replace`` (atomic on POSIX and Windows within one
filesystem); the folder is fsynced too. A crash can at worst leave a stray ``.*.tmp`` file, never
a truncated destination.

Writers hold an exclusive ``flock`` on their temp file until it has been renamed; the lock dies
with the process, so :func:`sweep_stale_tmp` (run by the next ``dashcam ingest`` and by the
archive task, per video) removes exactly the temp files whose writer died.

Used by the work-dir records (:func:`dashcam.records.write_jsonl`), the crops and thumbnails of
``analyze``, the archive (:mod:`dashcam.archive`) and anything else that writes a file.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import secrets
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, BinaryIO

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

from dashcam.media.errors import MediaCheckError

log = logging.getLogger(__name__)

__all__ = [
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_copy",
    "atomic_output",
    "sweep_stale_tmp",
    "tmp_name",
    "fsync_dir",
    "STALE_TMP_MIN_AGE_S",
]

# ``.<name>.<8 hex>.tmp``: the temporary names this module (and only it) creates
_TMP_RE = re.compile(r"^\..+\.[0-9a-f]{8}\.tmp$")
STALE_TMP_MIN_AGE_S = 10.0  # younger temp files are never swept (covers create -> lock)


def fsync_dir(d: Path) -> None:
    """fsync folder ``d`` (makes a rename durable); silently skipped where folders cannot be opened."""
    try:
        fd = os.open(d, os.O_RDONLY)
    except OSError:
        return  # e.g. Windows: directories cannot be opened; rename is still atomic
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def tmp_name(dst: Path) -> Path:
    """The temporary name for ``dst``: ``<dst folder>/.<dst name>.<8 random hex>.tmp``."""
    return dst.with_name(f".{dst.name}.{secrets.token_hex(4)}.tmp")


def lock_tmp(fd: int) -> None:
    """Hold an exclusive ``flock`` on the temp file while it is written and renamed: a live
    writer's temp file is locked, a dead one's is not (the kernel drops locks of dead processes),
    which is how :func:`sweep_stale_tmp` tells them apart. No-op without ``fcntl`` (Windows)."""
    if fcntl is not None:
        with suppress(OSError):  # e.g. a filesystem without locks: the age rule alone protects it
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def _unlink_quietly(tmp: Path) -> None:
    try:
        tmp.unlink()
    except FileNotFoundError:
        pass
    except OSError:
        log.warning("could not remove temporary file %s", tmp)


def _atomic_write(
    path: str | os.PathLike, fill: Callable[[BinaryIO], Any], verify: Callable[[Path], Any] | None = None
) -> Path:
    """Create+lock a temp file beside ``path``, ``fill`` it, fsync, ``verify``, rename; see
    :func:`atomic_write_bytes`."""
    dst = Path(path)
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OSError(e.errno, f"Cannot create folder {dst.parent}: {e.strerror or e}") from e
    tmp = tmp_name(dst)
    try:
        # 0o666 & ~umask, like an ordinary open(); O_EXCL: never reuse someone else's file
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        lock_tmp(fd)
        with os.fdopen(fd, "wb") as f:
            fill(f)
            f.flush()
            os.fsync(f.fileno())
            if verify is not None:
                try:
                    verify(tmp)
                except MediaCheckError as e:
                    raise MediaCheckError(
                        dst,
                        e.cause,
                        f"Could not write {dst}: the written file is unusable "
                        f"({e.cause}); {dst.name} was not written (no partial file left)",
                    ) from None
            os.replace(tmp, dst)  # still locked: sweep_stale_tmp never takes a file being renamed
    except BaseException as e:
        _unlink_quietly(tmp)
        if isinstance(e, OSError):
            hint = " (disk full?)" if e.errno in (errno.ENOSPC, errno.EDQUOT) else ""
            raise OSError(
                e.errno,
                f"Could not write {dst}{hint}: {e.strerror or e}; {dst.name} was not written (no partial file left)",
            ) from e
        raise
    fsync_dir(dst.parent)
    return dst


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, verify: Callable[[Path], Any] | None = None) -> Path:
    """Write ``data`` to ``path`` atomically (temp file in the same folder + fsync + rename).

    Creates missing parent folders. Returns the destination path. ``verify``: called with the
    fsynced temporary file before the rename (e.g. ``partial(verify_media, kind="image")``); a
    :class:`MediaCheckError` from it removes the temporary file and is re-raised naming ``path``.

    Raises:
        OSError: the write failed (e.g. ``ENOSPC`` disk full); the message names the file, no
            partial or temporary file is left and an existing ``path`` is untouched.
        MediaCheckError: ``verify`` rejected the written file (same guarantees).
    """
    return _atomic_write(path, lambda f: f.write(data), verify)


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` (encoded with ``encoding``, no newline translation) atomically.

    See :func:`atomic_write_bytes` for guarantees and errors.
    """
    return atomic_write_bytes(path, text.encode(encoding))


def atomic_copy(src: str | os.PathLike, dst: str | os.PathLike, *, verify: Callable[[Path], Any] | None = None) -> Path:
    """Copy file ``src`` to ``dst`` atomically (streamed in 1 MiB chunks; content only, not
    permissions or times). Creates missing parent folders of ``dst``. Returns ``dst``.
    ``verify``: as in :func:`atomic_write_bytes`.

    Raises:
        FileNotFoundError: ``src`` does not exist.
        OSError: reading or writing failed; no partial ``dst`` is left.
        MediaCheckError: ``verify`` rejected the copy; no ``dst`` is left.
    """
    s = Path(src)
    with open(s, "rb") as fin:
        return _atomic_write(dst, lambda f: shutil.copyfileobj(fin, f, 1024 * 1024), verify)


@contextmanager
def atomic_output(dst: str | os.PathLike) -> Iterator[Path]:
    """For a writer that is another process (ffmpeg ``-y``): yield a created, flock'd temp path.

    The body writes the file (by name) and checks it; on normal exit the temp file is renamed to
    ``dst`` while still locked and the folder fsynced; on any exception it is removed and the
    exception propagates (``dst`` untouched). Creates ``dst``'s folder. The body should fsync the
    file before leaving (this only renames).

    Raises:
        OSError: the folder or the temp file cannot be created; whatever the body raises.
    """
    d = Path(dst)
    d.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_name(d)
    lock_fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        lock_tmp(lock_fd)
        yield tmp
        os.replace(tmp, d)
    except BaseException:
        with suppress(FileNotFoundError):
            tmp.unlink()
        raise
    finally:
        os.close(lock_fd)
    fsync_dir(d.parent)


def _sweep_one(p: Path, now: float, min_age_s: float) -> bool:
    """Remove temp file ``p`` when it is old enough and unlocked; True when removed."""
    try:
        if now - p.lstat().st_mtime < min_age_s:
            return False
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return False  # renamed or removed meanwhile
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False  # a live writer holds it
            except OSError:
                pass  # no locks on this filesystem: the age rule decides
        try:
            p.unlink()
            return True
        except OSError as e:
            log.warning("could not remove stale temporary file %s: %s", p, e)
            return False
    finally:
        os.close(fd)


def sweep_stale_tmp(*dirs: str | os.PathLike, min_age_s: float = STALE_TMP_MIN_AGE_S) -> list[Path]:
    """Remove temp files left by killed writers under ``dirs`` (recursively); return them.

    Only our own names (``.<name>.<8 hex>.tmp``, see :func:`atomic_write_bytes` and
    :func:`atomic_output`) are considered, and only stale ones: not modified for ``min_age_s``
    seconds AND not locked. Every writer here holds an exclusive ``flock`` on its temp file
    until it has been renamed, and the lock dies with the process, so a temp file that another
    live process (another ``dashcam ingest``, a worker; NFS forwards flock as POSIX locks) is
    still writing is never removed. Missing folders are skipped; files that cannot be removed
    are logged and left.
    """
    removed: list[Path] = []
    now = time.time()
    for d in dirs:
        for root, _subdirs, files in os.walk(os.fspath(d)):
            for name in files:
                if _TMP_RE.match(name) and _sweep_one(Path(root) / name, now, min_age_s):
                    removed.append(Path(root) / name)
    return removed
