"""Starting the ``ingest`` deployment: :class:`PrefectTrigger`, :class:`TriggerResult`, :func:`idempotency_key`.

One ``create_flow_run`` request per complete file, keyed by the content-derived ``video_id`` so
that the Prefect server keeps a single run per video whoever asks how often. Prefect is imported
on first use. :class:`dashcam.watch.watcher.Watcher` calls a trigger (this one by default) and
retries on any exception it raises.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from uuid import UUID


def idempotency_key(video_id: str) -> str:
    """The idempotency key of the one ``ingest`` flow run of a video: ``ingest:<video_id>``."""
    return f"ingest:{video_id}"


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
