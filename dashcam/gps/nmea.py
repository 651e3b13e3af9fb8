"""NMEA 0183 logs (``.nmea``, ``.log``, ``.txt``), parsed with pynmea2.

Sentences used (NMEA 0183 v4.11; field layout as pynmea2 names it, see the pynmea2 sources and
gpsd's "NMEA Revealed", https://gpsd.gitlab.io/gpsd/NMEA.html):

* ``RMC``: date, UTC time, status (``A`` valid / ``V`` void), lat/lon, speed over ground (knots),
  true course (degrees);
* ``GGA``: UTC time, lat/lon, fix quality (0 none, 1 GPS, 2 DGPS, 3 PPS, 4/5 RTK, 6 estimated),
  altitude (m);
* ``GSA``: fix mode (2 = 2D, 3 = 3D); ``ZDA``: the date, for logs without RMC.
"""

from __future__ import annotations

import logging
import os
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from dashcam.gps.track import KNOTS, GpsError, GpsPoint, GpsTrack, checked_point

log = logging.getLogger(__name__)

__all__ = ["parse_nmea", "load_nmea", "rmc_point"]

_GGA_FIX = {0: None, 1: None, 2: "dgps", 3: "pps", 4: "3d", 5: "3d", 6: None}


def rmc_point(sentence: str) -> GpsPoint | None:
    """The point of one RMC sentence (checksum not checked), or None when its status is not ``A``
    or it has no date/time. Speed knots -> m/s.

    Raises:
        pynmea2.ParseError, ValueError: the sentence does not parse.
    """
    import pynmea2

    msg = pynmea2.parse(sentence.strip(), check=False)
    if getattr(msg, "status", "V") != "A" or msg.datestamp is None or msg.timestamp is None:
        return None
    t = datetime.combine(msg.datestamp, msg.timestamp.replace(tzinfo=None), tzinfo=UTC)
    spd = float(msg.spd_over_grnd) * KNOTS if msg.spd_over_grnd not in (None, "") else None
    trk = float(msg.true_course) if msg.true_course not in (None, "") else None
    return checked_point(t, msg.latitude, msg.longitude, spd, trk)


class _Fixes:
    """Per-time records of one log being parsed (RMC and GGA of the same time merge)."""

    def __init__(self, date_hint: date | None):
        self.by_time: dict[tuple, dict] = {}
        self.order: list[tuple] = []
        self.day: date | None = None
        self.date_hint = date_hint
        self.gsa_mode: str | None = None

    def _rec(self, key: tuple) -> dict:
        rec = self.by_time.setdefault(key, {})
        if not rec:
            self.order.append(key)
        return rec

    def rmc(self, msg: Any) -> None:
        if msg.status != "A" or msg.timestamp is None or msg.datestamp is None:
            return
        self.day = msg.datestamp
        rec = self._rec((msg.datestamp, msg.timestamp))
        rec.update(
            lat=msg.latitude,
            lon=msg.longitude,
            spd=float(msg.spd_over_grnd) * KNOTS if msg.spd_over_grnd not in (None, "") else None,
            trk=float(msg.true_course) if msg.true_course not in (None, "") else None,
        )
        rec.setdefault("fix", self.gsa_mode)

    def gga(self, msg: Any) -> None:
        if msg.timestamp is None or not msg.gps_qual:
            return
        d = self.day or self.date_hint
        if d is None:
            return
        rec = self._rec((d, msg.timestamp))
        rec.setdefault("lat", msg.latitude)
        rec.setdefault("lon", msg.longitude)
        rec["alt"] = float(msg.altitude) if msg.altitude not in (None, "") else None
        rec["fix"] = _GGA_FIX.get(int(msg.gps_qual)) or self.gsa_mode

    def add(self, msg: Any) -> None:
        typ = getattr(msg, "sentence_type", "")
        if typ == "ZDA" and msg.datestamp is not None:
            self.day = msg.datestamp
        elif typ == "GSA":
            self.gsa_mode = {"2": "2d", "3": "3d"}.get(str(msg.mode_fix_type))
        elif typ == "RMC":
            self.rmc(msg)
        elif typ == "GGA":
            self.gga(msg)

    def points(self) -> list[GpsPoint]:
        points = []
        for d, tm in self.order:
            rec = self.by_time[(d, tm)]
            if "lat" not in rec:
                continue
            t = datetime.combine(d, tm.replace(tzinfo=None), tzinfo=UTC)
            p = checked_point(t, rec["lat"], rec["lon"], rec.get("spd"), rec.get("trk"), rec.get("fix"), rec.get("alt"))
            if p is not None:
                points.append(p)
        return points


def parse_nmea(lines: list[str], date_hint: date | None = None) -> list[GpsPoint]:
    """Fixes of an NMEA 0183 log, one point per time stamp, in the order first seen.

    RMC sentences give date, time, position, speed (knots) and course; status ``V`` is dropped.
    A GGA at the same time adds altitude and, with GSA, the fix quality (GSA mode 2/3 -> "2d"/"3d",
    GGA quality 2 -> "dgps"; quality 0 drops the point). Logs without RMC (GGA only) take the date
    from ZDA sentences or ``date_hint``. Lines that do not parse (bad checksum, truncated) are
    skipped; the count is logged at DEBUG. Never raises for bad lines.
    """
    import pynmea2

    fixes = _Fixes(date_hint)
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
        try:
            fixes.add(msg)
        except (ValueError, TypeError, AttributeError):
            bad += 1
    if bad:
        log.debug("NMEA: %d lines skipped (unparseable)", bad)
    return fixes.points()


def load_nmea(path: str | os.PathLike, max_gap_s: float = 10.0, date_hint: date | None = None) -> GpsTrack:
    """Load an NMEA 0183 log (``.nmea``, ``.log``, ``.txt``) as a track (:func:`parse_nmea`).

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
