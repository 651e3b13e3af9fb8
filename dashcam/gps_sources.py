"""Where a video's GPS track comes from, and the parsers for the formats dashcams write.

:func:`find_track` tries, per video, in this order and takes the first that yields points:

1. **embedded** in the video file (MP4/MOV):
   * Novatek ``freeGPS`` blocks (Viofo A119/A119S/A129/A139, and Novatek-based Vantrue, Rove,
     AZDome... variants listed in :func:`decode_freegps`), found through the ``gps `` atom in
     ``moov`` (a list of block offsets) or, without one, by scanning the file for ``freeGPS``;
   * GoPro GPMF in the ``gpmd`` timed-metadata track (``GPS5`` and HERO11+ ``GPS9``);
2. a **sidecar** beside the video with the same stem: ``.gpx``, ``.nmea``, ``.log`` (any case);
3. the configured **track directory** (``settings.gps_track_dir``): the GPX/NMEA log in it whose
   time range overlaps the recording most;
4. none: positions stay null.

An explicit ``settings.gpx`` wins over all of these (the CLI's ``--gpx``).

Libraries: GPX is read with gpxpy, NMEA 0183 with pynmea2. No maintained Python library reads
Novatek freeGPS (mapillary_tools reads it only through the ExifTool binary; telemetry-parser,
last released 2024, reads GoPro but not Novatek), and for GPMF the candidates were either
unmaintained (``gpmf`` 0.1, 2020), a GPL command line tool (gopro2gpx) or a compiled binding to
check for every platform; the GPMF KLV format is small and fully specified, so both decoders
are here, each citing its layout source.

Failure policy: an embedded box that cannot be decoded logs a WARNING and the search falls
through to the next source; nothing in here raises for bad GPS data (a damaged GPS box must
never fail the ingest of the video). Only an explicitly given track that cannot be read raises
:class:`dashcam.gps.GpsError`.
"""

from __future__ import annotations

import logging
import mmap
import os
import statistics
import struct
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import BinaryIO, Iterator

from dashcam.gps import GpsError, GpsPoint, GpsTrack, load_gpx

log = logging.getLogger(__name__)

__all__ = [
    "find_track",
    "read_embedded",
    "read_freegps",
    "decode_freegps",
    "read_gpmf_mp4",
    "parse_gpmf",
    "gpmf_points",
    "load_nmea",
    "parse_nmea",
    "load_track_file",
    "TRACK_SUFFIXES",
]

KNOTS = 1852.0 / 3600.0  # m/s per knot
TRACK_SUFFIXES = (".gpx", ".nmea", ".log")  # sidecar suffixes, tried in this order (any case)
MAX_MOOV = 256 << 20  # a larger moov is not plausible: refuse instead of reading it
MAX_FREEGPS_BLOCKS = 100_000  # ~28 h at 1 Hz


class EmbeddedGpsError(ValueError):
    """An embedded GPS structure is damaged (caught inside this module: it becomes a warning)."""


# --------------------------------------------------------------------------------------------
# MP4 / QuickTime box walking (ISO/IEC 14496-12; QuickTime File Format)


@dataclass
class Box:
    type: bytes
    start: int  # offset of the box header
    data: int  # offset of the payload
    end: int  # offset after the box


def iter_boxes(f: BinaryIO, start: int, end: int) -> Iterator[Box]:
    """Boxes between file offsets ``start`` and ``end`` (32-bit, 64-bit and to-end sizes).

    Raises:
        EmbeddedGpsError: a box size that points outside its parent.
    """
    pos = start
    while pos + 8 <= end:
        f.seek(pos)
        hdr = f.read(8)
        if len(hdr) < 8:
            return
        size, typ = struct.unpack(">I4s", hdr)
        data = pos + 8
        if size == 1:
            ext = f.read(8)
            if len(ext) < 8:
                raise EmbeddedGpsError(f"truncated 64-bit box header at {pos}")
            size = struct.unpack(">Q", ext)[0]
            data += 8
        elif size == 0:
            size = end - pos
        if size < data - pos or pos + size > end:
            raise EmbeddedGpsError(f"box {typ!r} at offset {pos} has size {size} beyond its parent (ends {end})")
        yield Box(typ, pos, data, pos + size)
        pos += size


def _children(buf: bytes, start: int = 0, end: int | None = None) -> Iterator[tuple[bytes, int, int]]:
    """(type, payload start, payload end) of the boxes inside an in-memory buffer."""
    end = len(buf) if end is None else end
    pos = start
    while pos + 8 <= end:
        size, typ = struct.unpack_from(">I4s", buf, pos)
        hdr = 8
        if size == 1:
            if pos + 16 > end:
                raise EmbeddedGpsError("truncated 64-bit box header")
            size = struct.unpack_from(">Q", buf, pos + 8)[0]
            hdr = 16
        elif size == 0:
            size = end - pos
        if size < hdr or pos + size > end:
            raise EmbeddedGpsError(f"box {typ!r} has size {size} beyond its parent")
        yield typ, pos + hdr, pos + size
        pos += size


def _find(buf: bytes, path: list[bytes], start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """All (start, end) payload spans of boxes along ``path`` (e.g. [b"trak", b"mdia"])."""
    spans = [(start, len(buf) if end is None else end)]
    for name in path:
        nxt = []
        for s, e in spans:
            nxt.extend((ds, de) for typ, ds, de in _children(buf, s, e) if typ == name)
        spans = nxt
    return spans


def _read_moov(f: BinaryIO, size: int) -> bytes | None:
    for box in iter_boxes(f, 0, size):
        if box.type == b"moov":
            n = box.end - box.data
            if n > MAX_MOOV:
                raise EmbeddedGpsError(f"moov box of {n} bytes is implausibly large")
            f.seek(box.data)
            data = f.read(n)
            if len(data) < n:
                raise EmbeddedGpsError("moov box is truncated")
            return data
    return None


@dataclass
class _Sample:
    offset: int
    size: int
    time_s: float  # decode time in the track's timescale, seconds


def _track_samples(moov: bytes, trak: tuple[int, int]) -> tuple[bytes, list[_Sample]]:
    """The sample-description format (e.g. b"gpmd") and the samples of one ``trak``."""
    s, e = trak
    (mdia,) = _find(moov, [b"mdia"], s, e)[:1] or [None]
    if mdia is None:
        return b"", []
    mdhd = _find(moov, [b"mdhd"], *mdia)
    timescale = 1
    if mdhd:
        ms, _ = mdhd[0]
        version = moov[ms]
        timescale = struct.unpack_from(">I", moov, ms + (20 if version == 1 else 12))[0] or 1
    stbl = _find(moov, [b"minf", b"stbl"], *mdia)
    if not stbl:
        return b"", []
    ss, se = stbl[0]
    boxes = {typ: (ds, de) for typ, ds, de in _children(moov, ss, se)}
    fmt = b""
    if b"stsd" in boxes:
        ds, de = boxes[b"stsd"]
        if de - ds >= 16:
            fmt = moov[ds + 12 : ds + 16]
    if b"stsz" not in boxes or not (b"stco" in boxes or b"co64" in boxes) or b"stsc" not in boxes:
        return fmt, []
    ds, de = boxes[b"stsz"]
    fixed, n = struct.unpack_from(">II", moov, ds + 4)
    if fixed:
        sizes = [fixed] * n
    else:
        if ds + 12 + 4 * n > de:
            raise EmbeddedGpsError("stsz table is truncated")
        sizes = list(struct.unpack_from(f">{n}I", moov, ds + 12))
    if b"co64" in boxes:
        ds, de = boxes[b"co64"]
        nc = struct.unpack_from(">I", moov, ds + 4)[0]
        if ds + 8 + 8 * nc > de:
            raise EmbeddedGpsError("co64 table is truncated")
        chunks = list(struct.unpack_from(f">{nc}Q", moov, ds + 8))
    else:
        ds, de = boxes[b"stco"]
        nc = struct.unpack_from(">I", moov, ds + 4)[0]
        if ds + 8 + 4 * nc > de:
            raise EmbeddedGpsError("stco table is truncated")
        chunks = list(struct.unpack_from(f">{nc}I", moov, ds + 8))
    ds, de = boxes[b"stsc"]
    ns = struct.unpack_from(">I", moov, ds + 4)[0]
    if ds + 8 + 12 * ns > de:
        raise EmbeddedGpsError("stsc table is truncated")
    stsc = [struct.unpack_from(">III", moov, ds + 8 + 12 * i) for i in range(ns)]
    times: list[float] = []
    if b"stts" in boxes:
        ds, de = boxes[b"stts"]
        nt = struct.unpack_from(">I", moov, ds + 4)[0]
        t = 0
        for i in range(min(nt, (de - ds - 8) // 8)):
            count, delta = struct.unpack_from(">II", moov, ds + 8 + 8 * i)
            for _ in range(min(count, n - len(times))):
                times.append(t / timescale)
                t += delta
    samples: list[_Sample] = []
    k = 0
    for ci, off in enumerate(chunks, start=1):
        per_chunk = 0
        for first, count, _desc in stsc:
            if first <= ci:
                per_chunk = count
        for _ in range(per_chunk):
            if k >= n:
                break
            samples.append(_Sample(off, sizes[k], times[k] if k < len(times) else float(k)))
            off += sizes[k]
            k += 1
    return fmt, samples


# --------------------------------------------------------------------------------------------
# Novatek freeGPS


def _ddmm(v: float) -> float:
    """DDDMM.MMMM -> decimal degrees (ExifTool ConvertLatLon)."""
    deg = int(v / 100)
    return deg + (v - deg * 100) / 60.0


def _valid_date(y: int, mo: int, d: int, h: int, mi: int, s: float) -> datetime | None:
    try:
        if not (2000 <= y <= 2200 and 0 <= h < 24 and 0 <= mi < 60 and 0 <= s < 61):
            return None
        return datetime(y, mo, d, h, mi, tzinfo=timezone.utc) + timedelta(seconds=s)
    except ValueError:
        return None


def _point(t: datetime | None, lat: float, lon: float, spd: float | None, trk: float | None,
           fix: str | None = None, alt: float | None = None) -> GpsPoint | None:
    if t is None or not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0) or (lat == 0.0 and lon == 0.0):
        return None
    if spd is not None and not (0.0 <= spd < 1000.0):
        spd = None
    if trk is not None and not (-360.0 <= trk <= 720.0):
        trk = None
    return GpsPoint(t, lat, lon, spd, trk % 360.0 if trk is not None else None, fix, alt)


def _rmc_from_text(text: str) -> GpsPoint | None:
    import re

    m = re.search(r"\$[A-Z]{2}RMC,[^*\r\n]*", text)
    if not m:
        return None
    try:
        return _nmea_rmc_point(m.group(0))
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
    if n >= 0x3C and b[0x25:0x28] == b"\0\0\0" and b[0x28:0x29] == b"A" and b[0x29:0x2A] in (b"N", b"S") and b[0x2A:0x2B] in (b"E", b"W"):
        h, mi, s, y, mo, d = u32(0x10, 6)
        lat, lon = _ddmm(f32(0x2C)), _ddmm(f32(0x30))
        lat = -lat if b[0x29:0x2A] == b"S" else lat
        lon = -lon if b[0x2A:0x2B] == b"W" else lon
        return _point(_valid_date(y + 2000, mo, d, h, mi, s), lat, lon, f32(0x34) * KNOTS, f32(0x38))
    # Akaso
    if n >= 0x64 and b[0x3C:0x40] == b"A\0\0\0" and b[0x44:0x45] in (b"N", b"S") and b[0x45:0x48] == b"\0\0\0" \
            and b[0x4C:0x4D] in (b"E", b"W") and b[0x4D:0x50] == b"\0\0\0":
        h, mi, s = u32(0x30, 3)
        y, mo, d = u32(0x58, 3)
        lat, lon = _ddmm(f32(0x40)), _ddmm(f32(0x48))
        lat = -lat if b[0x44:0x45] == b"S" else lat
        lon = -lon if b[0x4C:0x4D] == b"W" else lon
        return _point(_valid_date(y if y > 2000 else y + 2000, mo, d, h, mi, s), lat, lon, f32(0x50) / 3.6,
                      f32(0x54) + 180.0)
    # ZXSBNXYS: RMC shifted by +16
    if n >= 140 and b[0x3C:0x42] == b"4W`b]S":
        text = bytes((c - 16) if c >= 16 else c for c in b[0x3C : 0x3C + 80]).decode("ascii", "replace")
        return _rmc_from_text(text)
    # Vantrue S1
    if n >= 0x70 and b[0x40:0x41] == b"A" and b[0x41:0x42] in (b"N", b"S") and b[0x42:0x43] in (b"E", b"W") and b[0x43] == 0:
        y, mo, d, h, mi, s = u32(0x44, 6)
        lon, lat = _ddmm(f32(0x5C)), _ddmm(f32(0x60))
        lat = -lat if b[0x41:0x42] == b"S" else lat
        lon = -lon if b[0x42:0x43] == b"W" else lon
        return _point(_valid_date(y if y >= 2000 else y + 2000, mo, d, h, mi, s), lat, lon, f32(0x64) * KNOTS,
                      f32(0x68), alt=f32(0x6C))
    # Type 2 (doubles)
    if n >= 0x7C and b[0x3C:0x3E] == b"A\0" and b[0x48:0x49] in (b"N", b"S") and b[0x49] == 0 \
            and b[0x58:0x59] in (b"E", b"W") and b[0x59] == 0:
        h, mi, s = u32(0x30, 3)
        y, mo, d = u32(0x70, 3)
        lat, lon = _ddmm(f64(0x40)), _ddmm(f64(0x50))
        lat = -lat if b[0x48:0x49] == b"S" else lat
        lon = -lon if b[0x58:0x59] == b"W" else lon
        return _point(_valid_date(y + 2000 if y < 2000 else y, mo, d, h, mi, s), lat, lon, f64(0x60) * KNOTS, f64(0x68))
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
        return _point(t, lat, lon, spd, trk)
    return None


def _freegps_offsets(f: BinaryIO, size: int, moov: bytes | None) -> tuple[list[tuple[int, int]], str]:
    """(offset, size) of every freeGPS block and how they were found."""
    if moov is not None:
        for typ, ds, de in _children(moov):
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
            moov = _read_moov(f, size)
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
        log.warning("%s: %d of %d freeGPS blocks (%s) are damaged or point outside the file; skipped",
                    path.name, bad, len(blocks), how)
    if bad == len(blocks):
        raise EmbeddedGpsError(f"none of the {len(blocks)} freeGPS blocks listed in the file is readable")
    return points, vtimes


# --------------------------------------------------------------------------------------------
# GoPro GPMF


_GPMF_TYPES = {
    ord("b"): "b", ord("B"): "B", ord("c"): "c", ord("d"): "d", ord("f"): "f", ord("F"): "4s",
    ord("j"): "q", ord("J"): "Q", ord("l"): "i", ord("L"): "I", ord("s"): "h", ord("S"): "H",
    ord("q"): "I", ord("Q"): "Q", ord("U"): "16s", ord("G"): "16s",
}


@dataclass
class Klv:
    key: str
    type: int  # ASCII type char code, 0 = nested
    size: int  # struct size in bytes
    repeat: int
    raw: bytes
    children: list["Klv"] | None = None


def parse_gpmf(data: bytes, start: int = 0, end: int | None = None) -> list[Klv]:
    """Parse a GPMF KLV buffer into a tree.

    Layout (GoPro's GPMF specification, github.com/gopro/gpmf-parser README "KLV Design"): each
    item is a 4-character key, a 1-byte type (0 = nested items), a 1-byte structure size and a
    2-byte big-endian repeat count, then ``size * repeat`` bytes of big-endian data padded to a
    multiple of 4.

    Raises:
        EmbeddedGpsError: an item that runs past the end of the buffer.
    """
    end = len(data) if end is None else end
    out: list[Klv] = []
    pos = start
    while pos + 8 <= end:
        key = data[pos : pos + 4]
        typ, ssize, rep = struct.unpack_from(">BBH", data, pos + 4)
        n = ssize * rep
        body = pos + 8
        if key == b"\0\0\0\0":  # padding at the end of a payload
            break
        if body + n > end:
            raise EmbeddedGpsError(f"GPMF item {key!r} of {n} bytes runs past the end of its container")
        item = Klv(key.decode("latin-1"), typ, ssize, rep, data[body : body + n])
        if typ == 0:
            item.children = parse_gpmf(data, body, body + n)
        out.append(item)
        pos = body + ((n + 3) & ~3)
    return out


def _values(item: Klv, type_str: str | None = None) -> list[tuple]:
    """Samples of a GPMF item: a list of tuples (one per repeat), big-endian, unscaled."""
    if item.type == ord("?"):
        if not type_str:
            return []
        fmt = ">" + "".join(_GPMF_TYPES.get(ord(c), "") for c in type_str)
    elif item.type == ord("c"):
        return [(item.raw.rstrip(b"\0").decode("latin-1"),)]
    elif item.type == ord("U"):
        return [(item.raw[:16].decode("ascii", "replace"),)]
    else:
        code = _GPMF_TYPES.get(item.type)
        if code is None:
            return []
        elem = struct.calcsize(">" + code)
        if elem == 0 or item.size % elem:
            return []
        fmt = ">" + code * (item.size // elem)
    st = struct.Struct(fmt)
    if st.size != item.size:
        return []
    return [st.unpack_from(item.raw, i * item.size) for i in range(item.repeat)]


def _gpsu(text: str) -> datetime | None:
    """GPMF ``GPSU`` "yymmddhhmmss.sss" (UTC) -> datetime."""
    try:
        return datetime.strptime(text.strip("\0 ")[:16], "%y%m%d%H%M%S.%f").replace(tzinfo=timezone.utc)
    except ValueError:
        return None


_GPSF = {0: "none", 2: "2d", 3: "3d"}


def _stream_items(devc: Klv, key: str) -> tuple[list[Klv], str | None, list[float]] | None:
    """(items, TYPE, SCAL) of the stream in ``devc`` that holds ``key``."""
    for strm in devc.children or []:
        items = strm.children or []
        if any(it.key == key for it in items):
            type_str = next((it.raw.rstrip(b"\0").decode("latin-1") for it in items if it.key == "TYPE"), None)
            scal = next(([float(x) or 1.0 for row in _values(it) for x in row] for it in items if it.key == "SCAL"), [1.0])
            return items, type_str, scal or [1.0]
    return None


def _scaled(row: tuple, scal: list[float]) -> tuple[float, ...]:
    return tuple(x / scal[i if len(scal) > 1 else 0] for i, x in enumerate(row))


def _karma_glpi(devc: Klv, vt: float, anchors: list) -> list[GpsPoint]:
    """GoPro Karma drone ``GLPI`` ("Position") samples timed through the same device's ``SYST``.

    GLPI (TYPE ``JlllllllS`` in practice): system time (ms), lat, lon (deg * 1e7), alt (m), relative
    alt, vx, vy, vz (m/s), heading; SYST: (system time, UTC unix time) pairs, so a sample's UTC is
    ``unix + (t - system)``. This is the stream ExifTool reports as GPS for Karma footage.
    """
    g = _stream_items(devc, "GLPI")
    syst = _stream_items(devc, "SYST")
    if g is None or syst is None:
        return []
    items, type_str, scal = g
    s_items, s_type, s_scal = syst
    srows = [_scaled(r, s_scal) for it in s_items if it.key == "SYST" for r in _values(it, s_type or "JJ")]
    if not srows or len(srows[0]) < 2:
        return []
    sys_t, unix_t = srows[0][0], srows[0][1]
    out = []
    for it in items:
        if it.key != "GLPI":
            continue
        for k, r in enumerate(_values(it, type_str or "JlllllllS")):
            r = _scaled(r, scal)
            if len(r) < 8:
                continue
            t = datetime.fromtimestamp(unix_t, timezone.utc) + timedelta(seconds=r[0] - sys_t)
            p = _point(t, r[1], r[2], (r[5] ** 2 + r[6] ** 2) ** 0.5, None, None, r[3])
            if p is not None:
                out.append(p)
                if k == 0:
                    anchors.append((vt, t))
    return out


def gpmf_points(payloads: list[tuple[float, bytes]]) -> tuple[list[GpsPoint], list[tuple[float, datetime]]]:
    """GPS points of a sequence of GPMF payloads ``(video time s, bytes)``.

    ``GPS5`` (HERO5-HERO10, Karma): lat, lon (deg), alt (m), 2D speed, 3D speed (m/s) as int32
    divided by ``SCAL``; the payload's ``GPSU`` is the UTC time of its first sample and the other
    samples follow at the stream's rate, measured as the median of samples / GPSU interval
    (18 Hz on HERO5-era cameras, 10 Hz later; the same rule as gopro2gpx). ``GPSF`` gives the fix
    (0 none, 2 2D, 3 3D); no-fix points are kept with ``fix="none"``, as ExifTool and gopro2gpx do.
    ``GPS9`` (HERO11+): per sample lat, lon, alt, 2D, 3D speed, days since 2000-01-01, seconds
    since midnight, DOP, fix, so every sample carries its own UTC time. A stream with GPS9 is read
    from GPS9 only (newer cameras write both).

    Karma drone footage has neither: its fused ``GLPI`` position is read (see :func:`_karma_glpi`).

    Returns the points and (video time, GPS time) pairs of each payload's first sample, for the
    clock offset. Payloads that cannot be parsed are skipped with a warning.
    """
    gps5: list[tuple[float, datetime | None, str | None, list[tuple[float, ...]]]] = []
    gps9: list[GpsPoint] = []
    glpi: list[GpsPoint] = []
    anchors: list[tuple[float, datetime]] = []
    bad = 0
    for vt, raw in payloads:
        try:
            tree = parse_gpmf(raw)
        except (EmbeddedGpsError, struct.error):
            bad += 1
            continue
        for devc in tree:
            glpi.extend(_karma_glpi(devc, vt, anchors))
            for strm in devc.children or []:
                items = strm.children or []
                keys = {it.key for it in items}
                if "GPS5" not in keys and "GPS9" not in keys:
                    continue
                scal: list[float] = [1.0]
                type_str = None
                gpsu = None
                fix = None
                for it in items:
                    if it.key == "SCAL":
                        scal = [float(x) or 1.0 for row in _values(it) for x in row] or [1.0]
                    elif it.key == "TYPE":
                        type_str = it.raw.rstrip(b"\0").decode("latin-1")
                    elif it.key == "GPSU":
                        gpsu = _gpsu(_values(it)[0][0]) if _values(it) else None
                    elif it.key == "GPSF":
                        v = _values(it)
                        fix = _GPSF.get(int(v[0][0]), None) if v else None
                    elif it.key == "GPS5":
                        rows = [tuple(x / scal[i if len(scal) > 1 else 0] for i, x in enumerate(r)) for r in _values(it)]
                        gps5.append((vt, gpsu, fix, rows))
                        if gpsu is not None:
                            anchors.append((vt, gpsu))
                    elif it.key == "GPS9":
                        for k, r in enumerate(_values(it, type_str or "lllllllSS")):
                            r = tuple(x / scal[i if len(scal) > 1 else 0] for i, x in enumerate(r))
                            if len(r) < 9 or (r[0] == 0 and r[1] == 0):
                                continue
                            t = datetime(2000, 1, 1, tzinfo=timezone.utc) + timedelta(days=r[5], seconds=r[6])
                            p = _point(t, r[0], r[1], r[3], None, _GPSF.get(int(round(r[8]))), r[2])
                            if p is not None:
                                gps9.append(p)
                                if k == 0:
                                    anchors.append((vt, t))
    if bad:
        log.warning("%d of %d GPMF payloads are damaged; skipped", bad, len(payloads))
    if gps9:
        return gps9, anchors
    if glpi and not gps5:
        return glpi, anchors
    # sample rate from consecutive GPSU times
    rates = []
    for (_, t0, _, rows0), (_, t1, _, _) in zip(gps5, gps5[1:]):
        if t0 is not None and t1 is not None and t1 > t0:
            rates.append(len(rows0) / (t1 - t0).total_seconds())
    rate = max(1, round(statistics.median(rates))) if rates else 18
    points: list[GpsPoint] = []
    for _, gpsu, fix, rows in gps5:
        if gpsu is None:
            continue
        for k, r in enumerate(rows):
            if len(r) < 4 or (r[0] == 0 and r[1] == 0 and r[2] == 0):
                continue
            p = _point(gpsu + timedelta(seconds=k / rate), r[0], r[1], r[3], None, fix, r[2])
            if p is not None:
                points.append(p)
    return points, anchors


def read_gpmf_mp4(path: Path, moov: bytes | None = None) -> tuple[list[GpsPoint], list[tuple[float, datetime]]] | None:
    """GPS of the ``gpmd`` track of a GoPro MP4, or None when the file has no such track."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        if moov is None:
            moov = _read_moov(f, size)
        if moov is None:
            return None
        payloads: list[tuple[float, bytes]] = []
        found = False
        for trak in _find(moov, [b"trak"]):
            fmt, samples = _track_samples(moov, trak)
            if fmt != b"gpmd":
                continue
            found = True
            for s in samples:
                if s.offset + s.size > size:
                    raise EmbeddedGpsError(f"gpmd sample at {s.offset} ({s.size} bytes) lies outside the file")
                f.seek(s.offset)
                payloads.append((s.time_s, f.read(s.size)))
        if not found:
            return None
    return gpmf_points(payloads)


# --------------------------------------------------------------------------------------------
# NMEA 0183 (pynmea2)


_GGA_FIX = {0: None, 1: None, 2: "dgps", 3: "pps", 4: "3d", 5: "3d", 6: None}


def _nmea_rmc_point(sentence: str) -> GpsPoint | None:
    import pynmea2

    msg = pynmea2.parse(sentence.strip(), check=False)
    if getattr(msg, "status", "V") != "A" or msg.datestamp is None or msg.timestamp is None:
        return None
    t = datetime.combine(msg.datestamp, msg.timestamp.replace(tzinfo=None), tzinfo=timezone.utc)
    spd = float(msg.spd_over_grnd) * KNOTS if msg.spd_over_grnd not in (None, "") else None
    trk = float(msg.true_course) if msg.true_course not in (None, "") else None
    return _point(t, msg.latitude, msg.longitude, spd, trk)


def parse_nmea(lines: list[str], date_hint: date | None = None) -> list[GpsPoint]:
    """Fixes of an NMEA 0183 log, one point per time stamp.

    RMC sentences give date, time, position, speed (knots) and course; status ``V`` is dropped.
    A GGA at the same time adds altitude and, with GSA, the fix quality (GSA mode 2/3 -> "2d"/"3d",
    GGA quality 2 -> "dgps"; quality 0 drops the point). Logs without RMC (GGA only) take the date
    from ZDA sentences or ``date_hint``. Lines that do not parse (bad checksum, truncated) are
    skipped; the count is logged at DEBUG.
    """
    import pynmea2

    by_time: dict[tuple, dict] = {}
    order: list[tuple] = []
    day: date | None = None
    gsa_mode: str | None = None
    bad = 0
    for line in lines:
        i = line.find("$")
        if i < 0:
            continue
        try:
            msg = pynmea2.parse(line[i:].strip(), check=True)
        except (pynmea2.ParseError, ValueError, AttributeError, TypeError):
            bad += 1
            continue
        typ = getattr(msg, "sentence_type", "")
        try:
            if typ == "ZDA" and msg.datestamp is not None:
                day = msg.datestamp
            elif typ == "GSA":
                gsa_mode = {"2": "2d", "3": "3d"}.get(str(msg.mode_fix_type))
            elif typ == "RMC":
                if msg.status != "A" or msg.timestamp is None or msg.datestamp is None:
                    continue
                day = msg.datestamp
                key = (msg.datestamp, msg.timestamp)
                rec = by_time.setdefault(key, {})
                if not rec:
                    order.append(key)
                rec.update(lat=msg.latitude, lon=msg.longitude,
                           spd=float(msg.spd_over_grnd) * KNOTS if msg.spd_over_grnd not in (None, "") else None,
                           trk=float(msg.true_course) if msg.true_course not in (None, "") else None)
                rec.setdefault("fix", gsa_mode)
            elif typ == "GGA":
                if msg.timestamp is None or not msg.gps_qual:
                    continue
                d = day or date_hint
                if d is None:
                    continue
                key = (d, msg.timestamp)
                rec = by_time.setdefault(key, {})
                if not rec:
                    order.append(key)
                rec.setdefault("lat", msg.latitude)
                rec.setdefault("lon", msg.longitude)
                rec["alt"] = float(msg.altitude) if msg.altitude not in (None, "") else None
                q = int(msg.gps_qual)
                rec["fix"] = _GGA_FIX.get(q) or gsa_mode
        except (ValueError, TypeError, AttributeError):
            bad += 1
    if bad:
        log.debug("NMEA: %d lines skipped (unparseable)", bad)
    points = []
    for d, tm in order:
        rec = by_time[(d, tm)]
        if "lat" not in rec:
            continue
        t = datetime.combine(d, tm.replace(tzinfo=None), tzinfo=timezone.utc)
        p = _point(t, rec["lat"], rec["lon"], rec.get("spd"), rec.get("trk"), rec.get("fix"), rec.get("alt"))
        if p is not None:
            points.append(p)
    return points


def load_nmea(path: str | os.PathLike, max_gap_s: float = 10.0, date_hint: date | None = None) -> GpsTrack:
    """Load an NMEA 0183 log (``.nmea``, ``.log``, ``.txt``) as a track.

    Raises:
        GpsError: unreadable file or no valid fix in it.
    """
    p = Path(path)
    try:
        lines = p.read_text(encoding="ascii", errors="replace").splitlines()
    except OSError as e:
        raise GpsError(f"Cannot read NMEA file {p}: {e.strerror or e}.") from e
    points = parse_nmea(lines, date_hint)
    if not points:
        raise GpsError(f"NMEA file {p} has no valid dated fix (RMC with status A, or GGA with a date).")
    return GpsTrack(points, max_gap_s=max_gap_s, source=str(p))


def load_track_file(path: str | os.PathLike, max_gap_s: float = 10.0, date_hint: date | None = None) -> GpsTrack:
    """A GPX (by content: starts with ``<``) or NMEA track file.

    Raises:
        GpsError: the file is missing, unreadable or has no timed point.
    """
    p = Path(path)
    try:
        with open(p, "rb") as fh:
            head = fh.read(512).lstrip(b"\xef\xbb\xbf \t\r\n")
    except FileNotFoundError:
        raise GpsError(f"GPS track file not found: {p}. Check the path.") from None
    except OSError as e:
        raise GpsError(f"Cannot read GPS track file {p}: {e.strerror or e}.") from e
    if head.startswith(b"<"):
        return load_gpx(p, max_gap_s=max_gap_s)
    return load_nmea(p, max_gap_s=max_gap_s, date_hint=date_hint)


# --------------------------------------------------------------------------------------------
# Source order


def _median_offset(pairs: list[tuple[float, datetime]], start: datetime) -> float:
    """Median of GPS time - (video start + video time): the video clock's error, seconds."""
    if not pairs:
        return 0.0
    return float(statistics.median((g - start).total_seconds() - vt for vt, g in pairs))


def read_embedded(path: Path, recording_start: datetime | None, max_gap_s: float) -> GpsTrack | None:
    """The GPS track embedded in ``path`` (freeGPS or GPMF), or None.

    Never raises for damaged data: a damaged box logs a WARNING and gives None.
    """
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(12)
            if len(head) < 8 or head[4:8] not in (b"ftyp", b"moov", b"free", b"mdat", b"wide", b"skip", b"pnot"):
                return None  # not an MP4/MOV
            moov = _read_moov(f, size)
        gpmf = read_gpmf_mp4(path, moov)
        if gpmf is not None and gpmf[0]:
            points, anchors = gpmf
            off = _median_offset(anchors, recording_start) if recording_start else 0.0
            return GpsTrack(points, max_gap_s=max_gap_s, source="embedded:gpmf", clock_offset_s=off)
        fg = read_freegps(path, moov)
        if fg is not None and fg[0]:
            points, vtimes = fg
            off = _median_offset([(vt, p.time) for vt, p in zip(vtimes, points)], recording_start) if recording_start else 0.0
            return GpsTrack(points, max_gap_s=max_gap_s, source="embedded:freegps", clock_offset_s=off)
    except (EmbeddedGpsError, struct.error, OSError, ValueError, OverflowError) as exc:
        log.warning("%s: embedded GPS cannot be read (%s); trying sidecar/track files instead", path.name, exc)
    return None


def find_sidecar(video_path: Path) -> Path | None:
    """``<stem>.gpx``, ``<stem>.nmea`` or ``<stem>.log`` (any case) beside the video."""
    try:
        siblings = {p.name.lower(): p for p in video_path.parent.iterdir() if p.is_file()}
    except OSError:
        return None
    for suffix in TRACK_SUFFIXES:
        cand = siblings.get((video_path.stem + suffix).lower())
        if cand is not None:
            return cand
    return None


# (path, size, mtime_ns) -> (start, end) of tracks in the track directory, per process
_range_cache: dict[tuple[str, int, int], tuple[datetime, datetime] | None] = {}


def _track_range(p: Path, max_gap_s: float) -> tuple[datetime, datetime] | None:
    st = p.stat()
    key = (str(p), st.st_size, st.st_mtime_ns)
    if key not in _range_cache:
        try:
            t = load_track_file(p, max_gap_s)
            _range_cache[key] = (t.start, t.end)
        except GpsError as exc:
            log.debug("track dir: %s skipped: %s", p, exc)
            _range_cache[key] = None
    return _range_cache[key]


def find_in_track_dir(track_dir: Path, start: datetime, end: datetime, max_gap_s: float) -> GpsTrack | None:
    """The track of ``track_dir`` (GPX/NMEA files, recursively) overlapping [start, end] most."""
    best: tuple[float, Path] | None = None
    try:
        files = sorted(p for p in Path(track_dir).rglob("*") if p.is_file()
                       and p.suffix.lower() in (".gpx", ".nmea", ".log", ".txt"))
    except OSError as exc:
        log.warning("GPS track directory %s cannot be listed: %s", track_dir, exc)
        return None
    for p in files:
        rng = _track_range(p, max_gap_s)
        if rng is None:
            continue
        overlap = (min(end, rng[1]) - max(start, rng[0])).total_seconds()
        if overlap >= 0 and (best is None or overlap > best[0]):
            best = (overlap, p)
    if best is None:
        return None
    track = load_track_file(best[1], max_gap_s)
    track.source = f"trackdir:{best[1]}"
    return track


def find_track(video_path: Path, info, settings, problems: list[str] | None = None) -> tuple[GpsTrack, str] | None:
    """The best GPS track for a video and its source label, or None.

    Order: ``settings.gpx`` when set (explicit; it must be readable) -> embedded in the file
    (``embedded:gpmf`` / ``embedded:freegps``) -> same-stem sidecar ``.gpx/.nmea/.log``
    (``sidecar:<path>``) -> ``settings.gps_track_dir`` (``trackdir:<path>``) -> None.

    Tracks from files are in GPS (UTC) time and are matched to the video through
    ``info.recording_start`` (file-name time interpreted in ``settings.camera_tz``); an embedded
    track also knows the video clock's offset from GPS time (``track.clock_offset_s``).

    ``problems``: when given, a one-line message is appended for each track file that exists
    but could not be used (a corrupt same-stem sidecar, an unreadable track dir), so callers can
    report it instead of a bare "no GPS"; they are logged as warnings either way.

    Raises:
        GpsError: only for an explicit ``settings.gpx`` that is missing or unreadable.
    """
    video_path = Path(video_path)
    gap = settings.gps_max_gap_s
    start = getattr(info, "recording_start", None)
    explicit = getattr(settings, "gpx", None)
    if explicit:
        track = load_track_file(explicit, gap, date_hint=start.date() if start else None)
        return track, f"explicit:{explicit}"
    track = read_embedded(video_path, start, gap)
    if track is not None and len(track):
        return track, track.source
    side = find_sidecar(video_path)
    if side is not None:
        try:
            track = load_track_file(side, gap, date_hint=start.date() if start else None)
            return track, f"sidecar:{side}"
        except GpsError as exc:
            log.warning("%s: sidecar %s cannot be used: %s", video_path.name, side.name, exc)
            if problems is not None:
                problems.append(f"GPS sidecar {side} is unreadable: {_one_line(exc)}")
    track_dir = getattr(settings, "gps_track_dir", None)
    if track_dir and start is not None:
        end = start + timedelta(seconds=float(getattr(info, "duration_s", 0.0) or 0.0))
        try:
            track = find_in_track_dir(Path(track_dir), start, end, gap)
        except GpsError as exc:
            log.warning("GPS track directory %s: %s", track_dir, exc)
            if problems is not None:
                problems.append(f"GPS track directory {track_dir}: {_one_line(exc)}")
            track = None
        if track is not None:
            return track, track.source
    return None


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
