"""Dashcam-format bench inputs: 60 s, 30 fps clips at 1080p H.264, 1440p HEVC, 2160p HEVC and a
front/rear pair, made from a real road clip and cached (issue 17).

Usage (normally called by ``bench/throughput.py --dashcam-formats``; standalone to make the clips
ahead of a bench run)::

    .venv/bin/python bench/dashcam_formats.py [--source VIDEO] [--seconds 60] [--cache DIR]

How the clips are made: the source (default the Udacity highway clip ``solidWhiteRight.mp4``,
960x540, 8.8 s) is looped with ffmpeg's concat demuxer, cut to a 10 s unit, resampled to 30 fps,
**upscaled** (bicubic) to the target size and re-encoded the way dashcams encode: no B-frames, a
closed GOP of 30 frames (1 s, no scene-cut keyframes), constant bitrate ~ what cameras write
(1080p H.264 12 Mbit/s, 1440p HEVC 16 Mbit/s, 2160p HEVC 30 Mbit/s, rear 1080p H.264 8 Mbit/s),
``yuv420p``, MP4; the encoded unit is then repeated (concat demuxer, stream copy: closed GOPs) to
``--seconds``, since encoding all 60 s of 2160p HEVC takes ~30 min on 2 shared cores. x264 ``-preset veryfast`` and x265 ``-preset ultrafast`` keep generation to
minutes on 2 cores; x265's ultrafast preset switches SAO off, which a camera's hardware encoder
keeps on, so ``sao=1`` is set again (the decoder then does the in-loop work it does on camera files).
The pixels are a 960x540 source blown up: there is no more detail than in the 540p clip, so plate
reads are not representative; decode cost and the vehicle pass are.

The front/rear pair is Viofo-named (``2024_0315_143022_0001F.MP4`` / ``..._0001R.MP4``): the front
is the 1440p HEVC clip (hard-linked), the rear a 1080p H.264 clip of the source mirrored
left-right (a distinct picture, as a rear camera sees the road behind).

Cache: ``bench/out/dashcam_formats/<key>/`` (``bench/out`` is git-ignored) where ``key`` hashes the
source's name, size and mtime plus every encode parameter and this recipe's version; a clip is
encoded to a ``.part.mp4`` name, probed, and only then renamed, so an interrupted run never leaves a
clip that looks finished.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RECIPE_VERSION = 2
#: What every output line about these clips must say (they are not native-resolution footage).
UPSCALED_NOTE = "upscaled from a 960x540 source (solidWhiteRight looped): decode cost is real, detail is 540p"


@dataclass(frozen=True)
class ClipSpec:
    """One bench clip: file name, size (pixels), codec (``h264``/``hevc``), bitrate (bit/s), mirror."""

    name: str
    width: int
    height: int
    codec: str
    bitrate: int
    hflip: bool = False


SPECS: tuple[ClipSpec, ...] = (
    ClipSpec("dashcam_1080p_h264.mp4", 1920, 1080, "h264", 12_000_000),
    ClipSpec("dashcam_1440p_hevc.mp4", 2560, 1440, "hevc", 16_000_000),
    ClipSpec("dashcam_2160p_hevc.mp4", 3840, 2160, "hevc", 30_000_000),
    ClipSpec("2024_0315_143022_0001R.MP4", 1920, 1080, "h264", 8_000_000, hflip=True),
)
#: The pair: front (a link to the 1440p HEVC clip) and rear.
PAIR_FRONT, PAIR_FRONT_OF = "2024_0315_143022_0001F.MP4", "dashcam_1440p_hevc.mp4"
PAIR_REAR = "2024_0315_143022_0001R.MP4"
FPS = 30
GOP = 30
UNIT_S = 10.0  # encoded once, then repeated (stream copy) to the clip length


def shared_dir() -> Path:
    return Path(os.environ.get("DASHCAM_SHARED_DIR") or REPO.parent / "shared")


def default_source() -> Path:
    return shared_dir() / "data" / "road-video" / "udacity_solidWhiteRight.mp4"


def _duration(path: Path) -> float:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(path)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return float(out.strip())


def encode_args(spec: ClipSpec) -> list[str]:
    """ffmpeg output arguments for ``spec``: dashcam-like rate control, GOP and no B-frames."""
    rate = [
        "-b:v",
        str(spec.bitrate),
        "-maxrate",
        str(spec.bitrate),
        "-bufsize",
        str(spec.bitrate),
    ]
    if spec.codec == "h264":
        codec = ["-c:v", "libx264", "-preset", "veryfast", "-profile:v", "high", "-bf", "0"]
        codec += ["-g", str(GOP), "-keyint_min", str(GOP), "-sc_threshold", "0"]
    else:
        params = f"bframes=0:keyint={GOP}:min-keyint={GOP}:scenecut=0:sao=1:log-level=error"
        codec = ["-c:v", "libx265", "-preset", "ultrafast", "-x265-params", params, "-tag:v", "hvc1"]
    return codec + rate + ["-pix_fmt", "yuv420p", "-an", "-movflags", "+faststart"]


def cache_key(source: Path, seconds: float) -> str:
    """Hash of the source identity and every parameter of the recipe (12 hex characters)."""
    st = source.stat()
    blob = json.dumps(
        {
            "v": RECIPE_VERSION,
            "src": [source.name, st.st_size, st.st_mtime_ns],
            "seconds": seconds,
            "fps": FPS,
            "unit_s": UNIT_S,
            "specs": [asdict(s) for s in SPECS],
            "args": [encode_args(s) for s in SPECS],
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def _ff(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


def _concat_list(path: Path, item: Path, n: int) -> Path:
    path.write_text("".join(f"file '{item.resolve()}'\n" for _ in range(n)))
    return path


def make_clip(source: Path, spec: ClipSpec, seconds: float, out_dir: Path, log=print) -> Path:
    """Encode ``spec`` from ``source`` looped to ``seconds`` into ``out_dir`` (skipped when cached).

    To keep generation to minutes on 2 cores, one ``UNIT_S`` (10 s, a whole number of GOPs) unit of
    the looped source is encoded and then repeated with the concat demuxer (stream copy): every GOP
    is closed, so the result decodes like one continuous camera file (content repeats every 10 s).

    Raises:
        subprocess.CalledProcessError: ffmpeg failed; RuntimeError: the result does not probe to
            the expected size / length.
    """
    dst = out_dir / spec.name
    if dst.is_file():
        return dst
    out_dir.mkdir(parents=True, exist_ok=True)
    unit_s = min(seconds, UNIT_S)
    n_src = int(unit_s // _duration(source)) + 1
    src_list = _concat_list(out_dir / f".src_{spec.name}.txt", source, n_src)
    vf = f"fps={FPS},scale={spec.width}:{spec.height}:flags=bicubic" + (",hflip" if spec.hflip else "")
    unit = out_dir / f".unit_{spec.name}.mp4"
    part = out_dir / f".{spec.name}.part.mp4"
    t0 = time.perf_counter()
    _ff("-f", "concat", "-safe", "0", "-i", str(src_list), "-t", str(unit_s), "-vf", vf, *encode_args(spec),
        "-f", "mp4", str(unit))  # fmt: skip
    unit_list = _concat_list(out_dir / f".unit_{spec.name}.txt", unit, int(-(-seconds // unit_s)))
    _ff("-f", "concat", "-safe", "0", "-i", str(unit_list), "-t", str(seconds), "-c", "copy",
        "-movflags", "+faststart", "-f", "mp4", str(part))  # fmt: skip
    for tmp in (src_list, unit_list, unit):
        tmp.unlink()
    got = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-count_packets", "-show_entries",
         "stream=width,height,codec_name,nb_read_packets", "-of", "json", str(part)],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    s = json.loads(got)["streams"][0]
    want = round(seconds * FPS)
    if (s["width"], s["height"], s["codec_name"]) != (spec.width, spec.height, spec.codec) or abs(
        int(s["nb_read_packets"]) - want
    ) > 1:
        raise RuntimeError(f"{part}: encoded clip does not match {spec} ({s}, want {want} frames)")
    part.rename(dst)
    mbps = dst.stat().st_size * 8 / seconds / 1e6
    log(
        f"  made {spec.name}: {spec.width}x{spec.height} {spec.codec} {mbps:.1f} Mbit/s in {time.perf_counter() - t0:.0f} s"
    )
    return dst


def make_all(source: Path | None = None, seconds: float = 60.0, cache: Path | None = None, log=print) -> dict:
    """Make (or find cached) every clip; returns ``{"singles": [3 paths], "pair": (front, rear), "dir": Path}``."""
    source = source or default_source()
    root = cache or REPO / "bench" / "out" / "dashcam_formats"
    out_dir = root / cache_key(source, seconds)
    log(f"dashcam-format clips in {out_dir} ({UPSCALED_NOTE})")
    paths = {s.name: make_clip(source, s, seconds, out_dir, log) for s in SPECS}
    front = out_dir / PAIR_FRONT
    if not front.exists():
        try:
            os.link(paths[PAIR_FRONT_OF], front)
        except OSError:
            shutil.copyfile(paths[PAIR_FRONT_OF], front)
    singles = [paths[s.name] for s in SPECS if s.name != PAIR_REAR]
    return {"singles": singles, "pair": (front, paths[PAIR_REAR]), "dir": out_dir}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--source", type=Path, default=None)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--cache", type=Path, default=None)
    args = ap.parse_args(argv)
    made = make_all(args.source, args.seconds, args.cache)
    print(made["dir"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
