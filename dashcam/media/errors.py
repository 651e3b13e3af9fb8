"""The media layer's exceptions: one line each, naming the file, the cause and what to do.

* :class:`VideoError`: an input video cannot be used (missing, not a video, truncated, no frame
  decodes). Not transient: the ``analyze`` task does not retry it.
* :class:`ArchiveError`: a media file could not be produced (archive transcode, a copy of a
  crop/thumbnail, a clip). Re-exported by :mod:`dashcam.archive`, where callers catch it.
* :class:`MediaCheckError` (an :class:`ArchiveError`): a produced file failed
  :func:`dashcam.media.verify.verify_media`.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["VideoError", "ArchiveError", "MediaCheckError"]


class VideoError(Exception):
    """A video cannot be used. The message names the file, what is wrong, and what to do."""


class ArchiveError(Exception):
    """Archiving failed (transcode error, missing source file). The message says what and why."""


class MediaCheckError(ArchiveError):
    """A produced media file is not complete/readable (see :func:`dashcam.media.verify.verify_media`).

    ``path``: the file checked; ``cause``: one line saying what is wrong.
    """

    def __init__(self, path: str | os.PathLike, cause: str, message: str | None = None):
        self.path = Path(path)
        self.cause = cause
        super().__init__(message or f"{self.path} is not a usable media file: {cause}")
