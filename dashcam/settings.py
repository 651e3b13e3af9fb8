"""Settings for local runs: defaults < environment (``DASHCAM_*``) < CLI flags; one schema.

Deployed runs (issue 3) read the same :class:`Settings` from Prefect blocks; locally, everything
has an embedded default so that ``dashcam ingest VIDEO`` works on a laptop: a SQLite results
database and archive/work folders under ``data_dir`` (default ``~/.local/share/dashcam`` or
``$XDG_DATA_HOME/dashcam``).

:class:`Settings` is the one description of every setting (issue 13; Frigate's config models are
the pattern: a description and bounds per field). Everything else is generated from it:

* the environment variable ``DASHCAM_<FIELD>`` (pydantic-settings);
* the CLI option help: :func:`dashcam.settings_cli.setting_option` builds a ``typer.Option``
  from the field (description, allowed values, default, env var);
* the settings table of docs/configuration.md: ``dashcam config --write-doc docs/configuration.md``
  (tests/test_settings.py fails when the committed table or the CLI help drifts from the schema);
* the Prefect block :class:`blocks.config.PipelineConfig` (every field outside paths and the DB).

How to add a setting
--------------------
1. Add one field to :class:`Settings`, in the group it belongs to::

       archive_blur: bool = Field(default=False, description="Blur plates and faces in the archive copy.")

   A number gets bounds (``ge``/``gt``/``le``/``lt``, also ``multiple_of``), a fixed set of
   values a ``Literal[...]``, a free string at least ``min_length=1`` or a ``pattern`` where an
   empty value makes no sense. The description is a sentence or two that a user reads in
   ``--help`` and in docs/configuration.md: unit, meaning, what 0/None means. Backticks mark
   code (stripped in ``--help``). A default computed at run time (a path under ``data_dir``) is
   ``None`` in the field plus ``json_schema_extra={"shown_default": "DATA/…"}`` for the docs.
2. Read it as ``settings.archive_blur``. To give it a flag, declare the option with
   ``Annotated[bool | None, setting_option("archive_blur")] = None`` in the command's module under dashcam/cli/ and pass
   it to ``_settings(...)`` (``None`` = not given: environment / default).
3. Run ``dashcam config --write-doc docs/configuration.md`` and commit the table it rewrites; add
   the default to ``DEFAULTS`` in tests/test_settings.py (defaults are pinned there, so a change
   of one shows in review). A field that should not go into the deployed ``PipelineConfig`` block
   (a path the NAS blocks give) goes into ``blocks.config._PATH_FIELDS``.

Invalid values raise :class:`SettingsError` (a ``ValueError``) with one line naming the setting,
its env var, the value and the rule, e.g. ``invalid setting archive_crf = 60 (DASHCAM_ARCHIVE_CRF):
Input should be less than or equal to 51``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal, cast, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, PrivateAttr, SecretStr, ValidationError, field_validator, model_validator
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ENV_PREFIX = "DASHCAM_"
X264Preset = Literal[
    "ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow", "placebo"
]


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "dashcam"


def default_parallel_videos(cores: int | None = None, gpu: bool | None = None) -> int:
    """The default of ``Settings.max_parallel_videos`` for this machine: 1 on <= 2 usable cores
    without an NVIDIA GPU (measured, docs/performance.md "Issue 17": a second video on 2 cores
    gains nothing, both halves fight for the same cores), else ``cores // 2`` (one decode + one
    inference core per video) capped at 4, and at least 2 when ``/dev/nvidia0`` exists (one video
    decodes while another's frames are on the GPU). ``cores``: usable CPU cores (default: the
    process's affinity mask); ``gpu``: whether an NVIDIA device is present (default: looked up)."""
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if gpu is None:
        gpu = Path("/dev/nvidia0").exists()
    n = 1 if cores <= 2 else min(4, cores // 2)
    return max(n, 2) if gpu else n


def env_var(field: str) -> str:
    """The environment variable of a :class:`Settings` field: ``DASHCAM_<FIELD>``."""
    return ENV_PREFIX + field.upper()


class SettingsError(ValueError):
    """Invalid settings: one line naming each bad setting, its env var, the value and the rule.

    ``errors`` holds pydantic's error dicts (``loc``, ``msg``, ``type``, ``input``)."""

    def __init__(self, message: str, errors: list[ErrorDetails] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or []


def secret_fields() -> set[str]:
    """Names of the :class:`Settings` fields holding a secret (``SecretStr``): never shown."""
    return {
        n for n, f in Settings.model_fields.items() if f.annotation is SecretStr or SecretStr in get_args(f.annotation)
    }


def validation_message(exc: ValidationError) -> str:
    """``invalid setting NAME = VALUE (DASHCAM_NAME): rule; ...``: one line for a ValidationError of
    :class:`Settings` (or of a model with its fields); secret values are shown as ``***``."""
    secret = secret_fields()
    parts = []
    for err in exc.errors():
        name = str(err["loc"][0]) if err["loc"] else ""
        msg = " ".join(str(err["msg"]).split()).removeprefix("Value error, ")
        if not name:
            parts.append(msg)
            continue
        value = "***" if name in secret else repr(err.get("input"))
        parts.append(f"{name} = {value} ({env_var(name)}): {msg}")
    return "invalid setting " + "; ".join(parts)


class Settings(BaseSettings):
    """Everything a run needs to know. Env vars are ``DASHCAM_<FIELD>`` (upper case).

    Raises:
        SettingsError: a value (argument or environment) outside its field's rule.
    """

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    # --- Folders and the results database ---
    data_dir: Path = Field(
        default_factory=_default_data_dir,
        description="Base folder of the defaults: the SQLite results DB, the archive and work folders.",
        json_schema_extra={"shown_default": "`$XDG_DATA_HOME/dashcam` or `~/.local/share/dashcam`"},
    )
    # SecretStr: the URL may hold a password; Prefect shows parameters in its UI and masks these.
    database_url: SecretStr | None = Field(
        default=None,
        description="SQLAlchemy URL of the results DB: `sqlite:///FILE` or "
        "`postgresql+psycopg://USER:PW@HOST:5432/DB` (a secret: masked in Prefect's UI; "
        "`settings.db_url` is the plain string). Read commands (`dashcam plates`) without it and "
        "with `PREFECT_API_URL` set use the deployed DB of the block "
        "`dashcam-results-database/dashcam` (`dashcam.settings.resolve_database`).",
        json_schema_extra={"shown_default": "`sqlite:///DATA/dashcam.db`"},
    )
    archive_dir: Path | None = Field(
        default=None,
        description="Archive copies, plate crops and thumbnails.",
        json_schema_extra={"shown_default": "`DATA/archive`"},
    )
    work_dir: Path | None = Field(
        default=None,
        description="Heavy output (records, crops) per video; deployed: the handover folder.",
        json_schema_extra={"shown_default": "`DATA/work`"},
    )

    # --- Models: an explicit path wins; else a file of the default name in model_dir; else the
    # ultralytics/user cache; else download by name (machines with internet only) ---
    model_dir: Path | None = Field(default=None, description="Folder with the model files (docs/models.md).")
    vehicle_model: str = Field(
        default="yolov8n-coco-int8-320.onnx",
        min_length=1,
        description="Ultralytics vehicle detector: a file name in `model_dir`, a path, or a hub name.",
    )
    plate_model: str = Field(
        default="platedet-yolov8s-seg-640.onnx",
        min_length=1,
        description="Ultralytics plate detector: a file name in `model_dir`, a path, or a hub name.",
    )
    vehicle_fp32: bool = Field(
        default=True,
        description="Run a dynamic-int8 ONNX vehicle model as an fp32 copy of the same weights "
        "(~3x faster on CPU; docs/models.md).",
    )
    ocr_engine: Literal["plate", "rapidocr", "paddleocr"] = Field(
        default="plate",
        description="Plate reader: `plate` (fast-plate-ocr plate recogniser, `plate_ocr_model`), `rapidocr` "
        "(PP-OCRv6 general text recogniser, offline, 4 crop variants) or `paddleocr`.",
    )
    device: str = Field(
        default="auto",
        min_length=1,
        description="Where inference runs: `auto` (CUDA when onnxruntime has its CUDA execution provider or "
        "torch sees a GPU, else CPU; logged at start), `cpu`, `cuda` / `cuda:N` / `N` (that GPU, an error "
        "where there is none), or another ultralytics device string.",
    )

    # --- Detection ---
    detect_fps: float = Field(
        default=6.0,
        gt=0,
        le=240,
        description="Frames per second of video analysed (every K-th frame, K = round(fps / detect_fps); "
        "at most the source fps).",
    )
    vehicle_conf: float = Field(default=0.25, ge=0, le=1, description="Vehicle detector confidence threshold.")
    plate_conf: float = Field(default=0.35, ge=0, le=1, description="Plate detector confidence threshold.")
    # 320 finds 156 of the 157 plates 640 finds in plates-images vehicle crops at ~1/4 the cost
    # (docs/performance.md); raise it for vehicles far larger than 320 px only if plates are missed
    plate_crop_imgsz: int = Field(
        default=320,
        ge=32,
        le=1280,
        multiple_of=32,
        description="Plate-detector input (px) for vehicle crops up to 1.25x this size; larger crops and whole "
        "images use 640.",
    )
    # which vehicles get plate detection + OCR in an analysed frame (dashcam.alpr.PlateReadScheduler)
    plate_min_vehicle_px: float = Field(
        default=96.0,
        ge=0,
        le=8192,
        description="Vehicles narrower than this (source px) never get plate detection (their plate is too "
        "small to read).",
    )
    plate_retry_s: float = Field(
        default=1.0,
        ge=0,
        le=600,
        description="Re-try interval (s) for a settled vehicle or one where the last try found no plate "
        "(sooner if it grew 1.25x).",
    )
    plate_settle_reads: int = Field(
        default=4,
        ge=0,
        le=1000,
        description="Agreeing confident reads after which a vehicle is re-read only every `plate_retry_s`; "
        "0 = read every vehicle in every analysed frame.",
    )
    plate_settle_fast_reads: int = Field(
        default=3,
        ge=0,
        le=1000,
        description="A vehicle is also settled after this many agreeing reads at OCR confidence >= 0.95 (the "
        "plate recogniser's usual level on a clear plate); 0 = off.",
    )
    plate_hint_imgsz: int = Field(
        default=192,
        ge=0,
        le=1280,
        multiple_of=32,
        description="Plate-detector input (px) for the region around where a track's plate was last seen, "
        "searched before its whole vehicle crop (which then runs only when nothing is found there); "
        "0 = off, and so is a size not below `plate_crop_imgsz`.",
    )
    closeup_plates: bool = Field(
        default=True,
        description="Frames with no tracked vehicle get a whole-frame plate pass at the small detector input, "
        "scheduled like a vehicle (a car right in front whose plate fills the frame and whose body "
        "the vehicle model misses; `dashcam.alpr.CloseupPlateTracker`).",
    )
    tracker: str = Field(
        default="bytetrack.yaml",
        pattern=r"\.ya?ml$",
        description="Ultralytics tracker config (`bytetrack.yaml`, `botsort.yaml` or a path to a YAML file).",
    )

    # --- Plate OCR and region (issue 14) ---
    plate_ocr_model: str = Field(
        default="cct_xs_v1_global.onnx",
        min_length=1,
        description="fast-plate-ocr ONNX model of `ocr_engine` `plate` (`dashcam.platerec`): a path, or a file "
        "name in `model_dir`; any fast-plate-ocr model works (docs/models.md).",
    )
    plate_ocr_config: str | None = Field(
        default=None,
        description="The plate-config YAML of `plate_ocr_model`.",
        json_schema_extra={"shown_default": "`<model stem>_plate_config.yaml` beside the model"},
    )
    plate_formats: Annotated[tuple[str, ...], NoDecode] = Field(
        default=("auto",),
        description="Regions whose plate formats settle look-alike characters (O/0, I/1, B/8, S/5, Z/2, G/6) in "
        "voted and photo reads. `auto`: per event, the country at its GPS position, else the country "
        "of `camera_tz` (`local`: this machine's zone), else none (country table in docs/configuration.md). Or explicit keys, "
        "comma-separated (an explicit value always wins): `NL` (sidecodes 1-14), `FR` `IT` `SK` `GB` "
        "`ES` `BE` `CZ` `PL` `SE` (national formats), `EU` (all of those), `US` (O written 0); "
        "empty = none.",
        json_schema_extra={"allowed": "`auto`, or keys of `dashcam.vote.PLATE_FORMATS`"},
    )

    # --- Voting: events below this confidence are not stored (see dashcam.vote) ---
    min_plate_confidence: float = Field(default=0.6, ge=0, le=1, description="Voted confidence below this: no event.")
    min_reads: int = Field(default=2, ge=1, le=1000, description="Plausible reads of one vehicle needed for an event.")

    # --- Time ---
    camera_tz: str = Field(
        default="local",
        description="Timezone of the camera clock in file names (Viofo style): `local` (this machine's) or an "
        "IANA name such as `Europe/Amsterdam` or `UTC`.",
    )

    # --- GPS ---
    gpx: Path | None = Field(
        default=None,
        description="GPX/NMEA track of the video, instead of searching for one.",
        json_schema_extra={"shown_default": "embedded track, else a same-stem `.gpx`/`.nmea`/`.log` beside the video"},
    )
    gps_max_gap_s: float = Field(
        default=10.0, ge=0, le=86400, description="Never interpolate across a longer gap (s) between fixes."
    )
    gps_track_dir: Path | None = Field(
        default=None,
        description="Folder of GPX/NMEA logs searched by recording time when a video has no embedded GPS and no "
        "sidecar (docs/gps.md).",
    )

    # --- Archive ---
    # any height works (the transcode keeps the aspect and never upscales); 720 and 540 are the
    # profiles of docs/storage.md, the tests use 240 for speed
    archive_height: int = Field(
        default=720, ge=144, le=2160, description="Archive copy height in px (usually 720 or 540; never upscaled)."
    )
    archive_crf: int = Field(
        default=28, ge=0, le=51, description="libx264 quality of the archive copy (CRF; lower is better)."
    )
    archive_preset: X264Preset = Field(default="veryfast", description="libx264 speed preset of the archive copy.")
    archive_blur: Literal["none", "plates", "plates+faces"] = Field(
        default="none",
        description="Privacy blur in the archive copy and `dashcam clip --blur` (dashcam.blur): 'plates' blurs "
        "every tracked plate in every frame (interpolated between analysed frames); 'plates+faces' also blurs "
        "frontal faces found by dlib's HOG detector (about 60 px wide and larger in the archive frame; "
        "docs/storage.md); 'none' keeps the plain transcode.",
    )

    # --- Storage and retention (dashcam.storage, docs/storage.md) ---
    raw_dir: Path | None = Field(
        default=None,
        description="Folder tree the dashcam files land in: measured as the raw tier by `dashcam storage` and "
        "the disk budget (deployed: the `NasLayout` block's `raw`).",
    )
    raw_keep_days: float = Field(
        default=7.0,
        ge=0,
        le=3650,
        description="Raw files of finalized videos with a verified archive copy are deleted this many days after "
        "recording and ingest.",
    )
    raw_max_gb: float | None = Field(
        default=None,
        gt=0,
        description="Disk budget of the raw tier (GB = 1e9 bytes): when exceeded, eligible raw files younger than "
        "`raw_keep_days` go, oldest first.",
        json_schema_extra={"shown_default": "no budget"},
    )
    archive_keep_days: float | None = Field(
        default=None,
        gt=0,
        le=36500,
        description="Archive video copies older than this many days are deleted (crops, thumbnails and rows stay).",
        json_schema_extra={"shown_default": "forever"},
    )

    # --- Watch lists and alerts (dashcam.watch_lists, docs/alerts.md) ---
    watch_min_score: float = Field(
        default=0.75,
        gt=0.0,
        le=1.0,
        description="Score a fuzzy watch-list entry needs (`dashcam.search.plate_score`; per entry: "
        "`dashcam watchlist add --min-score`).",
    )
    media_base_url: str | None = Field(
        default=None,
        description="URL under which `archive_dir` is served: crop links in alerts become "
        "`<url>/<path under archive_dir>` (unset: `file://` links).",
    )

    queue_size: int = Field(
        default=8, ge=1, le=1024, description="Decoded frames buffered between the decode thread and the detector."
    )
    # --- Videos in parallel (issue 17; flows/ingest.py, docs/performance.md) ---
    max_parallel_videos: int | None = Field(
        default=None,
        ge=1,
        le=32,
        description="Videos one `ingest` run processes at once (threads of a Prefect ThreadPoolTaskRunner, "
        "one model set per thread). Unset: from the machine (`default_parallel_videos`: 1 on <= 2 cores "
        "without a GPU, else cores / 2 up to 4, at least 2 with a GPU).",
        json_schema_extra={"shown_default": "from the machine (1 on <= 2 cores without GPU)"},
    )
    # --- Decoder (issue 17, dashcam.media.decode / dashcam.media.hwaccel) ---
    hwaccel: Literal["auto", "none", "cuda", "vaapi", "qsv"] = Field(
        default="auto",
        description="Hardware video decode (ffmpeg `-hwaccel`): `auto` uses the first of cuda (NVDEC), vaapi, qsv "
        "that decodes a frame of the video's codec (probed once per process), else the CPU; `none` always decodes "
        "on the CPU; an explicit method that does not work falls back to the CPU with a warning.",
    )
    decode_threads: int = Field(
        default=0,
        ge=0,
        le=64,
        description="ffmpeg decoder threads per video (0: ffmpeg decides, about one per core).",
    )
    decode_skip_loop_filter: bool = Field(
        default=False,
        description="Skip the in-loop deblocking (and HEVC SAO) filter when decoding (ffmpeg `-skip_loop_filter all`): "
        "HEVC decodes ~1.7x faster on CPU, but every frame drifts from the true picture until the next keyframe "
        "(PSNR ~40-45 dB on 1440p HEVC, docs/performance.md, issue 17). Off: exact frames.",
    )

    # --- Web UI (dashcam web, docs/webui.md) ---
    drive_gap_min: float = Field(
        default=10.0,
        ge=0,
        le=10080,
        description="A gap of more than this many minutes between videos of one camera starts a new drive.",
    )
    tile_url: str = Field(
        default="https://tile.openstreetmap.org/{z}/{x}/{y}.png",
        min_length=1,
        description="Map tiles (Leaflet URL template with {s}, {z}, {x}, {y}); its host is the only external "
        "origin the CSP allows.",
    )
    tile_attribution: str = Field(
        default='&copy; <a href="https://www.openstreetmap.org/copyright">OpenStreetMap</a> contributors',
        description="Attribution shown on the maps (HTML).",
        json_schema_extra={"shown_default": "OpenStreetMap contributors"},
    )
    web_token: SecretStr | None = Field(
        default=None,
        description="Web UI access token: required for `dashcam web --host` other than loopback; when set, every "
        "page needs a login.",
    )

    _database_url_given: bool = PrivateAttr(default=True)

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise SettingsError(validation_message(exc), exc.errors()) from None

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

    @field_validator("camera_tz")
    @classmethod
    def _known_zone(cls, v: str) -> str:
        if v not in ("", "local"):  # as dashcam.media.identity._camera_zone reads it
            try:
                ZoneInfo(v)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError("not 'local' or an IANA timezone name such as 'Europe/Amsterdam' or 'UTC'") from None
        return v

    @model_validator(mode="after")
    def _fill_defaults(self) -> Settings:
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
        assert self.database_url is not None  # filled in by _fill_defaults
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
        block = cast(ResultsDatabase, ResultsDatabase.load(block_name))  # sync context: not a coroutine
    except ValueError:  # no such block document: nothing deployed on that server
        return settings.db_url, f"{default}; no block dashcam-results-database/{block_name} on {api}"
    except Exception as exc:  # noqa: BLE001 - an HTTP/API error: one line, not a traceback
        raise DatabaseConfigError(f"cannot read block dashcam-results-database/{block_name} on {api}: {exc}") from None
    return block.url.get_secret_value(), f"Prefect block dashcam-results-database/{block_name} on {api}"
