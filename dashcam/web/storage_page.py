"""The read-only storage page of the web UI (issue 16 point 3): ``GET /storage`` and ``/api/storage``.

Renders :func:`dashcam.storage.storage_report` (the same dict as ``dashcam storage --json``):
used space per tier (raw, heavy output, archive), what retention would free now (a dry run of
the policy; nothing is deleted), and the protected raw files with their reasons. The report
reads through the web app's read-only engine (:class:`dashcam.web.app.Web`); it walks the three
folders, so the page costs a directory walk per request.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse

__all__ = ["register", "human_bytes"]


def human_bytes(n: float | None) -> str:
    """``1234567`` -> ``"1.2 MB"`` (SI units, 1 kB = 1000 bytes, as the retention settings' GB); None -> ``"-"``."""
    if n is None:
        return "-"
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"  # pragma: no cover - the loop returns


def register(app: FastAPI, page: Callable[..., HTMLResponse], web: Any) -> None:
    """Add ``GET /storage`` (HTML, template ``storage.html``) and ``GET /api/storage`` (the report
    as JSON) to ``app``; ``page(request, template, **ctx)`` renders a page, ``web`` is the app's
    :class:`dashcam.web.app.Web` (settings + read-only engine)."""
    from dashcam.storage import storage_report

    def short(path: str) -> str:
        """``path`` relative to the raw or archive folder it lies in, else as it is."""
        for root in (web.settings.raw_dir, web.settings.archive_dir):
            if root is not None:
                try:
                    return str(Path(path).relative_to(root))
                except ValueError:
                    pass
        return path

    def report() -> dict[str, Any]:
        return storage_report(web.settings, web.engine)

    @app.get("/storage", response_class=HTMLResponse)
    def storage(request: Request):
        """Used space per tier, what retention would free, the protected set (read-only)."""
        return page(request, "storage.html", title="Storage", r=report(), size=human_bytes, short=short)

    @app.get("/api/storage")
    def storage_json():
        """:func:`dashcam.storage.storage_report` as JSON."""
        import json

        return JSONResponse(json.loads(json.dumps(report(), default=str)))
