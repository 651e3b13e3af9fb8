"""Prefect Block types holding the deployed configuration, and how they become :class:`Settings`.

Three blocks, each saved under one name (default ``dashcam``):

* :class:`NasLayout` (``dashcam-nas-layout``): the NAS paths, mounted at the same path on every
  machine — ``raw`` (where the dashcam files land), ``heavy_output`` (per-video handover between
  the ``gpu`` and ``server`` pools: manifest, records, crops), ``archive`` (the archive NAS).
* :class:`ResultsDatabase` (``dashcam-results-database``): the results DB URL as a secret.
* :class:`PipelineConfig` (``dashcam-pipeline-config``): models, device, detection and the other
  settings, one typed field per :class:`Settings` field (description, bounds: the settings schema).

``dashcam blocks register`` registers the types and saves documents from the current
environment (``DASHCAM_*`` variables, see docs/configuration.md); deployed flow runs call
:func:`load_settings`, so workers need only ``PREFECT_API_URL``. Readers of the results DB
(``dashcam plates``, ``dashcam web``) find it from :class:`ResultsDatabase` through
:func:`dashcam.settings.resolve_database` when ``PREFECT_API_URL`` is set and no URL is given.
"""

from __future__ import annotations

import copy
import logging
from typing import Any, cast

from prefect.blocks.core import Block
from pydantic import BaseModel, Field, SecretStr, ValidationError, create_model, model_validator

from dashcam.settings import Settings, SettingsError, validation_message

log = logging.getLogger(__name__)
DEFAULT_NAME = "dashcam"
# Settings that come from NasLayout / ResultsDatabase, not from PipelineConfig
_PATH_FIELDS = frozenset({"data_dir", "database_url", "archive_dir", "work_dir", "raw_dir"})
PIPELINE_FIELDS = tuple(n for n in Settings.model_fields if n not in _PATH_FIELDS)


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


# The fields of PipelineConfig: the Settings fields outside paths and DB, with their types,
# defaults, descriptions and bounds (dashcam/settings.py), so the block's schema - and the form in
# Prefect's UI - is the settings schema. Settings' own validators (plate_formats, camera_tz) run
# when load_settings builds the Settings.
_FIELD_DEFINITIONS: dict[str, Any] = {
    n: (Settings.model_fields[n].annotation, copy.copy(Settings.model_fields[n])) for n in PIPELINE_FIELDS
}
PipelineFields: type[BaseModel] = create_model("PipelineFields", **_FIELD_DEFINITIONS)


# a base made at run time: plain mypy flags it (misc, valid-type), with the pydantic plugin (h13lint) it passes
class PipelineConfig(Block, PipelineFields):  # type: ignore[misc, valid-type, unused-ignore]
    """Model and detection settings: one typed field per :class:`Settings` field outside paths and DB
    (:data:`PIPELINE_FIELDS`). A document saved before these fields existed (``{"values": {...}}``)
    still loads."""

    _block_type_name = "Dashcam pipeline config"
    _block_type_slug = "dashcam-pipeline-config"
    _description = (
        "Models, device, detection thresholds and the other settings of dashcam-pipeline (docs/configuration.md)."
    )

    @model_validator(mode="before")
    @classmethod
    def _unwrap_legacy_values(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("values"), dict):  # saved as an untyped dict before issue 13
            legacy = {k: v for k, v in data["values"].items() if v != "**********"}  # secrets were saved masked
            data = {**legacy, **{k: v for k, v in data.items() if k != "values"}}
        return data

    @classmethod
    def from_settings(cls, settings: Settings) -> PipelineConfig:
        """The block document of ``settings`` (secrets kept as secrets)."""
        return cls(**{n: getattr(settings, n) for n in PIPELINE_FIELDS})

    def settings_values(self) -> dict[str, Any]:
        """The settings this document sets (fields absent from a stored document are left to the
        environment and the Settings defaults)."""
        return self.model_dump(include=set(PIPELINE_FIELDS), exclude_unset=True)


BLOCK_TYPES = (NasLayout, ResultsDatabase, PipelineConfig)


def save_blocks_from_settings(
    settings: Settings, raw_dir: str, name: str = DEFAULT_NAME, overwrite: bool = True
) -> None:
    """Register the block types and save the three documents under ``name`` from ``settings``."""
    for t in BLOCK_TYPES:
        t.register_type_and_schema()
    NasLayout(raw=raw_dir, heavy_output=str(settings.work_dir), archive=str(settings.archive_dir)).save(
        name, overwrite=overwrite
    )
    ResultsDatabase(url=SecretStr(settings.db_url)).save(name, overwrite=overwrite)
    PipelineConfig.from_settings(settings).save(name, overwrite=overwrite)


def load_settings(name: str = DEFAULT_NAME) -> Settings:
    """Settings for a deployed run: the blocks saved under ``name`` over the environment's defaults.

    Falls back to the environment alone (with a warning) when the blocks are missing, so a worker
    configured by env vars still runs.

    Raises:
        SettingsError: a block holds a value its field does not allow (one line), or the blocks
            and the environment together make invalid settings.
    """
    try:
        nas = cast(NasLayout, NasLayout.load(name))  # sync context: the documents, not coroutines
        db = cast(ResultsDatabase, ResultsDatabase.load(name))
        cfg = cast(PipelineConfig, PipelineConfig.load(name))
    except (ValueError, RuntimeError) as exc:  # prefect raises ValueError for a missing document
        invalid = exc if isinstance(exc, ValidationError) else exc.__cause__
        if isinstance(invalid, ValidationError):  # a stored document outside its (typed) block schema
            raise SettingsError(f"Prefect block {name!r}: {validation_message(invalid)}", invalid.errors()) from None
        log.warning("dashcam blocks %r not found (%s): using environment settings", name, exc)
        return Settings()
    if cfg.model_extra:
        log.warning(
            "block dashcam-pipeline-config/%s: ignoring fields that are no settings: %s",
            name,
            ", ".join(sorted(cfg.model_extra)),
        )
    return Settings(
        **{
            **cfg.settings_values(),
            "work_dir": nas.heavy_output,
            "archive_dir": nas.archive,
            "database_url": db.url,
            "raw_dir": nas.raw,
        }
    )


def run_settings(settings: Settings | None = None) -> Settings:
    """The settings of a flow run: ``settings`` when given; on a deployed run (a Prefect
    deployment id is set) the ones saved in the blocks (:func:`load_settings`); else
    :class:`dashcam.settings.Settings` from the environment."""
    from prefect.runtime import deployment

    if settings is not None:
        return settings
    if deployment.id:
        return load_settings()
    return Settings()
