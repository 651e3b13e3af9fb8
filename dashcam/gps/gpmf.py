"""GoPro GPMF telemetry (the ``gpmd`` timed-metadata track of GoPro MP4s): GPS5, GPS9 and the
Karma drone's GLPI.

Layout source: GoPro's GPMF specification, https://github.com/gopro/gpmf-parser (README "KLV
Design" and "GPMF Timing"; the ``GPS5``/``GPS9``/``GPSU``/``GPSF`` keys in its "HERO" device
tables); the GPS5 sample-rate rule is gopro2gpx's. The candidates to use instead were
unmaintained (``gpmf`` 0.1, 2020), a GPL command line tool (gopro2gpx) or a compiled binding to
check for every platform; the KLV format is small and fully specified, so it is read here.
The samples are located with the media layer's box walker (:mod:`dashcam.media.isobmff`).
"""

from __future__ import annotations

import logging
import statistics
import struct
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from dashcam.gps.track import EmbeddedGpsError, GpsPoint, checked_point
from dashcam.media.isobmff import find, read_moov, track_samples

log = logging.getLogger(__name__)

__all__ = ["Klv", "parse_gpmf", "gpmf_points", "read_gpmf_mp4"]


_GPMF_TYPES = {
    ord("b"): "b",
    ord("B"): "B",
    ord("c"): "c",
    ord("d"): "d",
    ord("f"): "f",
    ord("F"): "4s",
    ord("j"): "q",
    ord("J"): "Q",
    ord("l"): "i",
    ord("L"): "I",
    ord("s"): "h",
    ord("S"): "H",
    ord("q"): "I",
    ord("Q"): "Q",
    ord("U"): "16s",
    ord("G"): "16s",
}


@dataclass
class Klv:
    """One GPMF item: 4-character ``key``, ``type`` (ASCII code, 0 = nested), struct ``size``
    (bytes), ``repeat`` count, the ``raw`` big-endian payload and the nested items (type 0)."""

    key: str
    type: int  # ASCII type char code, 0 = nested
    size: int  # struct size in bytes
    repeat: int
    raw: bytes
    children: list[Klv] | None = None


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
        return datetime.strptime(text.strip("\0 ")[:16], "%y%m%d%H%M%S.%f").replace(tzinfo=UTC)
    except ValueError:
        return None


_GPSF = {0: "none", 2: "2d", 3: "3d"}


def _stream_items(devc: Klv, key: str) -> tuple[list[Klv], str | None, list[float]] | None:
    """(items, TYPE, SCAL) of the stream in ``devc`` that holds ``key``."""
    for strm in devc.children or []:
        items = strm.children or []
        if any(it.key == key for it in items):
            type_str = next((it.raw.rstrip(b"\0").decode("latin-1") for it in items if it.key == "TYPE"), None)
            scal = next(
                ([float(x) or 1.0 for row in _values(it) for x in row] for it in items if it.key == "SCAL"), [1.0]
            )
            return items, type_str, scal or [1.0]
    return None


def _scaled(row: tuple, scal: list[float]) -> tuple[float, ...]:
    return tuple(x / scal[i if len(scal) > 1 else 0] for i, x in enumerate(row))


def _karma_glpi(devc: Klv, vt: float, anchors: list[tuple[float, datetime]]) -> list[GpsPoint]:
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
            t = datetime.fromtimestamp(unix_t, UTC) + timedelta(seconds=r[0] - sys_t)
            p = checked_point(t, r[1], r[2], (r[5] ** 2 + r[6] ** 2) ** 0.5, None, None, r[3])
            if p is not None:
                out.append(p)
                if k == 0:
                    anchors.append((vt, t))
    return out


_Gps5 = tuple[float, datetime | None, str | None, list[tuple[float, ...]]]  # (vt, GPSU, fix, rows)


def _gps9(
    it: Klv, type_str: str | None, scal: list[float], vt: float, anchors: list[tuple[float, datetime]]
) -> list[GpsPoint]:
    """Points of one ``GPS9`` item (each sample carries its own UTC time)."""
    out = []
    for k, r in enumerate(_values(it, type_str or "lllllllSS")):
        r = tuple(x / scal[i if len(scal) > 1 else 0] for i, x in enumerate(r))
        if len(r) < 9 or (r[0] == 0 and r[1] == 0):
            continue
        t = datetime(2000, 1, 1, tzinfo=UTC) + timedelta(days=r[5], seconds=r[6])
        p = checked_point(t, r[0], r[1], r[3], None, _GPSF.get(int(round(r[8]))), r[2])
        if p is not None:
            out.append(p)
            if k == 0:
                anchors.append((vt, t))
    return out


def _gps_stream(
    items: list[Klv], vt: float, gps5: list[_Gps5], gps9: list[GpsPoint], anchors: list[tuple[float, datetime]]
) -> None:
    """Read one GPS stream's items in order (``SCAL``/``TYPE``/``GPSU``/``GPSF`` apply to the
    ``GPS5``/``GPS9`` items after them) into ``gps5``/``gps9``/``anchors``."""
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
            fix = _GPSF.get(int(v[0][0])) if v else None
        elif it.key == "GPS5":
            rows = [tuple(x / scal[i if len(scal) > 1 else 0] for i, x in enumerate(r)) for r in _values(it)]
            gps5.append((vt, gpsu, fix, rows))
            if gpsu is not None:
                anchors.append((vt, gpsu))
        elif it.key == "GPS9":
            gps9.extend(_gps9(it, type_str, scal, vt, anchors))


def _gps5_points(gps5: list[_Gps5]) -> list[GpsPoint]:
    """GPS5 rows timed from each payload's GPSU at the stream's rate (median samples / GPSU
    interval; 18 Hz when it cannot be measured)."""
    rates = []
    for (_, t0, _, rows0), (_, t1, _, _) in zip(gps5, gps5[1:], strict=False):
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
            p = checked_point(gpsu + timedelta(seconds=k / rate), r[0], r[1], r[3], None, fix, r[2])
            if p is not None:
                points.append(p)
    return points


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
    gps5: list[_Gps5] = []
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
                if "GPS5" in keys or "GPS9" in keys:
                    _gps_stream(items, vt, gps5, gps9, anchors)
    if bad:
        log.warning("%d of %d GPMF payloads are damaged; skipped", bad, len(payloads))
    if gps9:
        return gps9, anchors
    if glpi and not gps5:
        return glpi, anchors
    return _gps5_points(gps5), anchors


def read_gpmf_mp4(path: Path, moov: bytes | None = None) -> tuple[list[GpsPoint], list[tuple[float, datetime]]] | None:
    """GPS of the ``gpmd`` timed-metadata track of a GoPro MP4 (:func:`gpmf_points` of its samples,
    each at its decode time in seconds), or None when the file has no such track.

    Raises:
        EmbeddedGpsError: a sample lies outside the file; ``dashcam.media.isobmff.BoxError``: a
            damaged box or sample table; OSError: the file cannot be read.
    """
    size = path.stat().st_size
    with open(path, "rb") as f:
        if moov is None:
            moov = read_moov(f, size)
        if moov is None:
            return None
        payloads: list[tuple[float, bytes]] = []
        found = False
        for trak in find(moov, [b"trak"]):
            fmt, samples = track_samples(moov, trak)
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
