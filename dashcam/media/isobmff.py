"""The one ISO-BMFF (MP4/MOV) box walker: top-level boxes on disk, nested boxes in memory,
sample tables, and the truncation check.

Layout source: ISO/IEC 14496-12 (ISO base media file format) section 4.2 "Object structure"
(a box is a 32-bit big-endian size, a 4-character type; size 1: a 64-bit size follows the type;
size 0: the box runs to the end of its container) and 8.6-8.7 (sample tables ``stts``, ``stsc``,
``stsz``, ``stco``/``co64``); Apple's QuickTime File Format, which shares it (``wide``, ``pnot``).

Used by the probe (:func:`mp4_truncation`: a file cut short), the media verification of
produced MP4s, and the embedded-GPS readers (:mod:`dashcam.gps.freegps`, :mod:`dashcam.gps.gpmf`:
``moov``, the ``gps `` atom, the ``gpmd`` track's samples). Offsets and sizes are bytes;
sample times are seconds of the track's media timeline.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

__all__ = [
    "BoxError",
    "Box",
    "Sample",
    "MP4_FIRST_BOXES",
    "MAX_MOOV",
    "looks_like_mp4",
    "iter_boxes",
    "children",
    "find",
    "read_moov",
    "track_samples",
    "mp4_truncation",
]

#: Box types an ISO-BMFF/QuickTime file may start with (anything else: not an MP4/MOV).
MP4_FIRST_BOXES = frozenset({b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"uuid", b"pnot"})
#: A larger ``moov`` is not plausible: :func:`read_moov` refuses instead of reading it.
MAX_MOOV = 256 << 20


class BoxError(ValueError):
    """A box structure is damaged (a size pointing outside its parent, a truncated table)."""


@dataclass
class Box:
    """One box of a file: ``type`` (4 bytes, e.g. ``b"moov"``) and file offsets of its header
    (``start``), payload (``data``) and the byte after it (``end``)."""

    type: bytes
    start: int
    data: int
    end: int


@dataclass
class Sample:
    """One sample of a track: file ``offset`` and ``size`` (bytes), ``time_s`` its decode time
    (seconds, the track's ``mdhd`` timescale; the sample index when the track has no ``stts``)."""

    offset: int
    size: int
    time_s: float


def looks_like_mp4(p: Path) -> bool:
    """True when the file starts with an ISO-BMFF box (:data:`MP4_FIRST_BOXES`); False when it
    does not or cannot be read."""
    try:
        with open(p, "rb") as f:
            return f.read(8)[4:8] in MP4_FIRST_BOXES
    except OSError:
        return False


def _header(f: BinaryIO, pos: int) -> tuple[int, bytes, int] | None:
    """(declared size, type, header length) of the box at ``pos``; None when < 8 bytes remain.

    Size 1 is replaced by the 64-bit size (header length 16); when those 8 bytes are missing the
    size stays 1 (smaller than any header: callers report it). Size 0 (to the end) is returned as 0.
    """
    f.seek(pos)
    hdr = f.read(8)
    if len(hdr) < 8:
        return None
    size, typ = struct.unpack(">I4s", hdr)
    if size != 1:
        return size, typ, 8
    ext = f.read(8)
    if len(ext) < 8:
        return 1, typ, 8
    return struct.unpack(">Q", ext)[0], typ, 16


def iter_boxes(f: BinaryIO, start: int, end: int) -> Iterator[Box]:
    """Boxes between file offsets ``start`` and ``end`` (32-bit, 64-bit and to-end sizes).

    Raises:
        BoxError: a truncated 64-bit header, or a box size that points outside its parent.
    """
    pos = start
    while pos + 8 <= end:
        h = _header(f, pos)
        if h is None:
            return
        size, typ, hlen = h
        if size == 1 and hlen == 8:
            raise BoxError(f"truncated 64-bit box header at {pos}")
        if size == 0 and hlen == 8:
            size = end - pos
        if size < hlen or pos + size > end:
            raise BoxError(f"box {typ!r} at offset {pos} has size {size} beyond its parent (ends {end})")
        yield Box(typ, pos, pos + hlen, pos + size)
        pos += size


def children(buf: bytes, start: int = 0, end: int | None = None) -> Iterator[tuple[bytes, int, int]]:
    """(type, payload start, payload end) of the boxes inside an in-memory buffer.

    Raises:
        BoxError: a box size beyond its parent.
    """
    end = len(buf) if end is None else end
    pos = start
    while pos + 8 <= end:
        size, typ = struct.unpack_from(">I4s", buf, pos)
        hdr = 8
        if size == 1:
            if pos + 16 > end:
                raise BoxError("truncated 64-bit box header")
            size = struct.unpack_from(">Q", buf, pos + 8)[0]
            hdr = 16
        elif size == 0:
            size = end - pos
        if size < hdr or pos + size > end:
            raise BoxError(f"box {typ!r} has size {size} beyond its parent")
        yield typ, pos + hdr, pos + size
        pos += size


def find(buf: bytes, path: list[bytes], start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """All (start, end) payload spans of boxes along ``path`` (e.g. ``[b"trak", b"mdia"]``)."""
    spans = [(start, len(buf) if end is None else end)]
    for name in path:
        nxt: list[tuple[int, int]] = []
        for s, e in spans:
            nxt.extend((ds, de) for typ, ds, de in children(buf, s, e) if typ == name)
        spans = nxt
    return spans


def read_moov(f: BinaryIO, size: int, max_size: int = MAX_MOOV) -> bytes | None:
    """The payload of the top-level ``moov`` box of a file of ``size`` bytes, or None without one.

    Raises:
        BoxError: a damaged top-level box, a ``moov`` over ``max_size`` bytes, or one cut short.
    """
    for box in iter_boxes(f, 0, size):
        if box.type == b"moov":
            n = box.end - box.data
            if n > max_size:
                raise BoxError(f"moov box of {n} bytes is implausibly large")
            f.seek(box.data)
            data = f.read(n)
            if len(data) < n:
                raise BoxError("moov box is truncated")
            return data
    return None


# --------------------------------------------------------------------------------------------
# sample tables (ISO/IEC 14496-12 8.6.1.2 stts, 8.7.3 stsz, 8.7.4 stsc, 8.7.5 stco/co64)


def _timescale(moov: bytes, mdia: tuple[int, int]) -> int:
    mdhd = find(moov, [b"mdhd"], *mdia)
    if not mdhd:
        return 1
    ms, _ = mdhd[0]
    version = moov[ms]
    return struct.unpack_from(">I", moov, ms + (20 if version == 1 else 12))[0] or 1


def _sizes(moov: bytes, span: tuple[int, int]) -> list[int]:
    ds, de = span
    fixed, n = struct.unpack_from(">II", moov, ds + 4)
    if fixed:
        return [fixed] * n
    if ds + 12 + 4 * n > de:
        raise BoxError("stsz table is truncated")
    return list(struct.unpack_from(f">{n}I", moov, ds + 12))


def _chunk_offsets(moov: bytes, boxes: dict[bytes, tuple[int, int]]) -> list[int]:
    name, width, code = (b"co64", 8, "Q") if b"co64" in boxes else (b"stco", 4, "I")
    ds, de = boxes[name]
    nc = struct.unpack_from(">I", moov, ds + 4)[0]
    if ds + 8 + width * nc > de:
        raise BoxError(f"{name.decode()} table is truncated")
    return list(struct.unpack_from(f">{nc}{code}", moov, ds + 8))


def _stsc(moov: bytes, span: tuple[int, int]) -> list[tuple[int, int, int]]:
    ds, de = span
    ns = struct.unpack_from(">I", moov, ds + 4)[0]
    if ds + 8 + 12 * ns > de:
        raise BoxError("stsc table is truncated")
    return [struct.unpack_from(">III", moov, ds + 8 + 12 * i) for i in range(ns)]


def _times(moov: bytes, span: tuple[int, int] | None, n: int, timescale: int) -> list[float]:
    times: list[float] = []
    if span is None:
        return times
    ds, de = span
    nt = struct.unpack_from(">I", moov, ds + 4)[0]
    t = 0
    for i in range(min(nt, (de - ds - 8) // 8)):
        count, delta = struct.unpack_from(">II", moov, ds + 8 + 8 * i)
        for _ in range(min(count, n - len(times))):
            times.append(t / timescale)
            t += delta
    return times


def _samples(chunks: list[int], stsc: list[tuple[int, int, int]], sizes: list[int], times: list[float]) -> list[Sample]:
    n = len(sizes)
    samples: list[Sample] = []
    k = 0
    for ci, chunk_off in enumerate(chunks, start=1):
        off = chunk_off
        per_chunk = 0
        for first, count, _desc in stsc:
            if first <= ci:
                per_chunk = count
        for _ in range(per_chunk):
            if k >= n:
                break
            samples.append(Sample(off, sizes[k], times[k] if k < len(times) else float(k)))
            off += sizes[k]
            k += 1
    return samples


def track_samples(moov: bytes, trak: tuple[int, int]) -> tuple[bytes, list[Sample]]:
    """The sample-description format (e.g. ``b"gpmd"``) and the samples of one ``trak`` span of
    ``moov`` (from :func:`find`). ``(b"", [])`` without ``mdia``/``stbl``; ``(format, [])`` when
    a sample table is missing.

    Raises:
        BoxError: a truncated sample table or box; ``struct.error``: a table shorter than its header.
    """
    s, e = trak
    found = find(moov, [b"mdia"], s, e)
    if not found:
        return b"", []
    mdia = found[0]
    timescale = _timescale(moov, mdia)
    stbl = find(moov, [b"minf", b"stbl"], *mdia)
    if not stbl:
        return b"", []
    ss, se = stbl[0]
    boxes = {typ: (ds, de) for typ, ds, de in children(moov, ss, se)}
    fmt = b""
    if b"stsd" in boxes:
        ds, de = boxes[b"stsd"]
        if de - ds >= 16:
            fmt = moov[ds + 12 : ds + 16]
    if b"stsz" not in boxes or not (b"stco" in boxes or b"co64" in boxes) or b"stsc" not in boxes:
        return fmt, []
    sizes = _sizes(moov, boxes[b"stsz"])
    chunks = _chunk_offsets(moov, boxes)
    stsc = _stsc(moov, boxes[b"stsc"])
    times = _times(moov, boxes.get(b"stts"), len(sizes), timescale)
    return fmt, _samples(chunks, stsc, sizes, times)


# --------------------------------------------------------------------------------------------
# truncation


def mp4_truncation(p: Path, size: int) -> str | None:
    """Walk the top-level boxes of an ISO-BMFF (MP4/MOV) file; describe truncation or None.

    Reads 16 bytes per top-level box (a handful per file). Detects a box that declares more bytes
    than the file holds, i.e. a file cut short (interrupted copy, camera power loss) even when its
    index (``moov``) sits at the start and ffprobe therefore succeeds, and a missing ``moov``.
    Returns one line (``"the 'mdat' box at byte 40 declares ... bytes but the file ends after
    ..."``) or None (complete, or unreadable: an OSError is not truncation).
    """
    try:
        with open(p, "rb") as f:
            pos = 0
            seen_moov = False
            while pos + 8 <= size:
                h = _header(f, pos)
                if h is None:
                    break
                box_size, box_type, hlen = h
                if box_type == b"moov":
                    seen_moov = True
                if box_size == 0 and hlen == 8:  # "extends to end of file": only legal for the last box
                    break
                if box_size < 8:
                    return f"corrupt MP4 box structure at byte {pos}"
                if pos + box_size > size:
                    return (
                        f"the '{box_type.decode('latin-1')}' box at byte {pos} declares "
                        f"{box_size} bytes but the file ends after {size - pos}"
                    )
                pos += box_size
            if not seen_moov:
                return "the MP4 index ('moov' box) is missing"
    except OSError:
        return None
    return None
