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

from pydantic import Field, PrivateAttr, SecretStr, field_validator, model_validator
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
    ocr_engine: Literal["plate", "rapidocr", "paddleocr"] = "plate"  # see the plate-OCR block below
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

    # --- Plate OCR and region (issue 14) ---
    # ocr_engine "plate" (default): a fast-plate-ocr plate recogniser from local files
    # (dashcam.platerec): the ONNX model (a path, or a file name in model_dir) and its plate-config
    # YAML (default: <model stem>_plate_config.yaml beside the model). Any fast-plate-ocr model +
    # YAML works. "rapidocr": PaddleOCR PP-OCRv6 (general text recogniser, 4 crop variants).
    plate_ocr_model: str = "cct_xs_v1_global.onnx"
    plate_ocr_config: str | None = None
    # Regions whose plate formats resolve look-alike characters (O/0, I/1, B/8, S/5, Z/2, G/6) in
    # voted and single-photo reads. "auto" (default): per event, the country at its GPS position,
    # else the country of camera_tz (else of this machine's timezone), else no prior
    # (dashcam.region; docs/configuration.md has the country -> formats table). Or keys of
    # dashcam.vote.PLATE_FORMATS ("NL", "EU", "US", "FR", ...), env DASHCAM_PLATE_FORMATS=NL,EU;
    # empty = no prior.
    plate_formats: Annotated[tuple[str, ...], NoDecode] = ("auto",)

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
    archive_blur: Literal["none", "plates"] = Field(
        default="none", description="Privacy blur in the archive copy and `dashcam clip --blur` (dashcam.blur): "
        "'plates' blurs every tracked plate in every frame (interpolated between analysed frames); 'none' keeps "
        "the plain transcode. Faces: not available (no offline face model; docs/storage.md).")

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
    # Watch lists and alerts (dashcam.watch_lists, docs/alerts.md): the default score a fuzzy
    # entry needs (0..1, dashcam.search.plate_score); the URL under which the archive folder is
    # served (crop links in alerts; unset: file:// links)
    watch_min_score: float = Field(default=0.75, gt=0.0, le=1.0)
    media_base_url: str | None = None

    queue_size: int = 8  # decoded frames buffered between the decode thread and the detector

    # Web UI (dashcam web, docs/webui.md)
    drive_gap_min: float = 10.0  # a gap longer than this between videos of one camera starts a new drive
    # map tiles ({s}, {z}, {x}, {y} as in Leaflet); its host is the only external origin the CSP allows
    tile_url: str = "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
    tile_attribution: str = '&copy; <a href="https://www.openstreetmap.org/copyright">OpenStreetMap</a> contributors'
    # access token: required to start on a non-loopback address; when set, every page needs a login
    web_token: SecretStr | None = None

    _database_url_given: bool = PrivateAttr(default=True)

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

        if tuple(v) == ("auto",):
            return ("auto",)
        bad = [r for r in v if r not in PLATE_FORMATS]
        if bad:
            raise ValueError(f"unknown plate format region(s) {bad} (known: auto, {', '.join(PLATE_FORMATS)})")
        return tuple(v)

    @model_validator(mode="after")
    def _fill_defaults(self) -> "Settings":
        self.data_dir = Path(self.data_dir).expanduser()
        if self.database_url is None:
            self._database_url_given = False
            self.database_url = SecretStr(f"sqlite:///{self.data_dir / 'dashcam.db'}")
        if self.archive_dir is None:
            self.archive_dir = self.data_dir / "archive"
        if self.work_dir is None:
            self.work_dir = self.data_dir / "work"
        return self

    @property
    def database_url_given(self) -> bool:
        """Whether the URL was given (argument, ``DASHCAM_DATABASE_URL``), not the default SQLite file."""
        return self._database_url_given

    @property
    def db_url(self) -> str:
        """The results database URL as a plain string (for :func:`dashcam.db.make_engine`)."""
        return self.database_url.get_secret_value()


class DatabaseConfigError(RuntimeError):
    """The results database cannot be determined (one-line message for the user)."""


def redact_url(url: str) -> str:
    """``url`` with its password replaced by ``***`` (for messages)."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - not a URL SQLAlchemy parses: show it as given
        return url


def _prefect_api_url() -> str | None:
    """PREFECT_API_URL from the environment or the active Prefect profile (None: not set).

    Prefect is imported (seconds) only when a profiles file exists and the variable is not set."""
    url = os.environ.get("PREFECT_API_URL")
    if url:
        return url
    home = Path(os.environ.get("PREFECT_HOME") or Path.home() / ".prefect").expanduser()
    if not (home / "profiles.toml").exists():
        return None
    from prefect.settings import get_current_settings

    return get_current_settings().api.url


def resolve_database(settings: Settings, block_name: str = "dashcam", timeout_s: float = 5.0) -> tuple[str, str]:
    """The results database a reader (``dashcam plates``, ``dashcam web``) opens, and why that one.

    In this order:

    1. a URL given (``--database-url``, ``DASHCAM_DATABASE_URL``, ``Settings(database_url=…)``);
    2. when a Prefect API is configured (``PREFECT_API_URL``, environment or Prefect profile):
       the deployed results DB, from the block ``dashcam-results-database/<block_name>`` that
       ``dashcam deploy`` saved (blocks/config.py);
    3. the default SQLite file ``<data_dir>/dashcam.db``.

    Returns:
        ``(url, source)``: the SQLAlchemy URL (may hold a password: show it through
        :func:`redact_url`) and a short text saying where it came from, for a message such as
        ``results DB: <url> (<source>)``.

    Raises:
        DatabaseConfigError: a Prefect API is configured but does not answer within
            ``timeout_s`` (the deployed DB cannot be found; reading another one would show a
            misleading empty list).
    """
    if settings.database_url_given:
        return settings.db_url, "given by --database-url / DASHCAM_DATABASE_URL"
    default = f"default SQLite file in {settings.data_dir}"
    api = _prefect_api_url()
    if not api:
        return settings.db_url, f"{default}; no --database-url, DASHCAM_DATABASE_URL or PREFECT_API_URL"
    import urllib.request

    try:
        with urllib.request.urlopen(api.rstrip("/") + "/health", timeout=timeout_s):
            pass
    except OSError as exc:
        raise DatabaseConfigError(
            f"PREFECT_API_URL={api} does not answer ({getattr(exc, 'reason', exc)}), so the deployed results DB "
            "cannot be looked up: start the Prefect server, or give --database-url / DASHCAM_DATABASE_URL"
        ) from None
    from blocks.config import ResultsDatabase

    try:
        block = ResultsDatabase.load(block_name)
    except ValueError:  # no such block document: nothing deployed on that server
        return settings.db_url, f"{default}; no block dashcam-results-database/{block_name} on {api}"
    except Exception as exc:  # noqa: BLE001 - an HTTP/API error: one line, not a traceback
        raise DatabaseConfigError(f"cannot read block dashcam-results-database/{block_name} on {api}: {exc}") from None
    return block.url.get_secret_value(), f"Prefect block dashcam-results-database/{block_name} on {api}"
