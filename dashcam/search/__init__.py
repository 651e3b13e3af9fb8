"""Plate search that survives OCR misreads: confusion keys, a weighted plate distance and one
query function (:func:`search_events`) shared by the web UI and ``dashcam plates``.

Query language (``q`` of :func:`search_events`; docs/search.md)
----------------------------------------------------------------
* empty / ``None``: every event, newest first (kind ``"all"``).
* ``XS-NB-23`` (plain text; spaces, ``-`` and ``.`` are dropped, case ignored): events whose final
  plate or one of whose alternative readings is exactly the text come first (score 1.0 for the
  final plate), then **fuzzy**, OCR-confusion-aware matches ranked by :func:`plate_score`
  (kind ``"fuzzy"``).
* ``=XSNB23`` or ``"XSNB23"``: exact matches only (final plate or an alternative; kind ``"exact"``).
* ``XS*23``, ``?SNB2?``: shell wildcards over the whole final plate or an alternative (kind
  ``"wildcard"``).
* ``/^XS.*3$/``: a case-insensitive regular expression searched in the final plate or an
  alternative (kind ``"regex"``). The syntax is the subset that Python's ``re`` and PostgreSQL's
  ARE agree on: literals, ``. [] [^] ^ $ * + ? {m,n} | ()`` and ``\\d \\w \\s``; ``(?`` constructs
  (look-around, flags, named groups), back-references and counts above 255 are refused.

Bad input (an over-long pattern, control characters, characters that cannot be in a plate, a
broken regex) raises :class:`SearchError` (a ``ValueError``) with a one-line message. User text
only ever reaches the database as bound parameters.

Confusion key (:func:`confusion_key`)
-------------------------------------
Characters that OCR confuses on plates are folded onto one representative, so look-alike
misreads of one plate share one indexed key:

=======  ==================  ==========================================================
class    characters          source
=======  ==================  ==========================================================
``0``    ``0 O Q D``         issue 12; bench/accuracy.py images: ``O``->``0`` 10, ``0``->``O`` 3
``1``    ``1 I L T``         issue 12; bench frames: ``T``->``1``/``I`` 5; photos ``4``->``L``
``2``    ``2 Z``             issue 12; photos ``2``->``Z``
``5``    ``5 S``             issue 12; bench frames ``S``->``5`` 2
``6``    ``6 G C``           issue 12; bench frames ``G``->``C`` 9 (Video106_2, 12 px glyphs)
``8``    ``8 B``             issue 12; bench frames ``B``<->``8`` 6
=======  ==================  ==========================================================

(bench numbers: docs/performance.md, issue 5 step 3, ``bench/accuracy.py images|frames``
confusion tables; the photo table of this issue's run is in docs/search.md). Pairs that were seen
confused but are too far apart to fold without merging unrelated plates are *similar* pairs
(:data:`SIMILAR_PAIRS`): cheaper substitutions in :func:`plate_distance`, not part of the key.

Distance and score
------------------
:func:`plate_distance` aligns the two confusion keys with rapidfuzz's Levenshtein alignment
(``rapidfuzz.distance.Levenshtein.opcodes``, https://rapidfuzz.github.io/RapidFuzz/, MIT) and
prices each aligned operation: a look-alike substitution (equal key, different character)
:data:`LOOKALIKE_COST`, a similar pair :data:`SIMILAR_COST`, any other substitution
:data:`SUBSTITUTION_COST`, a character inserted or dropped at either end (a cut-off plate, a
dropped first group) :data:`EDGE_INDEL_COST` per character, one inside the plate
:data:`INDEL_COST`. :func:`plate_score` is ``1 - distance / max(len(a), len(b))`` clipped to
``[0, 1]`` (1.0 = identical). An event's score is the best over its final plate and its
alternatives, an alternative's score multiplied by :data:`ALTERNATIVE_WEIGHT`.

Candidate lookup (fuzzy)
------------------------
Exact-key lookup alone misses insertions and deletions, so the table ``plate_key_variants``
(:func:`key_variants`, written by :func:`dashcam.db.save_video`) maps *variants* of every stored
key to the key: the key itself, its single-character deletions (keys of >= 5 characters), and its
prefixes/suffixes of at least ``max(4, n - 3)`` characters. The query key's own variants (itself,
its deletions, its prefixes/suffixes of at least ``max(4, n - 2)``) are looked up there (an
indexed ``IN``), which finds every stored key within one insertion, deletion or substitution of
the query key (symmetric-deletion, as in SymSpell, https://github.com/wolfgarbe/SymSpell) and
stored plates with a dropped or extra edge group (``NB23`` finds ``XSNB23``). The candidate keys
select events through the indexed ``vehicles.confusion_key`` and ``plate_readings.confusion_key``;
candidates are ranked in Python and those with score >= :data:`MIN_SCORE` are returned.

Modules (this package re-exports their names, so ``from dashcam.search import ...`` stays the
interface):

* :mod:`dashcam.search.keys` - confusion classes, similar pairs, costs, :func:`confusion_key`,
  :func:`key_variants` / :func:`query_variants`, :func:`plate_distance`, :func:`plate_score`,
  :func:`key_score_bound` (pure functions).
* :mod:`dashcam.search.query` - :class:`SearchError`, :class:`ParsedQuery`,
  :func:`normalize_query`, :func:`regex_hints` (the query language, no database).
* :mod:`dashcam.search.matching` - :func:`search_events` and :class:`SearchPage` (the SQL,
  candidate lookup, ranking and paging).
"""

from __future__ import annotations

from dashcam.search.keys import (
    CONFUSION_CLASSES,
    EDGE_INDEL_COST,
    INDEL_COST,
    LOOKALIKE_COST,
    MIN_VARIANT_LEN,
    SIMILAR_COST,
    SIMILAR_PAIRS,
    SUBSTITUTION_COST,
    confusion_key,
    key_score_bound,
    key_variants,
    plate_distance,
    plate_score,
    query_variants,
)
from dashcam.search.matching import ALTERNATIVE_WEIGHT, MAX_LIMIT, MAX_TEXTS, MIN_SCORE, SearchPage, search_events
from dashcam.search.query import MAX_QUERY_LEN, ParsedQuery, SearchError, normalize_query, regex_hints

__all__ = [
    "ALTERNATIVE_WEIGHT",
    "CONFUSION_CLASSES",
    "EDGE_INDEL_COST",
    "INDEL_COST",
    "LOOKALIKE_COST",
    "MAX_LIMIT",
    "MAX_QUERY_LEN",
    "MAX_TEXTS",
    "MIN_SCORE",
    "MIN_VARIANT_LEN",
    "SIMILAR_COST",
    "SIMILAR_PAIRS",
    "SUBSTITUTION_COST",
    "ParsedQuery",
    "SearchError",
    "SearchPage",
    "confusion_key",
    "key_score_bound",
    "key_variants",
    "normalize_query",
    "plate_distance",
    "plate_score",
    "query_variants",
    "regex_hints",
    "search_events",
]
