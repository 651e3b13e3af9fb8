"""The per-video report: the markdown that the ``report`` stage publishes as a Prefect artifact.

Pure rendering (no Prefect, no I/O): :func:`video_report_markdown` of a handover manifest and the
events the server stages stored.
"""

from __future__ import annotations

from pathlib import Path

from dashcam.records import Manifest, PlateEvent

__all__ = ["video_report_markdown"]


def video_report_markdown(m: Manifest, events: list[PlateEvent], archive_path: str | None) -> str:
    """Markdown of one ingested video: its facts (id, duration s, size px, fps, codec, recording
    start UTC and its source), the analysis (frames, wall s, real-time factor, detections, reads,
    the decoder that ran),
    the damage line when the video was damaged, the archive path, and one table row per event
    (plate, confidence in [0, 1], reads, ts ISO 8601 UTC, frame_idx, WGS84 lat/lon to 1e-6 deg,
    crop path), or a "(no confident plate)" row."""
    a, i = m.analyze, m.info
    rtf = i.duration_s / a.wall_s if a.wall_s else 0.0
    lines = [
        f"# {Path(i.path).name}",
        f"video_id `{i.video_id}` · {i.duration_s:.1f} s · {i.width}x{i.height} @ {i.fps:.2f} fps {i.codec} · "
        f"recorded {i.recording_start.isoformat()} ({i.recording_start_source})",
        "",
        f"analysed {a.frames_analyzed} of {a.frames_decoded} frames in {a.wall_s:.1f} s "
        f"(real-time factor {rtf:.2f}x): {a.n_vehicle_detections} vehicle detections, "
        f"{a.n_plate_reads} plate reads" + (f" · decoder: {a.decoder}" if a.decoder else ""),
        "",
        *(
            [f"**damaged video**: {a.damage}; the plates read in the frames that decoded are kept", ""]
            if a.damage
            else []
        ),
        f"archive: `{archive_path}`" if archive_path else "archive: -",
        "",
        "| plate | confidence | reads | ts | frame | lat, lon | crop |",
        "|---|---|---|---|---|---|---|",
    ]
    for e in events:
        pos = f"{e.lat:.6f}, {e.lon:.6f}" if e.lat is not None and e.lon is not None else "-"
        lines.append(
            f"| **{e.final_plate}** | {e.plate_confidence:.2f} | {e.n_reads} | {e.ts.isoformat()} | "
            f"{e.frame_idx} | {pos} | `{e.crop_path or '-'}` |"
        )
    if not events:
        lines.append("| (no confident plate) | | | | | | |")
    return "\n".join(lines)
