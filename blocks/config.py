"""Prefect Block types holding the deployed configuration, and how they become :class:`Settings`.

Three blocks, each saved under one name (default ``dashcam``):

* :class:`NasLayout` (``dashcam-nas-layout``): the NAS paths, mounted at the same path on every
  machine — ``raw`` (where the dashcam files land), ``heavy_output`` (per-video handover between
  the ``gpu`` and ``server`` pools: manifest, records, crops), ``archive`` (the archive NAS).
* :class:`ResultsDatabase` (``dashcam-results-database``): the results DB URL as a secret.
* :class:`PipelineConfig` (``dashcam-pipeline-config``): models, device and detection settings.

``dashcam blocks register`` registers the types and saves documents from the current
environment (``DASHCAM_*`` variables, see docs/configuration.md); deployed flow runs call
:func:`load_settings`, so workers need only ``PREFECT_API_URL``. Readers of the results DB
(``dashcam plates``, ``dashcam web``) find it from :class:`ResultsDatabase` through
:func:`dashcam.settings.resolve_database` when ``PREFECT_API_URL`` is set and no URL is given.
"""

from __future__ import annotations

import logging

from prefect.blocks.core import Block
from pydantic import Field, SecretStr

from dashcam.settings import Settings

log = logging.getLogger(__name__)
DEFAULT_NAME = "dashcam"


class NasLayout(Block):
    """Where the NAS folders are mounted (the same absolute path on every machine)."""

    _block_type_name = "Dashcam NAS layout"
    _block_type_slug = "dashcam-nas-layout"
    _description = "NAS folders of dashcam-pipeline: raw footage, heavy output (handover), archive."

    raw: str = Field(description="Folder the dashcam files are synced to (watched by `dashcam watch`).")
    heavy_output: str = Field(description="Per-video handover folder between the gpu and server pools.")
    archive: str = Field(description="Archive NAS folder: de-resolved videos, plate crops, thumbnails.")


class ResultsDatabase(Block):
    """The results database (``videos``, ``vehicles``)."""

    _block_type_name = "Dashcam results database"
    _block_type_slug = "dashcam-results-database"
    _description = "SQLAlchemy URL of the dashcam-pipeline results DB, e.g. postgresql+psycopg://user:pw@host/db."

    url: SecretStr = Field(description="SQLAlchemy URL; postgresql+psycopg://… in production.")


class PipelineConfig(Block):
    """Model and detection settings (every field of :class:`Settings` outside paths and DB)."""

    _block_type_name = "Dashcam pipeline config"
    _block_type_slug = "dashcam-pipeline-config"
    _description = "Models, device and detection thresholds of dashcam-pipeline."

    values: dict = Field(default_factory=dict, description="Settings fields, e.g. {\"device\": \"0\", \"detect_fps\": 6}.")


BLOCK_TYPES = (NasLayout, ResultsDatabase, PipelineConfig)
_PATH_FIELDS = {"data_dir", "database_url", "archive_dir", "work_dir", "raw_dir"}


def save_blocks_from_settings(settings: Settings, raw_dir: str, name: str = DEFAULT_NAME, overwrite: bool = True) -> None:
    """Register the block types and save the three documents under ``name`` from ``settings``."""
    for t in BLOCK_TYPES:
        t.register_type_and_schema()
    NasLayout(raw=raw_dir, heavy_output=str(settings.work_dir), archive=str(settings.archive_dir)).save(name, overwrite=overwrite)
    ResultsDatabase(url=settings.database_url).save(name, overwrite=overwrite)
    values = settings.model_dump(mode="json", exclude=_PATH_FIELDS)
    PipelineConfig(values=values).save(name, overwrite=overwrite)


def load_settings(name: str = DEFAULT_NAME) -> Settings:
    """Settings for a deployed run: the blocks saved under ``name`` over the environment's defaults.

    Falls back to the environment alone (with a warning) when the blocks are missing, so a worker
    configured by env vars still runs.
    """
    try:
        nas = NasLayout.load(name)
        db = ResultsDatabase.load(name)
        cfg = PipelineConfig.load(name)
    except (ValueError, RuntimeError) as exc:  # prefect raises ValueError for a missing document
        log.warning("dashcam blocks %r not found (%s): using environment settings", name, exc)
        return Settings()
    return Settings(**{**cfg.values, "work_dir": nas.heavy_output, "archive_dir": nas.archive, "database_url": db.url,
                       "raw_dir": nas.raw})


def run_settings(settings: "Settings | None" = None) -> "Settings":
    """The settings of a flow run: ``settings`` when given; on a deployed run (a Prefect
    deployment id is set) the ones saved in the blocks (:func:`load_settings`); else
    :class:`dashcam.settings.Settings` from the environment."""
    from prefect.runtime import deployment

    from dashcam.settings import Settings

    if settings is not None:
        return settings
    if deployment.id:
        return load_settings()
    return Settings()
