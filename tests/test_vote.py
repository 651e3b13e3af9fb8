"""Per-track voting: pure rules on small hand-built read lists, and a real clip end to end.

The real-clip test runs the real models (vehicle tracker, plate detector, OCR) over a labelled
plates-video clip at the default 6 fps and votes the main track's reads.
"""

from __future__ import annotations

import csv
from collections import Counter

import cv2
import pytest

from dashcam.alpr import normalize_plate
from dashcam.records import PlateRead
from dashcam.settings import Settings
from dashcam.vote import apply_format_prior, plausible_plate, vote_track

from helpers import model_dir, shared_dir


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
    label = next(r["plate_text"] for r in csv.DictReader(open(data / "labels.csv")) if r["file"] == clip)
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
