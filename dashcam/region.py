"""Which plate formats apply where the car is: ``Settings.plate_formats = "auto"`` (the default).

Order (:func:`plate_priors`):

1. an explicit ``Settings.plate_formats`` (anything but ``("auto",)``) always wins;
2. the **GPS position** of the event (WGS84 lat/lon): its country from the offline reverse
   geocoder of PyPI ``reverse_geocode`` (GeoNames cities of population >= 1000 bundled in the
   wheel, nearest city by k-d tree; no network), :func:`country_at`;
3. else the **camera's timezone** (``Settings.camera_tz``; ``"local"`` = this machine's zone, from
   ``$TZ``, ``/etc/timezone`` or the ``/etc/localtime`` link): its country from the tz database's
   ``zone.tab`` (one ISO 3166 country per zone; read from the system zoneinfo or the ``tzdata``
   package that Python's :mod:`zoneinfo` uses), :func:`country_of_tz`; zones without a country
   (``UTC``, ``Etc/*``) give none;
4. else **no prior**: the plate recogniser's reading as it is (a prior from the wrong region
   costs reads: the old fixed ``NL,EU`` default cost US photos ~18 points with PP-OCR).

The country -> formats table is :data:`COUNTRY_FORMATS` (docs/configuration.md lists it with its
sources): countries whose current national series have fixed letter/digit slots get their own
patterns (:data:`dashcam.vote.PLATE_FORMATS`), the US its ``O`` = ``0`` convention; every other
country (and countries with variable-length codes: DE, AT, CH) gets no prior.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from dashcam.settings import Settings

AUTO = ("auto",)

# ISO 3166-1 alpha-2 -> keys of dashcam.vote.PLATE_FORMATS (sources in dashcam.vote and
# docs/configuration.md). Not listed -> no prior.
COUNTRY_FORMATS: dict[str, tuple[str, ...]] = {
    "NL": ("NL",),
    "US": ("US",),
    "FR": ("FR",),
    "IT": ("IT",),
    "SK": ("SK",),
    "GB": ("GB",),
    "ES": ("ES",),
    "BE": ("BE",),
    "CZ": ("CZ",),
    "PL": ("PL",),
    "SE": ("SE",),
    # US territories issue US-style plates
    "PR": ("US",),
    "GU": ("US",),
    "VI": ("US",),
    "AS": ("US",),
    "MP": ("US",),
}


def formats_for_country(country: str | None) -> tuple[str, ...]:
    """Plate-format regions for an ISO 3166-1 alpha-2 ``country`` (``()`` if unknown / None)."""
    return COUNTRY_FORMATS.get((country or "").upper(), ())


def country_at(lat: float | None, lon: float | None) -> str | None:
    """ISO 3166-1 alpha-2 country of the nearest GeoNames city (population >= 1000) to WGS84
    ``lat``/``lon`` degrees (``reverse_geocode``, offline), or ``None`` for a missing or
    out-of-range position. Near a border the nearest city may lie across it (a known limit)."""
    if lat is None or lon is None or not (-90 <= lat <= 90 and -180 <= lon <= 180):
        return None
    import reverse_geocode

    cc = reverse_geocode.get((float(lat), float(lon))).get("country_code")
    return str(cc).upper() if cc else None


def _zone_tab_files() -> list[Path]:
    import zoneinfo

    out = [Path(d) / "zone.tab" for d in zoneinfo.TZPATH]
    try:
        import importlib.resources as res

        out.append(Path(str(res.files("tzdata").joinpath("zoneinfo", "zone.tab"))))
    except (ImportError, ModuleNotFoundError, FileNotFoundError):  # pragma: no cover - no tzdata package
        pass
    return [p for p in out if p.is_file()]


@functools.lru_cache(maxsize=1)
def _zone_countries() -> dict[str, str]:
    """zone name -> country code, from the first readable ``zone.tab`` (tz database format:
    ``CC<TAB>coordinates<TAB>TZ[<TAB>comments]``, ``#`` comments)."""
    for p in _zone_tab_files():
        table = {}
        for line in p.read_text(encoding="utf-8").splitlines():
            if line.startswith("#") or not line.strip():
                continue
            parts = line.split("\t")
            if len(parts) >= 3:
                table[parts[2]] = parts[0].upper()
        if table:
            return table
    return {}


def system_tz_name() -> str | None:
    """This machine's IANA zone name: ``$TZ`` (without a leading ``:``), ``/etc/timezone``, or the
    target of the ``/etc/localtime`` link below a ``zoneinfo`` folder; ``None`` if none says."""
    tz = os.environ.get("TZ", "").lstrip(":")
    if tz and ("/" in tz or tz in ("UTC", "GMT")):
        return tz
    try:
        name = Path("/etc/timezone").read_text(encoding="utf-8").strip()
        if name:
            return name
    except OSError:
        pass
    try:
        target = str(Path("/etc/localtime").resolve())
    except OSError:  # pragma: no cover
        return None
    return target.split("zoneinfo/", 1)[1] if "zoneinfo/" in target else None


def country_of_tz(tz: str | None) -> str | None:
    """ISO country of an IANA zone name from ``zone.tab`` (``"Europe/Amsterdam"`` -> ``"NL"``,
    ``"America/Chicago"`` -> ``"US"``); ``None`` for ``UTC``/``Etc/*``/unknown names; ``"local"``
    or ``""`` means :func:`system_tz_name`. Backward links (``US/Eastern``) resolve through
    :mod:`zoneinfo`'s key only when the name itself is listed (a known limit)."""
    if tz in (None, "", "local"):
        tz = system_tz_name()
    if not tz:
        return None
    return _zone_countries().get(tz)


def plate_priors(settings: Settings, lat: float | None = None, lon: float | None = None) -> tuple[str, ...]:
    """The plate-format regions for a read at WGS84 ``lat``/``lon`` (``None``: position unknown)
    under ``settings`` (module docstring: explicit setting > GPS country > camera_tz country >
    none). Returns keys of :data:`dashcam.vote.PLATE_FORMATS` (``()`` = no prior)."""
    explicit = tuple(settings.plate_formats)
    if explicit != AUTO:
        return explicit
    cc = country_at(lat, lon)
    if cc is None:
        cc = country_of_tz(settings.camera_tz)
    return formats_for_country(cc)
