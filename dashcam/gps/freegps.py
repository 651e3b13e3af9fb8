"""Novatek ``freeGPS`` blocks embedded in dashcam MP4s (Viofo A119/A119S/A129/A139 and the
Novatek-based Vantrue, Rove, AZDome... variants listed in :func:`decode_freegps`).

The blocks are found through the ``gps `` atom in ``moov`` (a list of (offset, size) pairs,
big-endian uint32) or, without one, by scanning the file for the ``freeGPS `` signature. Layout
source: ExifTool ``lib/Image/ExifTool/QuickTimeStream.pl`` (``ProcessFreeGPS``,
``ProcessFreeGPS2``, exiftool @ 38bdbace; originally Sergei Franco's nvtk_mp42gpx). No
maintained Python library reads freeGPS (mapillary_tools only through the ExifTool binary), so
the decoder is here.
"""

from __future__ import annotations

import logging
import mmap
import re
import struct
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import BinaryIO

from dashcam.gps.nmea import rmc_point
from dashcam.gps.track import KNOTS, EmbeddedGpsError, GpsPoint, checked_point
from dashcam.media.isobmff import children, read_moov

log = logging.getLogger(__name__)

__all__ = ["decode_freegps", "read_freegps", "MAX_FREEGPS_BLOCKS"]

MAX_FREEGPS_BLOCKS = 100_000  # ~28 h at 1 Hz


def _ddmm(v: float) -> float:
    """DDDMM.MMMM -> decimal degrees (ExifTool ConvertLatLon)."""
    deg = int(v / 100)
    return deg + (v - deg * 100) / 60.0


def _valid_date(y: int, mo: int, d: int, h: int, mi: int, s: float) -> datetime | None:
    """The UTC instant of a block's date fields, or None when out of range."""
    try:
        if not (2000 <= y <= 2200 and 0 <= h < 24 and 0 <= mi < 60 and 0 <= s < 61):
            return None
        return datetime(y, mo, d, h, mi, tzinfo=UTC) + timedelta(seconds=s)
    except ValueError:
        return None


def _rmc_from_text(text: str) -> GpsPoint | None:
    m = re.search(r"\$[A-Z]{2}RMC,[^*\r\n]*", text)
    if not m:
        return None
    try:
        return rmc_point(m.group(0))
    except Exception:  # noqa: BLE001 - a damaged sentence is no point
        return None


def decode_freegps(block: bytes) -> GpsPoint | None:
    """Decode one Novatek ``freeGPS`` block (starting at its 4-byte size) into a point.

    Returns None for a block without a valid fix (status ``V``), an unknown layout, or values out
    of range. Layouts, tried in this order, are those of ExifTool's
    ``lib/Image/ExifTool/QuickTimeStream.pl`` (``ProcessFreeGPS`` and ``ProcessFreeGPS2``, exiftool
    @ 38bdbace; originally Sergei Franco's nvtk_mp42gpx), all integers little-endian int32,
    lat/lon as DDDMM.MMMM unless said otherwise, speed in knots:

    * **NMEA text** (NextBase 512GW): a ``$GPRMC`` sentence anywhere in the block.
    * **Viofo A119 v3**: ``A[NS][EW]`` at 0x28 (zeros at 0x25-0x27); hour, minute, second, year-2000,
      month, day at 0x10..0x24; float32 lat 0x2c, lon 0x30, speed 0x34, track 0x38.
    * **Akaso**: ``A\\0\\0\\0`` at 0x3c, ``[NS]\\0\\0\\0`` at 0x44, ``[EW]\\0\\0\\0`` at 0x4c; h/m/s at
      0x30..0x38, y/m/d at 0x58..0x60; float32 lat 0x40, lon 0x48, speed (km/h) 0x50, track 0x54+180.
    * **ZXSBNXYS** (some Viofo/Novatek clones): ``4W`b]S<`` at 0x3c = ``$GPRMC`` with every byte +16.
    * **Vantrue S1**: ``A[NS][EW]\\0`` at 0x40; y/m/d/h/m/s at 0x44..0x58; float32 lon 0x5c,
      lat 0x60, speed 0x64, track 0x68, alt 0x6c.
    * **Type 2** (``ProcessFreeGPS2``): ``A\\0`` at 0x3c, ``[NS]\\0`` at 0x48, ``[EW]\\0`` at 0x58;
      h/m/s 0x30..0x38, y/m/d 0x70..0x78; float64 lat 0x40, lon 0x50, speed 0x60, track 0x68.
    * **Type 3b** (IQS, ``ProcessFreeGPS2``): ``IQS`` at 0x10 and ``A[NS][EW]`` at 0x48; int32
      lat/lon *1e7 (decimal degrees) 0x4c/0x50, speed m/s*100 0x54.
    * **Novatek type 3 / Viofo A119S, A129, A139** (the default): h/m/s/y/m/d int32 at 0x30..0x44,
      status/latref/lonref bytes at 0x48..0x4a, float32 lat 0x4c, lon 0x50, speed 0x54, track
      0x58; float64 lat/lon at 0x70/0x80 (Transcend) used when within 0.001 of the floats.

    Encrypted variants that ExifTool cannot decode either (Kingslim D4, Akaso V1/Redtiger,
    EACHPAI) and the AZDome GS63H XOR-text variant are not read (None).
    """
    b = block
    n = len(b)
    if n < 0x3C or b[4:12] != b"freeGPS ":
        return None
    u32 = lambda o, k=1: struct.unpack_from(f"<{k}I", b, o)  # noqa: E731
    f32 = lambda o: struct.unpack_from("<f", b, o)[0]  # noqa: E731
    f64 = lambda o: struct.unpack_from("<d", b, o)[0]  # noqa: E731

    # NMEA text (NextBase 512GW): date string at 0x34 then RMC somewhere
    if n >= 0x48 and b[0x34:0x40].isdigit() and b"RMC," in b:
        return _rmc_from_text(b.decode("ascii", "replace"))
    # Viofo A119 v3
    if (
        n >= 0x3C
        and b[0x25:0x28] == b"\0\0\0"
        and b[0x28:0x29] == b"A"
        and b[0x29:0x2A] in (b"N", b"S")
        and b[0x2A:0x2B] in (b"E", b"W")
    ):
        h, mi, s, y, mo, d = u32(0x10, 6)
        lat, lon = _ddmm(f32(0x2C)), _ddmm(f32(0x30))
        lat = -lat if b[0x29:0x2A] == b"S" else lat
        lon = -lon if b[0x2A:0x2B] == b"W" else lon
        return checked_point(_valid_date(y + 2000, mo, d, h, mi, s), lat, lon, f32(0x34) * KNOTS, f32(0x38))
    # Akaso
    if (
        n >= 0x64
        and b[0x3C:0x40] == b"A\0\0\0"
        and b[0x44:0x45] in (b"N", b"S")
        and b[0x45:0x48] == b"\0\0\0"
        and b[0x4C:0x4D] in (b"E", b"W")
        and b[0x4D:0x50] == b"\0\0\0"
    ):
        h, mi, s = u32(0x30, 3)
        y, mo, d = u32(0x58, 3)
        lat, lon = _ddmm(f32(0x40)), _ddmm(f32(0x48))
        lat = -lat if b[0x44:0x45] == b"S" else lat
        lon = -lon if b[0x4C:0x4D] == b"W" else lon
        return checked_point(
            _valid_date(y if y > 2000 else y + 2000, mo, d, h, mi, s), lat, lon, f32(0x50) / 3.6, f32(0x54) + 180.0
        )
    # ZXSBNXYS: RMC shifted by +16
    if n >= 140 and b[0x3C:0x42] == b"4W`b]S":
        text = bytes((c - 16) if c >= 16 else c for c in b[0x3C : 0x3C + 80]).decode("ascii", "replace")
        return _rmc_from_text(text)
    # Vantrue S1
    if (
        n >= 0x70
        and b[0x40:0x41] == b"A"
        and b[0x41:0x42] in (b"N", b"S")
        and b[0x42:0x43] in (b"E", b"W")
        and b[0x43] == 0
    ):
        y, mo, d, h, mi, s = u32(0x44, 6)
        lon, lat = _ddmm(f32(0x5C)), _ddmm(f32(0x60))
        lat = -lat if b[0x41:0x42] == b"S" else lat
        lon = -lon if b[0x42:0x43] == b"W" else lon
        return checked_point(
            _valid_date(y if y >= 2000 else y + 2000, mo, d, h, mi, s),
            lat,
            lon,
            f32(0x64) * KNOTS,
            f32(0x68),
            alt=f32(0x6C),
        )
    # Type 2 (doubles)
    if (
        n >= 0x7C
        and b[0x3C:0x3E] == b"A\0"
        and b[0x48:0x49] in (b"N", b"S")
        and b[0x49] == 0
        and b[0x58:0x59] in (b"E", b"W")
        and b[0x59] == 0
    ):
        h, mi, s = u32(0x30, 3)
        y, mo, d = u32(0x70, 3)
        lat, lon = _ddmm(f64(0x40)), _ddmm(f64(0x50))
        lat = -lat if b[0x48:0x49] == b"S" else lat
        lon = -lon if b[0x58:0x59] == b"W" else lon
        return checked_point(
            _valid_date(y + 2000 if y < 2000 else y, mo, d, h, mi, s), lat, lon, f64(0x60) * KNOTS, f64(0x68)
        )
    # Novatek type 3 (A119S/A129/A139) and 3b (IQS)
    if n >= 0x5C and b[0x49:0x4A] in (b"N", b"S") and b[0x4A:0x4B] in (b"E", b"W"):
        if b[0x48:0x49] != b"A":
            return None  # 'V': no valid fix
        h, mi, s, y, mo, d = u32(0x30, 6)
        t = _valid_date(y + 2000 if y < 2000 else y, mo, d, h, mi, s)
        if b[0x10:0x13] == b"IQS":
            lat = abs(struct.unpack_from("<i", b, 0x4C)[0]) / 1e7
            lon = abs(struct.unpack_from("<i", b, 0x50)[0]) / 1e7
            spd, trk = struct.unpack_from("<i", b, 0x54)[0] / 100.0, None
        else:
            lat, lon = _ddmm(f32(0x4C)), _ddmm(f32(0x50))
            spd, trk = f32(0x54) * KNOTS, f32(0x58)
            if n >= 0x88:  # Transcend Driver Pro 230 also stores doubles
                lat2, lon2 = _ddmm(abs(f64(0x70))), _ddmm(abs(f64(0x80)))
                if abs(lat2 - lat) < 0.001 and abs(lon2 - lon) < 0.001:
                    lat, lon = lat2, lon2
        lat = -lat if b[0x49:0x4A] == b"S" else lat
        lon = -lon if b[0x4A:0x4B] == b"W" else lon
        return checked_point(t, lat, lon, spd, trk)
    return None


def _freegps_offsets(f: BinaryIO, size: int, moov: bytes | None) -> tuple[list[tuple[int, int]], str]:
    """(offset, size) of every freeGPS block and how they were found."""
    if moov is not None:
        for typ, ds, de in children(moov):
            if typ == b"gps ":
                if de - ds < 8:
                    raise EmbeddedGpsError("'gps ' atom is shorter than its header")
                count = struct.unpack_from(">I", moov, ds + 4)[0]
                count = min(count, (de - ds - 8) // 8, MAX_FREEGPS_BLOCKS)
                return [struct.unpack_from(">II", moov, ds + 8 + 8 * i) for i in range(count)], "gps atom"
    # no index: scan the file for the block signature (memory-mapped, no full read)
    out: list[tuple[int, int]] = []
    if size < 12:
        return out, "scan"
    with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        pos = mm.find(b"freeGPS ")
        while pos >= 4 and len(out) < MAX_FREEGPS_BLOCKS:
            bsize = struct.unpack(">I", mm[pos - 4 : pos])[0]
            out.append((pos - 4, max(0x100, min(bsize, 0x10000))))
            pos = mm.find(b"freeGPS ", pos + 8)
    return out, "scan"


def read_freegps(path: Path, moov: bytes | None = None) -> tuple[list[GpsPoint], list[float]] | None:
    """All valid fixes of the freeGPS blocks of ``path`` with each block's index-based video time.

    Novatek cameras write one block per second of video, so block ``i`` of the ``gps `` atom
    is taken to be at video time ``i`` seconds (used to estimate the clock offset). Returns None
    when the file has no freeGPS block; raises :class:`EmbeddedGpsError` when its index is damaged.
    """
    size = path.stat().st_size
    with open(path, "rb") as f:
        if moov is None:
            moov = read_moov(f, size)
        blocks, how = _freegps_offsets(f, size, moov)
        if not blocks:
            return None
        points: list[GpsPoint] = []
        vtimes: list[float] = []
        bad = 0
        for i, (off, n) in enumerate(blocks):
            if off + 12 > size or n < 12:
                bad += 1
                continue
            f.seek(off)
            data = f.read(min(n, 0x10000))
            if data[4:12] != b"freeGPS ":
                bad += 1
                continue
            try:
                p = decode_freegps(data)
            except struct.error:
                p = None
                bad += 1
            if p is not None:
                points.append(p)
                vtimes.append(float(i))
    if bad:
        log.warning(
            "%s: %d of %d freeGPS blocks (%s) are damaged or point outside the file; skipped",
            path.name,
            bad,
            len(blocks),
            how,
        )
    if bad == len(blocks):
        raise EmbeddedGpsError(f"none of the {len(blocks)} freeGPS blocks listed in the file is readable")
    return points, vtimes
