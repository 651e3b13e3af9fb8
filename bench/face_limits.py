"""Limits of the face blur's detector (dashcam.blur.FaceBlur: dlib's HOG frontal face detector).

Usage::

    PYTHONPATH=$PWD .venv/bin/python bench/face_limits.py

1. Smallest face found, per upsample level: ``tests/data/astronaut_face.jpg`` (NASA, public
   domain) scaled so that the face is ``W`` px wide (dlib's box width; 125 px in the file), pasted
   on a grey 640x480 frame, JPEG q85; a hit is a detection around the true face centre.
2. Detection time of one grey frame (median of 5) at 640x360 and 1280x720 per upsample level,
   on frame 0 of road-video ``udacity_vehdet_test_video.mp4``.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from helpers import shared_dir  # noqa: E402

FACE = ROOT / "tests" / "data" / "astronaut_face.jpg"
BOX_W, CX, CY = 125, 79 + 62, 51 + 62  # dlib's box of the face in FACE (upsample 0) and its centre


def main() -> None:
    import dlib

    det = dlib.get_frontal_face_detector()
    face = cv2.imread(str(FACE))
    assert face is not None, FACE
    sizes = list(range(20, 101, 4))
    print("face width px: " + " ".join(f"{w:>3}" for w in sizes))
    for up in (0, 1):
        row = []
        for w in sizes:
            s = w / BOX_W
            sm = cv2.resize(face, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
            bg = np.full((480, 640, 3), 128, np.uint8)
            bg[40 : 40 + sm.shape[0], 40 : 40 + sm.shape[1]] = sm
            jpeg = cv2.imdecode(cv2.imencode(".jpg", bg, [cv2.IMWRITE_JPEG_QUALITY, 85])[1], cv2.IMREAD_COLOR)
            assert jpeg is not None
            grey = cv2.cvtColor(jpeg, cv2.COLOR_BGR2GRAY)
            cx, cy = 40 + CX * s, 40 + CY * s
            hit = any(r.left() < cx < r.right() and r.top() < cy < r.bottom() for r in det(grey, up))
            row.append("  Y" if hit else "  -")
        print(f"upsample {up}:    " + " ".join(row))
    cap = cv2.VideoCapture(str(shared_dir() / "data/road-video/udacity_vehdet_test_video.mp4"))
    ok, frame = cap.read()
    cap.release()
    if not ok:
        sys.exit("road-video udacity_vehdet_test_video.mp4 not readable")
    print(f"{'detection ms':14} {'640x360':>8} {'1280x720':>8}")
    for up in (0, 1):
        ms = []
        for size in ((640, 360), (1280, 720)):
            grey = cv2.cvtColor(cv2.resize(frame, size, interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2GRAY)
            ts = []
            for _ in range(5):
                t0 = time.perf_counter()
                det(grey, up)
                ts.append(time.perf_counter() - t0)
            ms.append(1000 * statistics.median(ts))
        print(f"upsample {up:<5} {ms[0]:8.1f} {ms[1]:8.1f}")


if __name__ == "__main__":
    main()
