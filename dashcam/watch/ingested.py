"""What was already ingested: :class:`IngestedIndex`, read-only questions to the results database.

:class:`dashcam.watch.watcher.Watcher` asks it before triggering a file (by ``video_id``) and at
catch-up/rescan (every ingested (path, size), so known files are skipped without hashing). The
database modules are imported on first use, so the watcher starts without them when
``--no-db`` is given.
"""

from __future__ import annotations


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
