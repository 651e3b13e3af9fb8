"""Real data for the web UI tests: real clips through the real ``ingest`` flow.

:func:`build` lays out a small dashcam card and ingests it (real models, real ffmpeg, the
real Prefect flow) into a SQLite database, then persists the same manifests into a second
database (PostgreSQL) through the real ``finalize-video`` flow instead of analysing twice.

The card (``camera_tz=UTC``; the GPS track is the real car drive ``around-visnjan-with-car.gpx``
in ``gps_track_dir``, which covers 2020-12-18 06:17 UTC):

* ``cam/2020_1218_061709_0001F.MP4`` - Video10_2 (labelled XS-NB-23), front
* ``cam/2020_1218_061709_0001R.MP4`` - Video14_2 (labelled 24-LB-HT), its rear partner
* ``cam/2020_1218_061712_0002F.MP4`` - Video13_2 (labelled 23-GSX-6), the next front segment
* ``cam/2020_1218_061715_0003F.MP4`` - Video143_2 (labelled 99-SZG-5), the one after
* ``Video20_2.avi`` (labelled ZD-PB-67), no GPS, a drive of its own (another folder = camera)
* ``broken/notes.mp4`` - not a video: one failed ``ingest-video`` run in Prefect
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from helpers import model_dir, shared_dir

PLATES = "data/plates-video/TrainingSet/Categorie I"
TRACK = "data/gps/tracks/gpxpy/around-visnjan-with-car.gpx"
FRONT1, REAR1, FRONT2 = "2020_1218_061709_0001F.MP4", "2020_1218_061709_0001R.MP4", "2020_1218_061712_0002F.MP4"
FRONT3 = "2020_1218_061715_0003F.MP4"
CARD = [
    (FRONT1, ["Video10_2.avi"]),
    (REAR1, ["Video14_2.avi"]),
    (FRONT2, ["Video13_2.avi"]),
    (FRONT3, ["Video143_2.avi"]),
]
PLAIN = "Video20_2.avi"


@dataclass
class WebData:
    root: Path
    settings: object  # dashcam.settings.Settings of the SQLite run
    videos: list[Path]  # ingested video paths, in CARD order then PLAIN
    manifests: list[str]  # manifest paths (one per ingested video)
    broken: Path


def _remux(srcs: list[Path], dst: Path) -> None:
    """Join ``srcs`` (same codec and size) into one MP4 without re-encoding (ffmpeg concat demuxer)."""
    lst = dst.with_suffix(".txt")
    lst.write_text("".join(f"file '{s}'\n" for s in srcs))
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-y",
            "-f",
            "concat",
            "-safe",
            "0",
            "-i",
            str(lst),
            "-c",
            "copy",
            "-f",
            "mp4",
            str(dst),
        ],
        check=True,
    )
    lst.unlink()


def settings_for(root: Path, db_url: str):
    from dashcam.settings import Settings

    return Settings(
        data_dir=root / "data",
        database_url=db_url,
        model_dir=model_dir(),
        camera_tz="UTC",
        gps_track_dir=root / "tracks",
    )


def build(root: Path, sqlite_url: str) -> WebData:
    """Lay out the card under ``root`` and ingest it into ``sqlite_url`` (needs a Prefect API)."""
    from flows.ingest import ingest

    cam = root / "cam"
    cam.mkdir(parents=True, exist_ok=True)
    (root / "tracks").mkdir(exist_ok=True)
    shutil.copy(shared_dir() / TRACK, root / "tracks" / Path(TRACK).name)
    videos = []
    for name, srcs in CARD:
        _remux([shared_dir() / PLATES / s for s in srcs], cam / name)
        videos.append(cam / name)
    plain = root / "plain" / PLAIN
    plain.parent.mkdir(exist_ok=True)
    shutil.copy(shared_dir() / PLATES / PLAIN, plain)
    videos.append(plain)
    broken = root / "broken" / "notes.mp4"
    broken.parent.mkdir(exist_ok=True)
    broken.write_text("this is not a video\n" * 100)

    settings = settings_for(root, sqlite_url)
    ingest([str(v) for v in videos], settings=settings)
    with contextlib.suppress(Exception):  # expected to fail: the failed run is what the dashboard shows
        ingest([str(broken)], settings=settings)
    manifests = sorted(str(p) for p in Path(settings.work_dir).rglob("manifest.json"))
    return WebData(root, settings, videos, manifests, broken)


def persist_into(data: WebData, db_url: str) -> None:
    """Store the already analysed and archived videos into ``db_url`` via the real finalize flow."""
    from dashcam.archive import archive_video_path
    from dashcam.records import Manifest
    from flows.ingest import finalize_video

    settings = data.settings.model_copy(update={"database_url": type(data.settings.database_url)(db_url)})
    for m in data.manifests:
        info = Manifest.model_validate_json(Path(m).read_text()).info
        archive = archive_video_path(settings.archive_dir, info.video_id, settings.archive_height)
        finalize_video(m, str(archive), settings=settings)
