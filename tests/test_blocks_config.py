"""The Prefect blocks of a deployment (blocks/config.py) on a real Prefect API (the session's
server, tests/conftest.py): ``PipelineConfig`` is typed from the settings schema (one field per
setting, with description and bounds in the block schema the server keeps), round-trips a
Settings through save/load with secrets kept secret, still loads a document saved as the old
untyped ``{"values": {...}}``, and a document with a value outside its bounds is one line."""

from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError

from blocks.config import PIPELINE_FIELDS, PipelineConfig, load_settings, save_blocks_from_settings
from dashcam.settings import Settings, SettingsError


@pytest.fixture
def client(prefect_session_server):
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as c:
        yield c


def _create_raw_document(client, name: str, data: dict) -> None:
    """A pipeline-config document with ``data`` as given, bypassing the block class (as an older
    version of dashcam, or a hand edit through the API, would have stored it)."""
    from prefect.client.schemas.actions import BlockDocumentCreate

    PipelineConfig.register_type_and_schema()
    btype = client.read_block_type_by_slug("dashcam-pipeline-config")
    schema = client.get_most_recent_block_schema_for_block_type(btype.id)
    client.create_block_document(
        BlockDocumentCreate(name=name, data=data, block_type_id=btype.id, block_schema_id=schema.id)
    )


def test_block_schema_is_the_settings_schema(client):
    PipelineConfig.register_type_and_schema()
    btype = client.read_block_type_by_slug("dashcam-pipeline-config")
    fields = client.get_most_recent_block_schema_for_block_type(btype.id).fields
    props = fields["properties"]
    assert set(props) == set(PIPELINE_FIELDS) and "database_url" not in props and "data_dir" not in props
    assert props["archive_crf"]["maximum"] == 51 and props["archive_crf"]["minimum"] == 0
    assert props["detect_fps"]["exclusiveMinimum"] == 0
    assert props["ocr_engine"]["enum"] == ["plate", "rapidocr", "paddleocr"]
    for name in PIPELINE_FIELDS:
        assert props[name]["description"] == Settings.model_fields[name].description
    assert fields["secret_fields"] == ["web_token"]


def test_settings_round_trip_through_the_blocks(client, tmp_path):
    s = Settings(
        data_dir=tmp_path,
        database_url="postgresql+psycopg://u:dbpw@db.example/dashcam",
        detect_fps=3.5,
        plate_formats="NL,EU",
        archive_preset="slow",
        closeup_plates=False,
        web_token="web-secret",
        raw_max_gb=2.0,
        device="0",
    )
    save_blocks_from_settings(s, raw_dir=str(tmp_path / "raw"), name="roundtrip")
    back = load_settings("roundtrip")
    for name in PIPELINE_FIELDS:
        assert getattr(back, name) == getattr(s, name), name
    assert back.db_url == s.db_url and back.work_dir == s.work_dir and back.archive_dir == s.archive_dir
    assert back.raw_dir == tmp_path / "raw"

    doc = client.read_block_document_by_name("roundtrip", "dashcam-pipeline-config", include_secrets=False)
    assert doc.data["web_token"] != "web-secret" and doc.data["detect_fps"] == 3.5  # masked on the API
    doc = client.read_block_document_by_name("roundtrip", "dashcam-pipeline-config", include_secrets=True)
    assert doc.data["web_token"] == "web-secret"
    assert PipelineConfig.load("roundtrip").web_token == SecretStr("web-secret")


def test_a_document_sets_only_its_fields(client, tmp_path, monkeypatch):
    """A document holding some fields (old untyped ``values``, or a partial one) sets those; the
    environment and the defaults fill the rest, as before the block was typed."""
    save_blocks_from_settings(Settings(data_dir=tmp_path), raw_dir="/nas/raw", name="legacy")
    client.delete_block_document(client.read_block_document_by_name("legacy", "dashcam-pipeline-config").id)
    _create_raw_document(client, "legacy", {"values": {"detect_fps": 2, "device": "0", "web_token": "**********"}})
    monkeypatch.setenv("DASHCAM_PLATE_RETRY_S", "2.5")
    s = load_settings("legacy")
    assert (s.detect_fps, s.device, s.plate_retry_s, s.web_token, s.archive_crf) == (2.0, "0", 2.5, None, 28)


def test_a_document_out_of_bounds_is_one_line(client, tmp_path):
    save_blocks_from_settings(Settings(data_dir=tmp_path), raw_dir="/nas/raw", name="bad")
    client.delete_block_document(client.read_block_document_by_name("bad", "dashcam-pipeline-config").id)
    _create_raw_document(client, "bad", {"archive_crf": 70, "detect_fps": 6})
    with pytest.raises(SettingsError) as exc:
        load_settings("bad")
    msg = str(exc.value)
    assert "\n" not in msg and "archive_crf = 70" in msg and "less than or equal to 51" in msg, msg
    with pytest.raises(ValidationError, match="archive_crf"):  # and it cannot be saved through the class
        PipelineConfig(archive_crf=70)
