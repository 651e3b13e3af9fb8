"""Settings for local runs: defaults < environment (``DASHCAM_*``) < CLI flags.

Deployed runs (issue 3) read the same :class:`Settings` from Prefect blocks; locally, everything
has an embedded default so that ``dashcam ingest VIDEO`` works on a laptop: a SQLite results
database and archive/work folders under ``data_dir`` (default ``~/.local/share/dashcam`` or
``$XDG_DATA_HOME/dashcam``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "dashcam"


class Settings(BaseSettings):
    """Everything a run needs to know. Env vars are ``DASHCAM_<FIELD>`` (upper case)."""

    model_config = SettingsConfigDict(env_prefix="DASHCAM_", extra="ignore")

    data_dir: Path = Field(default_factory=_default_data_dir)
    # SecretStr: the URL may hold a password; Prefect shows parameters in its UI and masks these.
    # Use ``settings.db_url`` for the plain string. Default: sqlite:///<data_dir>/dashcam.db
    database_url: SecretStr | None = None
    archive_dir: Path | None = None  # default: <data_dir>/archive
    work_dir: Path | None = None  # heavy output per video; default: <data_dir>/work

    # Models: an explicit path wins; else a file of the default name in model_dir; else the
    # ultralytics/user cache; else download by name (machines with internet only).
    model_dir: Path | None = None
    vehicle_model: str = "yolov8n-coco-int8-320.onnx"
    plate_model: str = "platedet-yolov8s-seg-640.onnx"
    # run a dynamic-int8 ONNX vehicle model as an fp32 copy of the same weights (~3x faster on CPU)
    vehicle_fp32: bool = True
    ocr_engine: Literal["rapidocr", "paddleocr"] = "rapidocr"
    device: str = "cpu"  # ultralytics device string: "cpu", "0", "cuda:0"

    # Detection
    detect_fps: float = 6.0  # analysed frames per second of video (<= source fps)
    vehicle_conf: float = 0.25
    plate_conf: float = 0.35
    # plate-detector input size (px, multiple of 32) for vehicle crops; whole images use 640.
    # 320 finds 156 of the 157 plates 640 finds in plates-images vehicle crops at ~1/4 the cost
    # (docs/performance.md); raise it for vehicles far larger than 320 px only if plates are missed
    plate_crop_imgsz: int = 320
    # which vehicles get plate detection + OCR in an analysed frame (dashcam.pipeline.PlateReadScheduler)
    plate_min_vehicle_px: float = 96.0  # vehicles narrower than this (source px) are never read
    plate_retry_s: float = 1.0  # re-try a vehicle without a plate / with a settled plate after this
    plate_settle_reads: int = 4  # agreeing confident reads that settle a track; 0 = read every frame
    # frames with no tracked vehicle: look for a plate filling the frame (car right in front,
    # vehicle not detected; dashcam.alpr.CloseupPlateTracker), scheduled like a vehicle
    closeup_plates: bool = True
    tracker: str = "bytetrack.yaml"  # an ultralytics tracker config

    # Regions whose plate formats resolve look-alike characters (O/0, I/1, B/8, S/5, Z/2, G/6) in
    # voted and single-photo reads: keys of dashcam.vote.PLATE_FORMATS ("NL", "EU", "US"); env
    # DASHCAM_PLATE_FORMATS=NL,EU; empty = no prior
    plate_formats: Annotated[tuple[str, ...], NoDecode] = ("NL", "EU")

    # Voting: events below this confidence are not stored (see dashcam.vote)
    min_plate_confidence: float = 0.6
    min_reads: int = 2

    # Time: Viofo-style file names carry the camera's local clock time. "local" = this machine's
    # timezone; else an IANA name such as "Europe/Amsterdam" or "UTC".
    camera_tz: str = "local"

    # GPS
    gpx: Path | None = None  # default: same-stem .gpx beside the video
    gps_max_gap_s: float = 10.0  # no interpolation across a gap longer than this
    gps_track_dir: Path | None = None  # GPX/NMEA logs searched by recording time when a video has no embedded GPS or sidecar

    # Archive
    archive_height: int = 720  # 720 or 540
    archive_crf: int = 28
    archive_preset: str = "veryfast"

    # Storage and retention (dashcam.storage, docs/storage.md)
    raw_dir: Path | None = Field(default=None, description="Folder tree the dashcam files land in (DASHCAM_RAW_DIR); "
                                 "measured as the raw tier by `dashcam storage` and the disk budget.")
    raw_keep_days: float = Field(default=7.0, ge=0, le=3650, description="Raw files of finalized videos with a "
                                 "verified archive copy are deleted this many days after recording and ingest.")
    raw_max_gb: float | None = Field(default=None, gt=0, description="Disk budget of the raw tier (GB = 1e9 bytes): "
                                     "when exceeded, eligible raw files younger than raw_keep_days go, oldest first. "
                                     "None: no budget.")
    archive_keep_days: float | None = Field(default=None, gt=0, le=36500, description="Archive video copies older "
                                            "than this are deleted (crops, thumbnails and rows stay). None: keep forever.")

    queue_size: int = 8  # decoded frames buffered between the decode thread and the detector

    @field_validator("plate_formats", mode="before")
    @classmethod
    def _split_formats(cls, v):
        if isinstance(v, str):  # env / CLI: "NL,EU" (or a JSON list)
            v = v.strip()
            if v.startswith("["):
                import json

                v = json.loads(v)
            else:
                v = [x for x in (p.strip() for p in v.split(",")) if x]
        from dashcam.vote import PLATE_FORMATS

        bad = [r for r in v if r not in PLATE_FORMATS]
        if bad:
            raise ValueError(f"unknown plate format region(s) {bad} (known: {', '.join(PLATE_FORMATS)})")
        return tuple(v)

    @model_validator(mode="after")
    def _fill_defaults(self) -> "Settings":
        self.data_dir = Path(self.data_dir).expanduser()
        if self.database_url is None:
            self.database_url = SecretStr(f"sqlite:///{self.data_dir / 'dashcam.db'}")
        if self.archive_dir is None:
            self.archive_dir = self.data_dir / "archive"
        if self.work_dir is None:
            self.work_dir = self.data_dir / "work"
        return self

    @property
    def db_url(self) -> str:
        """The results database URL as a plain string (for :func:`dashcam.db.make_engine`)."""
        return self.database_url.get_secret_value()
