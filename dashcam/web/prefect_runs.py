"""Ingest failures for the dashboard: failed/crashed ``ingest-video`` runs from the Prefect API."""

from __future__ import annotations

import time
from dataclasses import dataclass

import httpx

__all__ = ["Failure", "FailureReader"]


@dataclass
class Failure:
    run_id: str
    name: str  # the run name: the video's file name
    path: str | None  # the ``path`` parameter
    state: str  # "Failed", "Crashed"
    when: str | None  # ISO 8601 UTC
    message: str | None
    url: str | None  # the run in the Prefect UI, when PREFECT_UI_URL is known


class FailureReader:
    """Reads ``POST {api}/flow_runs/filter`` (Prefect REST API) with a short timeout, caching
    the answer ``cache_s`` seconds. ``api_url``: e.g. ``http://127.0.0.1:4200/api``;
    ``ui_url``: e.g. ``http://127.0.0.1:4200`` (run links ``{ui}/runs/flow-run/<id>``)."""

    def __init__(self, api_url: str | None, ui_url: str | None, timeout_s: float = 2.0, cache_s: float = 30.0):
        self.api_url = api_url.rstrip("/") if api_url else None
        self.ui_url = ui_url.rstrip("/") if ui_url else None
        self.timeout_s = timeout_s
        self.cache_s = cache_s
        self._cache: tuple[float, list[Failure] | None, str | None] | None = None

    def read(self, limit: int = 10) -> tuple[list[Failure] | None, str | None]:
        """``(failures, None)``, or ``(None, why)`` when no API is configured or it did not answer."""
        if not self.api_url:
            return None, "no PREFECT_API_URL configured"
        now = time.monotonic()
        if self._cache and now - self._cache[0] < self.cache_s:
            return self._cache[1], self._cache[2]
        body = {
            "flows": {"name": {"any_": ["ingest-video"]}},
            "flow_runs": {"state": {"type": {"any_": ["FAILED", "CRASHED"]}}},
            "sort": "EXPECTED_START_TIME_DESC",
            "limit": limit,
        }
        try:
            r = httpx.post(f"{self.api_url}/flow_runs/filter", json=body, timeout=self.timeout_s)
            r.raise_for_status()
            runs = r.json()
            out = []
            for run in runs:
                st = run.get("state") or {}
                params = run.get("parameters") or {}
                out.append(
                    Failure(
                        run_id=run["id"],
                        name=run.get("name") or "",
                        path=params.get("path"),
                        state=st.get("name") or st.get("type", "").title(),
                        when=run.get("end_time") or run.get("start_time") or run.get("expected_start_time"),
                        message=(st.get("message") or "").strip() or None,
                        url=f"{self.ui_url}/runs/flow-run/{run['id']}" if self.ui_url else None,
                    )
                )
            res: tuple[list[Failure] | None, str | None] = (out, None)
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            res = (None, f"the Prefect API at {self.api_url} did not answer ({type(exc).__name__})")
        self._cache = (now, *res)
        return res
