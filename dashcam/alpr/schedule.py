"""Plate-reading policy: which tracked vehicles get plate detection + OCR in an analysed frame."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from dashcam.alpr.detections import NO_CLASS, Detections

if TYPE_CHECKING:  # pragma: no cover
    from dashcam.records import PlateRead
    from dashcam.settings import Settings


@dataclass
class _TrackReads:
    last_try_pts: float | None = None  # pts (s) of the last plate-detector try, None = never tried
    last_try_area: float = 0.0  # vehicle bbox area (px^2) at that try
    last_found: bool = False  # that try gave a read
    agree: dict[str, int] = field(default_factory=dict)  # folded text -> confident reads of it
    agree_high: dict[str, int] = field(default_factory=dict)  # folded text -> reads of it at >= FAST_SETTLE_CONF


class PlateReadScheduler:
    """Decide, per analysed frame, which tracked vehicles get plate detection + OCR.

    The plate detector costs ~60 ms per vehicle crop at 320 px on 2 CPU cores (more than the
    vehicle detector per frame), so reading every vehicle in every analysed frame spends most of
    the time on vehicles that cannot give a readable plate or are already read. Rule, per track
    (``w`` = vehicle bbox width in source pixels, ``t`` = the frame's pts in seconds):

    1. **Too small**: ``w < settings.plate_min_vehicle_px`` -> never read. A plate is 0.2-0.4 of
       a vehicle's width (measured on plates-video/road-video), and OCR needs a plate >= ~35 px
       wide (the smallest labelled plate in plates-images is 50 px), so below ~96 px the detector
       finds nothing readable (road-video: 0 reads on 119 such crops).
    2. **First sight** -> read.
    3. **Last try found no plate** (rear plate hidden, side view, far): retry after
       ``plate_retry_s`` or as soon as the vehicle's area has grown 1.25x (it came closer).
    4. **Settled**: ``plate_settle_reads`` reads of the same text (O/0, I/1 folded) each at OCR
       confidence >= ``SETTLE_CONF`` -> re-read only every ``plate_retry_s`` (a later, closer
       view may still give a better crop); at 4 agreeing reads the vote
       (:mod:`dashcam.vote`) already reports ~0.9 confidence. Also settled after
       ``plate_settle_fast_reads`` agreeing reads at >= ``FAST_SETTLE_CONF``: the plate
       recogniser reads a clear plate at 0.96-1.0 (the 0.85 rule dates from PP-OCR, whose
       confident reads were ~0.9); with 3 such reads and the re-reads the vote gives ~0.96
       (with 2, ~0.93 and 0.73 on a plate seen for half a second: measured, docs/performance.md).
    5. Otherwise (a plate was found, text not settled yet) -> read at every analysed frame.

    This is a detection-rate policy applied per object instead of per frame (cf. the seeds'
    motion gating, which decides per frame); ``plate_settle_reads = 0`` turns it off (every
    vehicle of at least the minimum width in every analysed frame, the issue-2 behaviour).
    """

    SETTLE_CONF = 0.85
    FAST_SETTLE_CONF = 0.95
    GROWTH = 1.25
    FRAME_TRACK = 0  # pseudo track id of close-up passes over a whole frame (ByteTrack ids are >= 1)

    def __init__(self, settings: Settings):
        self.min_w = float(settings.plate_min_vehicle_px)
        self.retry_s = float(settings.plate_retry_s)
        self.settle = int(settings.plate_settle_reads)
        self.fast_settle = int(settings.plate_settle_fast_reads)
        self.state: dict[int, _TrackReads] = {}

    def _due(self, track_id: int, w: float, h: float, pts_s: float) -> bool:
        if w < self.min_w:
            return False
        st = self.state.setdefault(track_id, _TrackReads())
        area = w * h
        if self.settle > 0 and st.last_try_pts is not None:
            waited = pts_s - st.last_try_pts >= self.retry_s
            settled = max(st.agree.values(), default=0) >= self.settle or (
                self.fast_settle > 0 and max(st.agree_high.values(), default=0) >= self.fast_settle
            )
            if settled and not waited:
                return False
            if not settled and not st.last_found and not waited and area < self.GROWTH * st.last_try_area:
                return False
        st.last_try_pts, st.last_try_area, st.last_found = pts_s, area, False
        return True

    def due(self, vehicles: Detections, pts_s: float) -> Detections:
        """The subset of tracked ``vehicles`` (boxes in source pixels) to read in the frame at
        ``pts_s`` seconds, in input order; marks them tried. Raises ``ValueError`` for untracked
        detections."""
        keep = [
            i
            for i in range(len(vehicles))
            if self._due(vehicles.track(i), float(vehicles.widths[i]), float(vehicles.heights[i]), pts_s)
        ]
        return vehicles[keep]

    def frame_due(self, width: float, height: float, pts_s: float) -> bool:
        """Should the frame at ``pts_s`` get a close-up plate pass
        (:class:`dashcam.alpr.plates.CloseupPlateTracker`)? The whole frame (``width`` x ``height``
        source px) is scheduled as one pseudo track ``FRAME_TRACK`` by the same rule; feed its
        reads back with ``record(reads, as_track=FRAME_TRACK)``."""
        box = np.asarray([[0.0, 0.0, float(width), float(height)]])
        frame = Detections(box, np.ones(1), np.full(1, NO_CLASS), np.full(1, self.FRAME_TRACK))
        return bool(len(self.due(frame, pts_s)))

    def record(self, reads: list[PlateRead], as_track: int | None = None) -> None:
        """Feed back the reads of the vehicles returned by the last :meth:`due` call (or, with
        ``as_track``, reads that all count for that one scheduled track)."""
        from dashcam.vote import fold

        for r in reads:
            st = self.state.setdefault(r.track_id if as_track is None else as_track, _TrackReads())
            st.last_found = True
            if r.text_conf >= self.SETTLE_CONF:
                k = fold(r.text)
                st.agree[k] = st.agree.get(k, 0) + 1
            if r.text_conf >= self.FAST_SETTLE_CONF:
                k = fold(r.text)
                st.agree_high[k] = st.agree_high.get(k, 0) + 1
