"""The media layer: files and videos, below the records and the pipeline (no import of either
:mod:`dashcam.archive` or :mod:`dashcam.pipeline`; only :mod:`dashcam.records` for ``VideoInfo``).

=============================  ===================================================================
module                         what it does
=============================  ===================================================================
:mod:`~dashcam.media.errors`    ``VideoError``, ``ArchiveError``, ``MediaCheckError``
:mod:`~dashcam.media.files`     atomic writes through flock'd temp files; sweep of stale temp files
:mod:`~dashcam.media.ffmpeg`    ffmpeg/ffprobe flags, ``file:`` names, ffprobe fields (rate,
                                rotation, video stream), ffmpeg's messages as one line
:mod:`~dashcam.media.isobmff`   the one MP4/MOV box walker: boxes, ``moov``, sample tables,
                                truncation check
:mod:`~dashcam.media.identity`  video identity (content hash) and the file-name clock
                                (Viofo names, recording start in UTC)
:mod:`~dashcam.media.probe`     ffprobe a video into ``VideoInfo``, refusing bad inputs in one line
:mod:`~dashcam.media.decode`    streaming decode of every K-th frame (bounded queue, damage policy)
:mod:`~dashcam.media.verify`    verification of produced media before they take their final name
=============================  ===================================================================

:mod:`dashcam.video` re-exports the video-input names (identity, probe, decode) as one import;
:mod:`dashcam.archive` keeps the archive transcode and layout on top of this layer.
"""
