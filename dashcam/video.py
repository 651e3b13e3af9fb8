"""Video input as one import: identify, probe and stream-decode dashcam clips.

The implementation lives in the media layer (:mod:`dashcam.media`); this module re-exports the
names callers use (``from dashcam.video import probe, iter_frames``):

* identity and the file-name clock: :func:`compute_video_id`, :func:`parse_viofo_name`,
  :func:`recording_start` (:mod:`dashcam.media.identity`);
* :func:`probe` -> :class:`dashcam.records.VideoInfo` (:mod:`dashcam.media.probe`);
* decode: :func:`iter_frames`, :class:`Frame`, :class:`DecodeStats`, :func:`frame_step`,
  :func:`decode_only_seconds` (:mod:`dashcam.media.decode`);
* :func:`mp4_truncation` (:mod:`dashcam.media.isobmff`) and :class:`VideoError`.

Conventions (frame_idx, pts_s, BGR ``uint8`` images of shape ``(H, W, 3)``, UTC datetimes):
see :mod:`dashcam.media.decode` and :mod:`dashcam.records`.
"""

from __future__ import annotations

from dashcam.media.decode import DAMAGED_TAIL_S, DecodeStats, Frame, decode_only_seconds, frame_step, iter_frames
from dashcam.media.errors import VideoError
from dashcam.media.identity import ID_CHUNK, compute_video_id, parse_viofo_name, recording_start
from dashcam.media.isobmff import mp4_truncation
from dashcam.media.probe import RECENT_WRITE_S, probe

__all__ = [
    "VideoError",
    "compute_video_id",
    "parse_viofo_name",
    "recording_start",
    "probe",
    "Frame",
    "DecodeStats",
    "iter_frames",
    "decode_only_seconds",
    "frame_step",
    "mp4_truncation",
    "ID_CHUNK",
    "DAMAGED_TAIL_S",
    "RECENT_WRITE_S",
]
