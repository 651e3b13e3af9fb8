"""The settings schema (dashcam/settings.py) and what is generated from it (issue 13, point 4):

* every field has a description and bounds / a Literal / a stated rule;
* the environment (``DASHCAM_*``) still feeds it, the defaults are the ones before the schema;
* invalid values give one line naming setting, env var, value and rule (Python, env, CLI);
* CLI option help drift: options for a setting take their help from the schema;
* doc drift: the committed table of docs/configuration.md is the generated one.

The Prefect block typed from the schema: tests/test_blocks_config.py.
"""

from __future__ import annotations

import json
import re
import shutil
import types
import typing
from pathlib import Path

import pytest
import typer
from helpers import REPO_ROOT
from pydantic import SecretStr
from typer.testing import CliRunner

from dashcam.cli import app
from dashcam.settings import Settings, SettingsError, env_var
from dashcam.settings_cli import (
    DOC_BEGIN,
    allowed,
    cli_flags,
    description,
    doc_table,
    setting_help,
    settings_markdown,
    shown_default,
)

DOC = REPO_ROOT / "docs" / "configuration.md"

# The defaults, pinned (as before the schema had descriptions and bounds, commit 3f76c83; a new
# setting adds its default here): a changed default shows in review.
DEFAULTS = {
    "vehicle_model": "yolov8n-coco-int8-320.onnx",
    "plate_model": "platedet-yolov8s-seg-640.onnx",
    "vehicle_fp32": True,
    "ocr_engine": "plate",
    "device": "auto",
    "detect_fps": 6.0,
    "vehicle_conf": 0.25,
    "plate_conf": 0.35,
    "plate_crop_imgsz": 320,
    "plate_min_vehicle_px": 96.0,
    "plate_retry_s": 1.0,
    "plate_settle_reads": 4,
    "plate_settle_fast_reads": 3,
    "plate_hint_imgsz": 192,
    "closeup_plates": True,
    "tracker": "bytetrack.yaml",
    "plate_ocr_model": "cct_xs_v1_global.onnx",
    "plate_ocr_config": None,
    "plate_formats": ("auto",),
    "min_plate_confidence": 0.6,
    "min_reads": 2,
    "camera_tz": "local",
    "gpx": None,
    "gps_max_gap_s": 10.0,
    "gps_track_dir": None,
    "archive_height": 720,
    "archive_crf": 28,
    "archive_preset": "veryfast",
    "archive_blur": "none",
    "raw_dir": None,
    "raw_keep_days": 7.0,
    "raw_max_gb": None,
    "archive_keep_days": None,
    "watch_min_score": 0.75,
    "media_base_url": None,
    "queue_size": 8,
    "max_parallel_videos": None,  # from the machine when unset: dashcam.settings.default_parallel_videos
    "hwaccel": "auto",
    "decode_threads": 0,
    "decode_skip_loop_filter": False,
    "drive_gap_min": 10.0,
    "tile_url": "https://tile.openstreetmap.org/{z}/{x}/{y}.png",
    "tile_attribution": '&copy; <a href="https://www.openstreetmap.org/copyright">OpenStreetMap</a> contributors',
    "web_token": None,
    "model_dir": None,
}
# strings whose every value is allowed by the schema's type alone, and why
FREE_STRINGS = {
    "device": "auto, cpu, cuda[:N] (dashcam.models.resolve_device), else ultralytics parses it (mps, 0,1, ...)",
    "plate_ocr_config": "a path",
    "camera_tz": "checked by a validator against the zone database",
    "media_base_url": "any URL prefix",
    "tile_attribution": "HTML",
}
# options named like a setting that are not that setting
NOT_SETTINGS = {("gps", "--gpx")}  # dashcam gps --gpx: the GPX file to write


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    """No DASHCAM_* from the caller's environment; XDG_DATA_HOME in tmp_path."""
    import os

    for k in list(os.environ):
        if k.startswith("DASHCAM_"):
            monkeypatch.delenv(k)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    return monkeypatch


def _base(annotation):
    """``X`` for ``X | None``, else the annotation."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and len(args) == 1:
        return args[0]
    return annotation


def test_every_setting_is_described_and_bounded():
    for name, f in Settings.model_fields.items():
        assert f.description and f.description.endswith("."), f"{name}: a description sentence"
        t = _base(f.annotation)
        if t in (int, float):
            assert any(type(m).__name__ in ("Ge", "Gt") for m in f.metadata), f"{name}: no lower bound"
        elif t is str and name not in FREE_STRINGS:
            assert allowed(name), f"{name}: a free string; give min_length/pattern/Literal or list it in FREE_STRINGS"
        elif typing.get_origin(t) is typing.Literal:
            assert allowed(name).startswith("one of: ")
    assert set(DEFAULTS) | {"data_dir", "database_url", "archive_dir", "work_dir"} == set(Settings.model_fields), (
        "a new setting: add its default to DEFAULTS here"
    )


def test_defaults_and_environment_unchanged(clean_env, tmp_path):
    s = Settings()
    assert {n: getattr(s, n) for n in DEFAULTS} == DEFAULTS
    assert s.data_dir == tmp_path / "xdg" / "dashcam" and s.archive_dir == s.data_dir / "archive"
    assert s.db_url == f"sqlite:///{s.data_dir / 'dashcam.db'}" and not s.database_url_given
    env = {
        "DETECT_FPS": "3",
        "ARCHIVE_PRESET": "veryslow",
        "CLOSEUP_PLATES": "false",
        "PLATE_FORMATS": "NL, EU",
        "RAW_MAX_GB": "1.5",
        "ARCHIVE_HEIGHT": "540",
        "OCR_ENGINE": "rapidocr",
        "WEB_TOKEN": "tok",
        "DATABASE_URL": "postgresql+psycopg://u:pw@h/db",
        "CAMERA_TZ": "Europe/Amsterdam",
    }
    for k, v in env.items():
        clean_env.setenv(env_var(k.lower()), v)
    s = Settings()
    assert (
        s.detect_fps,
        s.archive_preset,
        s.closeup_plates,
        s.plate_formats,
        s.raw_max_gb,
        s.archive_height,
        s.ocr_engine,
    ) == (3.0, "veryslow", False, ("NL", "EU"), 1.5, 540, "rapidocr")
    assert s.web_token == SecretStr("tok") and s.db_url == env["DATABASE_URL"] and s.database_url_given
    assert Settings(detect_fps=4).detect_fps == 4.0  # an argument beats the environment
    assert Settings(archive_height=240).archive_height == 240  # any height the transcode supports (test_storage)


@pytest.mark.parametrize(
    ("kw", "expected"),
    [
        (
            {"archive_crf": 60},
            "invalid setting archive_crf = 60 (DASHCAM_ARCHIVE_CRF): Input should be less than or equal to 51",
        ),
        (
            {"ocr_engine": "tesseract"},
            "ocr_engine = 'tesseract' (DASHCAM_OCR_ENGINE): Input should be 'plate', 'rapidocr' or 'paddleocr'",
        ),
        (
            {"plate_crop_imgsz": 300},
            "plate_crop_imgsz = 300 (DASHCAM_PLATE_CROP_IMGSZ): Input should be a multiple of 32",
        ),
        ({"camera_tz": "Europe/Atlantis"}, "camera_tz = 'Europe/Atlantis' (DASHCAM_CAMERA_TZ): not 'local' or an IANA"),
        ({"plate_formats": "NL,XX"}, "unknown plate format region(s) ['XX']"),
        ({"tracker": "bytetrack"}, "tracker = 'bytetrack' (DASHCAM_TRACKER): String should match pattern"),
        ({"web_token": 12345}, "web_token = *** (DASHCAM_WEB_TOKEN): Input should be a valid string"),
        (
            {"detect_fps": 0, "min_reads": 0},
            "detect_fps = 0 (DASHCAM_DETECT_FPS): Input should be greater than 0; min_reads = 0 (DASHCAM_MIN_READS)",
        ),
    ],
)
def test_invalid_values_give_one_line(clean_env, kw, expected):
    with pytest.raises(SettingsError) as exc:
        Settings(**kw)
    msg = str(exc.value)
    assert "\n" not in msg and msg.startswith("invalid setting ") and expected in msg, msg
    assert "12345" not in msg  # secrets are not shown
    assert isinstance(exc.value, ValueError) and exc.value.errors


def test_invalid_environment_one_line(clean_env):
    clean_env.setenv("DASHCAM_ARCHIVE_HEIGHT", "100")
    with pytest.raises(
        SettingsError,
        match=r"^invalid setting archive_height = '100' \(DASHCAM_ARCHIVE_HEIGHT\): "
        r"Input should be greater than or equal to 144$",
    ):
        Settings()


def test_cli_invalid_setting_is_one_line_exit_2(clean_env, tmp_path):
    clean_env.setenv("DASHCAM_ARCHIVE_CRF", "99")  # a command without that option: from the environment
    r = CliRunner().invoke(app, ["config"])
    assert r.exit_code == 2
    lines = r.output.strip().splitlines()
    assert lines == [
        "error: invalid setting archive_crf = '99' (DASHCAM_ARCHIVE_CRF): Input should be less than or equal to 51"
    ], r.output
    clip = tmp_path / "x.mp4"
    clip.write_bytes(b"")
    r = CliRunner().invoke(app, ["ingest", str(clip), "--detect-fps", "-1", "--data-dir", str(tmp_path)])
    assert r.exit_code == 2 and "detect_fps = -1.0 (DASHCAM_DETECT_FPS): Input should be greater than 0" in r.output
    assert len(r.output.strip().splitlines()) == 1, r.output


def _options(cmd: typing.Any, path: str = ""):
    """(command path, click option) of every option in the CLI."""
    for p in cmd.params:
        if getattr(p, "opts", None) and any(o.startswith("--") for o in p.opts):
            yield path, p
    for name, sub in getattr(cmd, "commands", {}).items():
        yield from _options(sub, f"{path} {name}".strip())


def test_cli_help_is_the_schema():
    """Help drift: an option that reads a setting's env var has the schema's help (setting_help,
    maybe with a note for its command) and shows the schema default; an option named like a
    setting reads its env var (declared with setting_option). Hand-written help fails here."""
    checked = set()
    for path, p in _options(typer.main.get_command(app)):
        env = p.envvar if isinstance(p.envvar, str) else None
        name = env.removeprefix("DASHCAM_").lower() if env and env.startswith("DASHCAM_") else None
        if name in Settings.model_fields:
            where = f"dashcam {path} {p.opts[0]}"
            base = description(name)
            rule = f" Allowed: {allowed(name)}." if allowed(name) else ""
            assert p.help.startswith(base) and p.help.endswith(rule), f"{where}: help is not setting_help({name!r})"
            note = p.help[len(base) : len(p.help) - len(rule)].strip()
            assert p.help == setting_help(name, note), f"{where}: help is not setting_help({name!r})"
            want = shown_default(name)
            assert p.show_default == (want if want is not None else False), (
                f"{where}: default shown is not the schema's"
            )
            checked.add(name)
            continue
        for opt in p.opts:
            field = opt.removeprefix("--").replace("-", "_")
            if field in Settings.model_fields and (path, opt) not in NOT_SETTINGS:
                pytest.fail(
                    f"dashcam {path} {opt}: declare it with setting_option({field!r}) (or list it in NOT_SETTINGS)"
                )
    assert {"data_dir", "database_url", "detect_fps", "archive_height", "raw_keep_days", "gps_track_dir"} <= checked


def test_cli_help_renders_the_schema_text():
    r = CliRunner().invoke(app, ["retention", "--help"], env={"COLUMNS": "100"})
    assert r.exit_code == 0, r.output
    text = " ".join(re.sub(r"[│╭╮╰╯─]", " ", r.output).split())
    assert description("raw_keep_days") + " Allowed: 0 <= x <= 3650." in text
    assert "[env var: DASHCAM_RAW_KEEP_DAYS]" in text and "[default: (7)]" in text
    assert cli_flags(app)["raw_dir"] == ["--raw-dir"] and cli_flags(app)["gps_track_dir"] == ["--track-dir"]


def test_committed_doc_table_is_generated_from_the_schema():
    committed = doc_table(DOC.read_text(encoding="utf-8"))
    assert committed == settings_markdown(app), (
        "docs/configuration.md drifted from dashcam/settings.py: run "
        "`dashcam config --write-doc docs/configuration.md` and commit the result"
    )
    assert len(committed.splitlines()) == 2 + len(Settings.model_fields)


def test_config_write_doc_and_json(clean_env, tmp_path):
    doc = tmp_path / "configuration.md"
    shutil.copy(DOC, doc)
    text = doc.read_text(encoding="utf-8")
    stale = text.replace("| detect_fps |", "| detect_fps_old |")
    doc.write_text(stale, encoding="utf-8")
    r = CliRunner().invoke(app, ["config", "--write-doc", str(doc)])
    assert r.exit_code == 0 and "rewritten" in r.output, r.output
    assert doc.read_text(encoding="utf-8") == text  # the text around the table is kept
    r = CliRunner().invoke(app, ["config", "--write-doc", str(doc)])
    assert "already up to date" in r.output
    bare = tmp_path / "bare.md"
    bare.write_text("# no table\n", encoding="utf-8")
    r = CliRunner().invoke(app, ["config", "--write-doc", str(bare)])
    assert r.exit_code == 1 and "no generated settings table" in r.output and len(r.output.strip().splitlines()) == 1
    assert DOC_BEGIN not in bare.read_text(encoding="utf-8")

    clean_env.setenv("DASHCAM_DETECT_FPS", "2.5")
    clean_env.setenv("DASHCAM_DATABASE_URL", "postgresql+psycopg://u:secretpw@h/db")
    clean_env.setenv("DASHCAM_WEB_TOKEN", "tok-secret")
    r = CliRunner().invoke(app, ["config", "--json"])
    assert r.exit_code == 0, r.output
    values = json.loads(r.stdout)
    assert (
        values["detect_fps"] == 2.5
        and values["plate_formats"] == ["auto"]
        and set(values) == set(Settings.model_fields)
    )
    assert (
        "secretpw" not in r.stdout and "tok-secret" not in r.stdout and values["database_url"].startswith("postgresql")
    )
    r = CliRunner().invoke(app, ["config"], env={"COLUMNS": "200"})
    assert r.exit_code == 0 and "DASHCAM_DETECT_FPS" in r.stdout and "tok-secret" not in r.stdout


def test_markdown_cells_stay_in_their_column():
    for line in settings_markdown(app).splitlines()[2:]:
        assert len(re.findall(r"(?<!\\)\|", line)) == 7, line
    assert Path(DOC).exists()


def test_invalid_environment_elsewhere_in_a_command_is_one_line(clean_env, tmp_path):
    """Settings built outside the option parsing (``dashcam deploy`` builds them in
    deployments/register.py) still end the real ``dashcam`` process with one line, exit 2, before
    anything is registered."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith(("DASHCAM_", "PREFECT_"))}
    env.update(
        PYTHONPATH=str(REPO_ROOT),
        DASHCAM_PLATE_CONF="2",
        PREFECT_HOME=str(tmp_path),
        PREFECT_API_URL="http://127.0.0.1:9/api",
    )  # never reached
    r = subprocess.run(
        [sys.executable, "-m", "dashcam.cli", "deploy", "--raw-dir", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2, r.stderr[-2000:]
    assert r.stderr.strip().splitlines() == [
        "error: invalid setting plate_conf = '2' (DASHCAM_PLATE_CONF): Input should be less than or equal to 1"
    ]
