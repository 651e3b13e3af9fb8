"""Per-track voting: pure rules on small hand-built read lists, and a real clip end to end.

The real-clip test runs the real models (vehicle tracker, plate detector, OCR) over a labelled
plates-video clip at the default 6 fps and votes the main track's reads.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC

import cv2
import pytest
from helpers import csv_rows, model_dir, shared_dir

from dashcam.alpr import normalize_plate
from dashcam.records import PlateRead
from dashcam.settings import Settings
from dashcam.vote import apply_format_prior, plausible_plate, vote_track


def _read(text: str, conf: float = 0.9, frame: int = 0, area: float = 2000.0) -> PlateRead:
    return PlateRead(
        frame_idx=frame,
        pts_s=frame / 6,
        track_id=1,
        car_bbox=(0, 0, 100, 100),
        car_conf=0.9,
        plate_bbox=(10, 10, 60, 20),
        plate_conf=0.8,
        text=text,
        raw_text=text,
        text_conf=conf,
        plate_area=area,
        sharpness=100.0,
    )


def test_plausible_plate_shapes():
    assert plausible_plate("XSNB23")
    assert plausible_plate("7ABC123")
    assert plausible_plate("1234")  # all-digit plates exist (e.g. Delaware)
    assert plausible_plate("CEMENT")  # US vanity plate, all letters
    assert not plausible_plate("TEXAS")  # state name off the plate frame
    assert not plausible_plate("TOYOTA")
    assert not plausible_plate("AB1")  # partial read
    assert not plausible_plate("ABCD12345")  # too long
    assert not plausible_plate("12345678")  # all digits, too long (phone-number-like)
    assert not plausible_plate("XS-NB-23")  # not normalised


def test_nl_prior_resolves_lookalikes_only_when_unique():
    def nl(t):
        return apply_format_prior(t, ("NL",))

    assert nl("XSNBZ3") == "XSNB23"  # LLLLDD (sidecode 5) needs a digit
    assert nl("O1XJND") == "01XJND"  # DDLLLL: O in a digit slot -> 0
    assert nl("23GSXG") == "23GSXG"  # DDLLLL fits as read: left alone
    assert nl("ZDP867") == "ZDP867"  # two single-swap fixes possible: left alone
    assert nl("SL7C6S") == "SL7C6S"  # US plate, fits no NL sidecode
    assert nl("XS0B23") == "XS0B23"  # NL issues no vowels: a letter slot never becomes O


def test_eu_and_us_priors():
    """Misreads of the openalpr photos (plates-images, bench/accuracy.py images) and what the
    region formats make of them."""
    eu = ("NL", "EU")
    assert apply_format_prior("RK708A1", eu) == "RK708AI"  # SK LL-DDD-LL: last slot is a letter
    assert apply_format_prior("BA3020Z", eu) == "BA302OZ"
    # LL-DDD-LL and UK LLDD-LLL both fit: the disputed slot 4 stays as read, slot 6 (L in both) -> O
    assert apply_format_prior("RK340A0", eu) == "RK340AO"
    assert apply_format_prior("1B19839", eu) == "1B19839"  # CZ DLD-DDDD: already right
    assert apply_format_prior("8B135B0", eu) == "8B135B0"  # two single swaps fit two countries: left alone
    # PL LL-DDDDD: a district code is letters (the openalpr label says W053011)
    assert apply_format_prior("W053011", eu) == "WO53011"
    assert apply_format_prior("M5XSX", eu) == "M5XSX"  # fits no pattern: unchanged
    assert apply_format_prior("HKOE7C", ("US",)) == "HK0E7C"  # US: O and 0 are one glyph, written 0
    assert apply_format_prior("HKOE7C", ()) == "HKOE7C"
    with pytest.raises(ValueError, match="unknown plate format region"):
        apply_format_prior("HKOE7C", ("XX",))


def test_plate_formats_setting(monkeypatch):
    monkeypatch.delenv("DASHCAM_PLATE_FORMATS", raising=False)
    assert Settings().plate_formats == ("auto",)  # the default: from where the car is (dashcam.region)
    monkeypatch.setenv("DASHCAM_PLATE_FORMATS", "auto")
    assert Settings().plate_formats == ("auto",)
    monkeypatch.setenv("DASHCAM_PLATE_FORMATS", "US")
    assert Settings().plate_formats == ("US",)
    monkeypatch.setenv("DASHCAM_PLATE_FORMATS", "NL, EU")
    assert Settings().plate_formats == ("NL", "EU")
    monkeypatch.setenv("DASHCAM_PLATE_FORMATS", "")
    assert Settings().plate_formats == ()
    with pytest.raises(ValueError, match="unknown plate format region"):
        Settings(plate_formats="NL,XX")


def test_vote_folds_and_votes_per_character():
    reads = [_read("XSNB23", 0.95), _read("XSN823", 0.6), _read("XSNB2S", 0.7), _read("XSNB23", 0.9)]
    v = vote_track(reads, min_reads=2)
    assert v is not None
    assert v.final_plate == "XSNB23"
    assert v.n_reads == 4 and v.n_agreeing == 2
    assert v.best_read.text == "XSNB23" and v.best_read.text_conf == 0.95
    # O/0 and I/1 are one class: they agree, and the NL prior puts digits in digit slots
    v = vote_track([_read("O1XJND"), _read("01XJND"), _read("OIXJND")], min_reads=2)
    assert v.final_plate == "01XJND" and v.n_agreeing == 3


def test_vote_confidence_behaviour():
    many = vote_track([_read("XSNB23", 0.9, i) for i in range(6)], min_reads=2)
    two = vote_track([_read("XSNB23", 0.9), _read("XSNB23", 0.9, 1)], min_reads=2)
    one = vote_track([_read("XSNB23", 0.9)], min_reads=1)
    weak = vote_track([_read("XSNB23", 0.4)], min_reads=1)
    split = vote_track([_read("XSNB23", 0.9), _read("GH41KT", 0.9, 1)], min_reads=2)
    assert many.confidence > 0.95
    assert 0.6 < two.confidence < many.confidence
    assert one.confidence < 0.6 and weak.confidence < 0.3
    assert split.confidence < 0.6
    assert vote_track([_read("XSNB23")], min_reads=2) is None
    assert vote_track([_read("TEXAS"), _read("AB1")], min_reads=1) is None  # nothing plausible
    # a minority of reads that dropped a character lowers confidence but not the plate
    v = vote_track([_read("XSNB23", 0.9, i) for i in range(4)] + [_read("XSNB2", 0.9, 9)], min_reads=2)
    assert v.final_plate == "XSNB23" and 0.6 < v.confidence < many.confidence


def test_vote_on_real_clip_reads():
    """Real models over a real Dutch clip (12 fps, analysed at 6 fps): the main track votes to
    the labelled plate with high confidence."""
    from dashcam.alpr import PlateDetector, PlateReader, VehicleTracker, read_tracked_frame
    from dashcam.settings import Settings

    data = shared_dir() / "data" / "plates-video"
    clip = "TrainingSet/Categorie I/Video10_2.avi"
    label = next(r["plate_text"] for r in csv_rows(data / "labels.csv") if r["file"] == clip)
    s = Settings(model_dir=model_dir())
    vt, pd, rd = VehicleTracker(s), PlateDetector(s), PlateReader(s)
    cap = cv2.VideoCapture(str(data / clip))
    assert cap.isOpened()
    reads: list[PlateRead] = []
    idx = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        if idx % 2 == 0:  # 12 fps -> 6 fps
            reads += read_tracked_frame(frame, vt.update(frame), pd, rd, idx, idx / 12)
        idx += 1
    cap.release()
    assert reads, "no plate read in a clip with a large readable plate"
    main_track = Counter(r.track_id for r in reads).most_common(1)[0][0]
    track_reads = [r for r in reads if r.track_id == main_track]
    assert len(track_reads) >= 8
    v = vote_track(track_reads, min_reads=s.min_reads)
    assert v is not None
    assert v.final_plate == normalize_plate(label)
    assert v.confidence >= s.min_plate_confidence
    assert v.n_agreeing >= len(track_reads) // 2


@pytest.mark.parametrize("bad", [[], [_read("XSNB23", 0.0)]])
def test_vote_nothing_to_vote(bad):
    assert vote_track(bad, min_reads=1) is None


# ------------------------------------------------------------------ one event per vehicle


def test_similar_plates_rule():
    from dashcam.pipeline import similar_plates

    assert similar_plates("XSNB23", "NB23")  # first group cut off
    assert similar_plates("96LKH9", "LKH9")
    assert similar_plates("XSNB23", "XSNB2")  # last character dropped
    assert similar_plates("XSNB23", "XSN823")  # one edit
    assert similar_plates("01XJND", "OIXJND")  # O/0, I/1 folded
    assert not similar_plates("XSNB23", "GH41KT")
    assert not similar_plates("XSNB23", "23")  # too short to be a truncation
    assert not similar_plates("AB12", "AB13")  # one edit on a short plate: two plates


def _event(plate, first, last, box=(100, 100, 300, 250), conf=0.9, n=6, track=1):
    from datetime import datetime

    from dashcam.records import PlateEvent

    return PlateEvent(
        video_id="v",
        track_id=track,
        frame_idx=first,
        pts_s=first / 12,
        ts=datetime(2026, 1, 1, tzinfo=UTC),
        final_plate=plate,
        plate_confidence=conf,
        car_bbox=box,
        plate_bbox=box,
        n_reads=n,
        first_frame_idx=first,
        last_frame_idx=last,
    )


def test_merge_rule_time_and_place():
    from dashcam.pipeline import _merge_duplicate_plates

    fps = 12.0
    # a truncated reading of the same vehicle, touching in time and place: one event, full text
    (m,) = _merge_duplicate_plates([_event("XSNB23", 0, 30, n=5), _event("NB23", 31, 40, n=8, track=2)], fps)
    assert m.final_plate == "XSNB23" and m.n_reads == 13 and (m.first_frame_idx, m.last_frame_idx) == (0, 40)
    # the same near-duplicate elsewhere in the frame (another car), or 5 s later: kept apart
    assert (
        len(
            _merge_duplicate_plates(
                [_event("XSNB23", 0, 30), _event("NB23", 20, 40, box=(500, 100, 600, 200), track=2)], fps
            )
        )
        == 2
    )
    assert len(_merge_duplicate_plates([_event("XSNB23", 0, 30), _event("NB23", 90, 100, track=2)], fps)) == 2
    # the same plate again: within MERGE_GAP_S one sighting, after a longer absence a new event
    assert len(_merge_duplicate_plates([_event("XSNB23", 0, 30), _event("XSNB23", 120, 130, track=2)], fps)) == 1
    assert (
        len(_merge_duplicate_plates([_event("XSNB23", 0, 30), _event("XSNB23", 30 + 11 * 12, 200, track=2)], fps)) == 2
    )
    # one edit apart, overlapping: the better supported text wins
    (m,) = _merge_duplicate_plates([_event("XSNB23", 0, 30, n=9), _event("XSN823", 10, 35, n=3, track=2)], fps)
    assert m.final_plate == "XSNB23" and m.n_reads == 12


def test_truncated_duplicate_from_real_reads_is_merged(tmp_path):
    """Real reads of a real clip (Video171_2, plate 96-LKH-9 filling the frame): the plate
    detector at 640 boxes only ``LKH-9`` (docs/performance.md, close-up plates), at 320 the whole
    plate. Replayed as two tracks through the vote, they give a full and a truncated reading of one
    plate, touching in time and place: build_events keeps one event, the full plate."""
    from datetime import datetime

    from dashcam.alpr import Detections, PlateDetector, PlateReader, read_closeup_plates
    from dashcam.pipeline import build_events
    from dashcam.records import AnalyzeResult, TrackSummary, VideoInfo, write_jsonl

    data = shared_dir() / "data" / "plates-video"
    clip = "TrainingSet/Categorie I/Video171_2.avi"
    s = Settings(model_dir=model_dir(), camera_tz="UTC")
    pd, rd = PlateDetector(s), PlateReader(s)
    cap = cv2.VideoCapture(str(data / clip))
    reads, idx = [], 0
    tracks: dict[int, list[int]] = {}
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        if idx % 2 == 0:
            for tid, small in ((1, False), (2, True)):
                found = pd.detect(frame, small=small)[:1]
                plates = Detections(found.xyxy, found.confidence, found.class_id, [tid] * len(found))
                got = read_closeup_plates(frame, plates, rd, idx, idx / 12)
                reads += got
                if got:
                    tracks.setdefault(tid, []).append(idx)
        idx += 1
    cap.release()
    per_track = {t: vote_track([r for r in reads if r.track_id == t], min_reads=2) for t in (1, 2)}
    texts = {t: v.final_plate for t, v in per_track.items() if v is not None}
    assert texts.get(2) == "96LKH9" and texts.get(1) and texts[1] != "96LKH9" and texts[1] in "96LKH9", texts

    write_jsonl(tmp_path / "reads.jsonl", reads)
    write_jsonl(
        tmp_path / "tracks.jsonl",
        [
            TrackSummary(
                track_id=t,
                first_frame_idx=f[0],
                last_frame_idx=f[-1],
                n_frames=len(f),
                best_car_bbox=(0, 0, 1, 1),
                best_frame_idx=f[0],
            )
            for t, f in tracks.items()
        ],
    )
    info = VideoInfo(
        path=str(data / clip),
        video_id="v171",
        size_bytes=1,
        duration_s=idx / 12,
        fps=12.0,
        frame_count=idx,
        width=640,
        height=480,
        codec="mjpeg",
        recording_start=datetime(2026, 1, 1, tzinfo=UTC),
        recording_start_source="mtime",
    )
    result = AnalyzeResult(
        video_id="v171",
        work_dir=str(tmp_path),
        reads_path=str(tmp_path / "reads.jsonl"),
        tracks_path=str(tmp_path / "tracks.jsonl"),
        frames_decoded=idx,
        frames_analyzed=idx // 2,
        n_vehicle_detections=0,
        n_plate_reads=len(reads),
        wall_s=1.0,
    )
    events = build_events(info, result, s)
    assert [e.final_plate for e in events] == ["96LKH9"]
    assert events[0].n_reads == sum(v.n_reads for v in per_track.values() if v is not None)
