"""Per-track plate voting: many noisy per-frame OCR reads of one vehicle -> one plate + confidence.

The idea is OpenALPR's multi-frame "plate consensus" (openalpr ``src/openalpr/...``
``AlprImpl``/``alprd`` plate grouping, which groups a vehicle's per-frame results and votes
character by character over results of the same length), simplified for reads that already come
grouped by a tracker. Frigate's LPR (``frigate/data_processing/common/license_plate``) instead
keeps the single best read per object and clusters *similar* strings; we vote per character
because reads of the same plate differ in one or two characters far more often than in length,
and per-character voting recovers the right string even when no single read is fully right.

Rule (:func:`vote_track`)
-------------------------
1. **Shape filter** - keep reads whose normalised text passes :func:`plausible_plate`:
   4..8 characters of ``[A-Z0-9]``, containing both letters and digits, except
   * all digits, 4..7 chars: real (Delaware, Rhode Island, older US series, some trailers);
   * all letters, 4..7 chars: real (US/UK personalised plates), unless the word is a frequent
     non-plate word on or around plates (US state names, car makes, "DEALER"...), which is
     what an OCR of a plate frame or a badge produces.
   Partial reads (3 chars), wrapped text and badges are dropped. Reads with ``text_conf <= 0``
   are dropped.
2. **Folding** - ``O``->``0`` and ``I``->``1`` (glyphs that are identical in many plate fonts;
   NL and many EU series never issue ``O``/``I``, US labels write ``0``) form one *character
   class* for voting.
3. **Modal length** ``L`` - the length with the largest summed weight (weight = ``text_conf``);
   ties go to the longer length (a dropped character is a more common OCR error than an
   inserted one).
4. **Character vote** - among reads of length ``L``, each position takes the folded class with the
   largest summed ``text_conf``; the concrete character inside a class (``O`` vs ``0``) is the
   weighted majority of the raw characters, unless a **format prior** decides it.
5. **Format prior** (:func:`apply_format_prior`, regions from ``Settings.plate_formats``) - if
   the folded result fits the slot patterns (letter/digit) of the configured regions in only one
   way per ambiguous slot (e.g. NL sidecodes ``99-XX-99``, ``XX-999-X``; FR/IT/SK
   ``XX-999-XX``), the ambiguous classes are set from it: a digit slot gets ``0``/``1``, a letter slot ``O``/``I`` (NL issues no
   vowels, so there a letter slot is never changed to ``O``/``I``). If the string fits **no**
   pattern but fits exactly one after a *single* ``B/8``, ``S/5``, ``Z/2`` or ``G/6`` swap at a
   slot of the other kind, that swap is applied. US plates have no fixed slot pattern; region
   ``US`` writes ``O`` as ``0`` (one glyph on US plates; the OpenALPR US convention). Priors only
   ever choose between look-alikes; disable with ``priors=()``. The same prior is applied to
   single-photo reads (:func:`dashcam.alpr.read_array`).
   **Plate-recogniser reads** (``PlateRead.slot_probs`` set, :mod:`dashcam.platerec`): instead of
   steps 4-5 on the characters, the ``text_conf``-weighted mean of the length-``L`` reads' slot
   probabilities is decoded once with the formats of ``priors`` (constrained decoding,
   :func:`dashcam.platerec.decode_slots`). Callers pass the priors of where the vehicle was
   (:func:`dashcam.pipeline.track_priors`; ``Settings.plate_formats`` ``auto`` is resolved there).
6. **Confidence** in ``[0, 1]``::

       agree_i   = share of positions where read i (length L) matches the final class
       evidence  = 1 - exp(-sum_i text_conf_i * agree_i / 1.5)      # saturates with agreeing reads
       char_share= mean over positions of winning-class weight / all weight at that position
       len_share = weight of length-L reads / weight of all plausible reads
       confidence= evidence * char_share * len_share

   One read at 0.9 gives ~0.45; two agreeing at 0.9 ~0.70; four ~0.91; two reads of two
   different plates ~0.3-0.5. ``Settings.min_plate_confidence`` (0.6) therefore needs at least
   two agreeing good reads.

``vote_track`` returns ``None`` when fewer than ``min_reads`` plausible reads exist.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from dashcam.records import PlateRead

FOLD = str.maketrans({"O": "0", "I": "1"})
_SWAPS = {"B": "8", "8": "B", "S": "5", "5": "S", "Z": "2", "2": "Z", "G": "6", "6": "G"}
_PLATE_RE = re.compile(r"^[A-Z0-9]{4,8}$")

# Frequent non-plate words read off plate frames, badges and bumper text (all-letter reads).
NON_PLATE_WORDS = frozenset(
    """
    OHIO IOWA UTAH IDAHO MAINE TEXAS NEVADA OREGON ALASKA HAWAII KANSAS ALABAMA ARIZONA
    FLORIDA GEORGIA INDIANA MONTANA VERMONT WYOMING ILLINOIS MICHIGAN MARYLAND VIRGINIA
    DELAWARE KENTUCKY MISSOURI NEBRASKA COLORADO
    TOYOTA HONDA NISSAN FORD LEXUS MAZDA SUBARU AUDI VOLVO TESLA KIA HYUNDAI JEEP DODGE
    CHEVY BUICK ACURA INFINITI OPEL SKODA SEAT FIAT RENAULT PEUGEOT CITROEN DACIA MINI
    DEALER SALES MOTORS AUTO AUTOS PLATE LICENSE STATE COUNTY EXPIRES STICKER
    """.split()  # noqa: SIM905 - a word list reads better as text than as 60 quoted strings
)

UNFOLD = {"0": "O", "1": "I"}

# Dutch sidecodes 1-14 (RDW), L = letter, D = digit, dashes removed.
NL_SIDECODES = (
    "LLDDDD",
    "DDDDLL",
    "DDLLDD",
    "LLDDLL",
    "LLLLDD",
    "DDLLLL",
    "DDLLLD",
    "DLLLDD",
    "LLDDDL",
    "LDDDLL",
    "LLLDDL",
    "LDDLLL",
    "DLLDDD",
    "DDDLLD",
)


@dataclass(frozen=True)
class PlateFormat:
    """Slot patterns of one region's plates (``L`` letter, ``D`` digit, separators removed);
    ``letters_o_i``: letter slots may hold ``O``/``I``; ``o_is_zero``: the issuers print ``O`` and
    ``0`` alike, so ``O`` is written ``0`` (the OpenALPR US convention; the openalpr US labels
    contain no ``O``)."""

    patterns: tuple[str, ...]
    letters_o_i: bool = True
    o_is_zero: bool = False


# Current national formats (Wikipedia, "Vehicle registration plates of <country>", 2026):
# FR (SIV 2009), IT (1994) and SK (1997-2022) LL-DDD-LL; GB (2001) LLDD-LLL; ES (2000)
# DDDD-LLL; BE (2010) D-LLL-DDD; CZ (2001) DLD-DDDD; PL district + serial LL-DDDDD / LLL-DDDD;
# SE LLL-DDD / LLL-DDL. Germany, Austria and Switzerland have variable-length codes: no
# pattern (their reads are left as read). NL issues no vowels, so its letter slots never get O/I.
# "EU" is the union of the European patterns (for a user who drives in several of these
# countries). Which country's formats apply by default comes from where the car is
# (dashcam.region, Settings.plate_formats = "auto").
_EU_COUNTRY_PATTERNS = {
    "FR": ("LLDDDLL",),
    "IT": ("LLDDDLL",),
    "SK": ("LLDDDLL",),
    "GB": ("LLDDLLL",),
    "ES": ("DDDDLLL",),
    "BE": ("DLLLDDD",),
    "CZ": ("DLDDDDD",),
    "PL": ("LLDDDDD", "LLLDDDD"),
    "SE": ("LLLDDD", "LLLDDL"),
}
PLATE_FORMATS: dict[str, PlateFormat] = {
    "NL": PlateFormat(NL_SIDECODES, letters_o_i=False),
    "EU": PlateFormat(tuple(dict.fromkeys(p for ps in _EU_COUNTRY_PATTERNS.values() for p in ps))),
    "US": PlateFormat((), o_is_zero=True),
    **{cc: PlateFormat(ps) for cc, ps in _EU_COUNTRY_PATTERNS.items()},
}


def formats_of(regions: Sequence[str]) -> list[PlateFormat]:
    """The :class:`PlateFormat` of each region name (keys of :data:`PLATE_FORMATS`); raises
    ``ValueError`` naming an unknown region."""
    out = []
    for r in regions:
        if r not in PLATE_FORMATS:
            raise ValueError(f"unknown plate format region {r!r} (known: {', '.join(PLATE_FORMATS)})")
        out.append(PLATE_FORMATS[r])
    return out


@dataclass(frozen=True)
class VoteResult:
    """Outcome of :func:`vote_track`: ``final_plate`` ([A-Z0-9]), ``confidence`` in [0, 1],
    ``best_read`` (the supporting read to show: text == final, best ``text_conf*sqrt(area)``),
    ``n_reads`` (plausible reads considered), ``n_agreeing`` (reads whose folded text equals the
    folded final plate)."""

    final_plate: str
    confidence: float
    best_read: PlateRead
    n_reads: int
    n_agreeing: int


def fold(text: str) -> str:
    """``O``->``0``, ``I``->``1`` (the voting character classes)."""
    return text.translate(FOLD)


def plausible_plate(text: str) -> bool:
    """Could ``text`` (normalised ``[A-Z0-9]``) be a licence plate? See the module docstring."""
    if not _PLATE_RE.match(text or ""):
        return False
    has_d = any(c.isdigit() for c in text)
    has_l = any(c.isalpha() for c in text)
    if has_d and has_l:
        return True
    if len(text) > 7:
        return False
    if has_d:  # all digits
        return True
    return text not in NON_PLATE_WORDS  # all letters


def _cls(c: str) -> str:
    return "D" if c.isdigit() else "L"


def _fits(folded: str, pattern: str) -> bool:
    for c, p in zip(folded, pattern, strict=False):
        if c in "01":
            continue  # ambiguous: 0/O, 1/I fit either slot
        if _cls(c) != p:
            return False
    return len(folded) == len(pattern)


def _resolve(text: str, pattern: str, letters_o_i: bool) -> str:
    """Set the look-alike characters of ``text`` from the slot kinds of ``pattern``."""
    out = []
    for c, slot in zip(text, pattern, strict=False):
        if slot == "D" and c in "OI":
            c = fold(c)
        elif slot == "L" and letters_o_i and c in "01":
            c = UNFOLD[c]
        out.append(c)
    return "".join(out)


def apply_format_prior(text: str, regions: Sequence[str] = ("NL",)) -> str:
    """Resolve look-alike characters with the plate formats of ``regions`` (keys of
    :data:`PLATE_FORMATS`; module docstring, step 5).

    ``text``: normalised ``[A-Z0-9]``. Every slot pattern of the regions that the folded text fits
    (``0``/``1`` fit either kind of slot) is a candidate; if none fits, a *single* ``B/8``,
    ``S/5``, ``Z/2`` or ``G/6`` swap that makes exactly one string fit is applied first. Each
    ambiguous slot on whose kind all candidates agree is set: a digit slot gets ``0``/``1``, a
    letter slot ``O``/``I`` (only when every candidate's region issues ``O``/``I``; NL does not);
    slots where candidates disagree keep the character as read. With no candidate the text is
    unchanged, except that a region with ``o_is_zero`` (US) writes every ``O`` as ``0``.
    Raises ``ValueError`` for an unknown region."""
    fmts = formats_of(regions)
    pats = [(p, f.letters_o_i) for f in fmts for p in f.patterns if len(p) == len(text)]
    ft = fold(text)
    cand = [(p, oi) for p, oi in pats if _fits(ft, p)]
    if not cand and pats:
        swapped = set()
        for i, c in enumerate(text):
            if c in _SWAPS:
                g = text[:i] + _SWAPS[c] + text[i + 1 :]
                if any(_fits(fold(g), p) and p[i] == _cls(_SWAPS[c]) for p, _ in pats):
                    swapped.add(g)
        if len(swapped) == 1:
            text = swapped.pop()
            ft = fold(text)
            cand = [(p, oi) for p, oi in pats if _fits(ft, p)]
    if cand:
        # an ambiguous slot is set only where every candidate pattern agrees on its kind
        agreed = "".join(p0 if all(p[i] == p0 for p, _ in cand) else "?" for i, p0 in enumerate(cand[0][0]))
        return _resolve(text, agreed, all(oi for _, oi in cand))
    if any(fm.o_is_zero for fm in fmts):
        return text.replace("O", "0")
    return text


def _slot_decode(same: list[PlateRead], priors: Sequence[str]) -> str | None:
    """Plate-recogniser reads (all of ``same`` carry ``slot_probs`` of one slot count): the
    ``text_conf``-weighted mean of their per-slot probabilities, decoded once with the formats
    of ``priors`` (:func:`dashcam.platerec.decode_slots`, constrained decoding). ``None`` when
    any read has no slot evidence (PP-OCR reads: the character vote decides)."""
    slots = [r.slot_probs for r in same]
    if not slots or any(not s for s in slots) or len({len(s or ()) for s in slots}) != 1:
        return None
    from dashcam.platerec import CANON_ALPHABET, CANON_PAD, decode_slots, mean_slots, slots_from_json

    m = mean_slots([slots_from_json(s or []) for s in slots], [r.text_conf for r in same])
    return decode_slots(m, CANON_ALPHABET, CANON_PAD, tuple(priors)).text or None


def _quality(r: PlateRead) -> float:
    return r.text_conf * math.sqrt(max(r.plate_area, 1.0))


def vote_track(
    reads: list[PlateRead],
    min_reads: int = 2,
    priors: Sequence[str] = ("NL",),
) -> VoteResult | None:
    """Vote one track's reads into a plate (rule in the module docstring).

    ``reads``: the track's per-frame :class:`~dashcam.records.PlateRead` (any order, ``text``
    already normalised). ``min_reads``: fewer plausible reads -> ``None``. ``priors``: regions
    whose plate formats resolve look-alikes (:func:`apply_format_prior`, keys of
    :data:`PLATE_FORMATS`; unknown names raise ``ValueError``; ``()`` = none).
    """
    for p in priors:
        if p not in PLATE_FORMATS:
            raise ValueError(f"unknown plate format region {p!r} (known: {', '.join(PLATE_FORMATS)})")
    good = [r for r in reads if r.text_conf > 0 and plausible_plate(r.text)]
    if not good or len(good) < max(1, min_reads):
        return None
    w_len: dict[int, float] = defaultdict(float)
    for r in good:
        w_len[len(r.text)] += r.text_conf
    L = max(w_len, key=lambda n: (w_len[n], n))
    same = [r for r in good if len(r.text) == L]

    chars, shares = [], []
    for i in range(L):
        cls_w: dict[str, float] = defaultdict(float)
        raw_w: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        for r in same:
            c = r.text[i]
            cls_w[fold(c)] += r.text_conf
            raw_w[fold(c)][c] += r.text_conf
        win = max(cls_w, key=lambda k: (cls_w[k], k))
        shares.append(cls_w[win] / sum(cls_w.values()))
        chars.append(max(raw_w[win], key=lambda k: (raw_w[win][k], k)))
    final = "".join(chars)
    slotted = _slot_decode(same, priors)
    if slotted is not None:  # plate-recogniser reads: decode the mean slot evidence once
        final = slotted
    elif priors:
        final = apply_format_prior(final, priors)
    ffinal = fold(final)

    s = 0.0
    for r in same:
        fr = fold(r.text)
        s += r.text_conf * sum(a == b for a, b in zip(fr, ffinal, strict=False)) / L
    evidence = 1.0 - math.exp(-s / 1.5)
    char_share = sum(shares) / L
    len_share = w_len[L] / sum(w_len.values())
    confidence = max(0.0, min(1.0, evidence * char_share * len_share))

    agreeing = [r for r in good if fold(r.text) == ffinal]
    exact = [r for r in agreeing if r.text == final]
    pool = exact or agreeing or same
    best = max(pool, key=_quality)
    return VoteResult(
        final_plate=final,
        confidence=round(confidence, 4),
        best_read=best,
        n_reads=len(good),
        n_agreeing=len(agreeing),
    )


MAX_ALTERNATIVES = 10


def track_alternatives(reads: list[PlateRead], final_plate: str, limit: int = MAX_ALTERNATIVES) -> list:
    """The distinct readings of one track other than ``final_plate``, for misread-tolerant search.

    ``reads``: the track's per-frame reads (as given to :func:`vote_track`); only reads that pass
    its shape filter (``text_conf > 0`` and :func:`plausible_plate`) count. Returns at most
    ``limit`` :class:`~dashcam.records.PlateAlternative` (``text``, ``count`` reads, ``mean_conf``
    of their ``text_conf``), most reads first, then higher mean confidence, then text.
    """
    from dashcam.records import PlateAlternative

    by_text: dict[str, list[float]] = defaultdict(list)
    for r in reads:
        if r.text_conf > 0 and r.text != final_plate and plausible_plate(r.text):
            by_text[r.text].append(r.text_conf)
    alts = [PlateAlternative(text=t, count=len(c), mean_conf=round(sum(c) / len(c), 4)) for t, c in by_text.items()]
    alts.sort(key=lambda a: (-a.count, -a.mean_conf, a.text))
    return alts[:limit]
