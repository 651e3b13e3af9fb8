"""Plate keys and distance: the confusion classes and similar pairs, :func:`confusion_key`, the
lookup variants (:func:`key_variants`, :func:`query_variants`), the weighted
:func:`plate_distance` / :func:`plate_score` and :func:`key_score_bound`. Tables, costs and
sources: the docstring of :mod:`dashcam.search`.

Part of :mod:`dashcam.search` (import the names from there). Pure functions, no database: used
by :mod:`dashcam.search.matching` (candidate lookup and ranking), by :func:`dashcam.db.save_video`
(stored keys and variants) and by migration 0004.
"""

from __future__ import annotations

import re
from functools import lru_cache

from rapidfuzz.distance import Levenshtein

# --------------------------------------------------------------------------------------------
# Tables (the docstring of dashcam.search)

CONFUSION_CLASSES: dict[str, str] = {
    "0": "0OQD",
    "1": "1ILT",
    "2": "2Z",
    "5": "5S",
    "6": "6GC",
    "8": "8B",
}
_KEY = str.maketrans({c: rep for rep, chars in CONFUSION_CLASSES.items() for c in chars})

# seen confused in the bench tables (photos: 4->L, Z->7, W->N, E->3, 5->B, H->U) or classic look-alikes
# that are too different to fold without merging unrelated plates (cheaper substitution only);
# S/3 is issue 12's own example (X5NB2S read for XSNB23)
SIMILAR_PAIRS: frozenset[frozenset[str]] = frozenset(
    frozenset(p)
    for p in (
        "4L",
        "4A",
        "7Z",
        "72",
        "7T",
        "WN",
        "MN",
        "MW",
        "E3",
        "38",
        "B3",
        "S3",
        "5B",
        "HU",
        "UV",
        "VY",
        "KX",
        "PR",
        "EF",
        "HN",
        "UO",
        "U0",
        "JI",
        "J1",
        "FP",
    )
)

LOOKALIKE_COST = 0.2
SIMILAR_COST = 0.5
SUBSTITUTION_COST = 1.0
EDGE_INDEL_COST = 0.6
INDEL_COST = 1.0
# variants: deletions only of keys this long or longer; affixes at least this long
MIN_VARIANT_LEN = 4


# --------------------------------------------------------------------------------------------
# Keys and distance


def confusion_key(text: str) -> str:
    """The look-alike-folded key of a plate text (module docstring, table).

    ``text`` is normalised first (upper case, only ``[A-Z0-9]`` kept), e.g.
    ``confusion_key("XS-NB-23") == confusion_key("X5NB2S") == "X5N825"``.
    """
    return _norm(text).translate(_KEY)


_NOT_PLATE = re.compile(r"[^A-Z0-9]+")


def _norm(text: str) -> str:
    return _NOT_PLATE.sub("", text.upper())


def _affixes(key: str, min_len: int) -> set[str]:
    n = len(key)
    out: set[str] = set()
    for m in range(max(MIN_VARIANT_LEN, min_len), n):
        out.add(key[:m])
        out.add(key[n - m :])
    return out


def _deletions(key: str) -> set[str]:
    if len(key) <= MIN_VARIANT_LEN:
        return set()
    return {key[:i] + key[i + 1 :] for i in range(len(key))}


def key_variants(key: str) -> set[str]:
    """The lookup variants stored for one confusion ``key`` (rows of ``plate_key_variants``):
    the key, its single deletions (keys of >= 5 characters) and its prefixes and suffixes of
    ``max(4, len - 3) .. len - 1`` characters."""
    return {key} | _deletions(key) | _affixes(key, len(key) - 3) if key else set()


def query_variants(key: str) -> set[str]:
    """The variants of a query's confusion ``key`` looked up in ``plate_key_variants``: the
    key, its single deletions (>= 5 characters) and prefixes/suffixes of ``max(4, len - 2)``
    .. ``len - 1`` characters."""
    return {key} | _deletions(key) | _affixes(key, len(key) - 2) if key else set()


# the similar pairs seen through the key (S/3 -> 5/3): pricing keys with these never costs more
# than pricing the texts behind them, so a key's score bounds its texts' scores from above
_SIMILAR_KEYS = frozenset(frozenset(c.translate(_KEY) for c in p) for p in SIMILAR_PAIRS)


def _similar(a: str, b: str) -> bool:
    return frozenset((a, b)) in SIMILAR_PAIRS


def plate_distance(a: str, b: str) -> float:
    """Weighted OCR edit distance between two plate texts (>= 0.0; 0.0 = identical).

    Both are normalised (upper case, ``[A-Z0-9]`` only). Alignment: rapidfuzz
    ``Levenshtein.opcodes`` over the confusion keys; costs per aligned character in the module
    docstring (look-alike 0.2, similar pair 0.5, other substitution 1.0, insertion/deletion at an
    end 0.6, inside 1.0). E.g. ``plate_distance("X5NB2S", "XSNB23") == 0.7`` (S/5 look-alike, S/3
    similar pair), ``plate_distance("NB23", "XSNB23") == 1.2`` (a dropped first group).
    """
    return _distance(_norm(a), _norm(b))


@lru_cache(maxsize=65536)
def _distance(a: str, b: str) -> float:
    if a == b:
        return 0.0
    ka, kb = a.translate(_KEY), b.translate(_KEY)
    d = 0.0
    for op in Levenshtein.opcodes(ka, kb):
        tag, i1, i2, j1, j2 = op.tag, op.src_start, op.src_end, op.dest_start, op.dest_end
        if tag == "equal":
            d += LOOKALIKE_COST * sum(x != y for x, y in zip(a[i1:i2], b[j1:j2], strict=True))
        elif tag == "replace":
            for x, y in zip(a[i1:i2], b[j1:j2], strict=True):  # equal and replace blocks: same length
                d += SIMILAR_COST if _similar(x, y) else SUBSTITUTION_COST
        else:  # insert / delete: a run of characters only one side has
            n = max(i2 - i1, j2 - j1)
            at_edge = i1 == 0 or i2 == len(a) or j1 == 0 or j2 == len(b)
            d += n * (EDGE_INDEL_COST if at_edge else INDEL_COST)
    return round(d, 6)


def plate_score(a: str, b: str) -> float:
    """Similarity of two plate texts in ``[0, 1]``: ``1 - plate_distance / max(len)`` (1.0 =
    identical after normalisation, 0.0 for an empty side)."""
    return _score(_norm(a), _norm(b))


@lru_cache(maxsize=65536)
def _score(na: str, nb: str) -> float:
    """:func:`plate_score` of two already normalised texts (stored texts are)."""
    n = max(len(na), len(nb))
    if not n or not na or not nb:
        return 0.0
    return max(0.0, min(1.0, 1.0 - _distance(na, nb) / n))


@lru_cache(maxsize=65536)
def key_score_bound(ka: str, kb: str) -> float:
    """An upper bound of :func:`plate_score` over all texts with confusion keys ``ka``, ``kb``:
    the same alignment and costs on the keys themselves, look-alikes free and similar pairs
    judged through the key (:data:`_SIMILAR_KEYS`)."""
    n = max(len(ka), len(kb))
    if not n or not ka or not kb:
        return 0.0
    if ka == kb:
        return 1.0
    d = 0.0
    for op in Levenshtein.opcodes(ka, kb):
        tag, i1, i2, j1, j2 = op.tag, op.src_start, op.src_end, op.dest_start, op.dest_end
        if tag == "replace":
            for x, y in zip(ka[i1:i2], kb[j1:j2], strict=True):  # a replace block: same length
                d += SIMILAR_COST if frozenset((x, y)) in _SIMILAR_KEYS else SUBSTITUTION_COST
        elif tag != "equal":
            n_ = max(i2 - i1, j2 - j1)
            at_edge = i1 == 0 or i2 == len(ka) or j1 == 0 or j2 == len(kb)
            d += n_ * (EDGE_INDEL_COST if at_edge else INDEL_COST)
    return max(0.0, min(1.0, 1.0 - d / n))
