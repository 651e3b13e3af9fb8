"""Vehicle model choice: the shipped YOLOv8n (dynamic int8, run as its fp32 copy, 320 px) vs
YOLOX-Nano (416 px) on the same frames.

Usage::

    .venv/bin/python bench/vehicle_models.py [--fps 6]

For every road clip (``<shared>/data/road-video``) and plates clip (``plates-video``), frames are
sampled at ``--fps``; both models detect COCO car/motorcycle/bus/truck at conf >= 0.25 (YOLOv8n
through ultralytics, as the pipeline runs it; YOLOX-Nano through onnxruntime with its own grid
decoding and OpenCV NMS at IoU 0.45, as in the YOLOX demo code, Megvii 2021). There is no vehicle
ground truth in the shared data, so the table compares the two: detections per frame, ms per
frame, and detections one model finds that the other does not (IoU < 0.5), split by box width
below / at least ``Settings.plate_min_vehicle_px`` (96 px: narrower vehicles are never read).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("YOLO_VERBOSE", "False")

from accuracy import model_dir, shared_dir  # noqa: E402

COCO_VEHICLES = (2, 3, 5, 7)


class YoloxNano:
    """YOLOX-Nano ONNX (1x3x416x416 BGR, 0-255, top-left letterbox padded with 114; output
    1x3549x85 = strides 8/16/32 grid cells x (cx, cy, w, h, objectness, 80 class scores))."""

    def __init__(self, path: Path, size: int = 416):
        import numpy as np
        import onnxruntime as ort

        self.sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        self.name = self.sess.get_inputs()[0].name
        self.size = size
        grids, strides = [], []
        for s in (8, 16, 32):
            n = size // s
            yv, xv = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
            grids.append(np.stack((xv, yv), 2).reshape(-1, 2))
            strides.append(np.full((n * n, 1), s))
        self.grid = np.concatenate(grids).astype(np.float32)
        self.stride = np.concatenate(strides).astype(np.float32)

    def detect(self, img, conf: float = 0.25, nms_iou: float = 0.45):
        import cv2
        import numpy as np

        h, w = img.shape[:2]
        r = min(self.size / h, self.size / w)
        pad = np.full((self.size, self.size, 3), 114, np.uint8)
        pad[: int(h * r), : int(w * r)] = cv2.resize(img, (int(w * r), int(h * r)), interpolation=cv2.INTER_LINEAR)
        x = pad.transpose(2, 0, 1)[None].astype(np.float32)
        out = self.sess.run(None, {self.name: x})[0][0]
        xy = (out[:, :2] + self.grid) * self.stride
        wh = np.exp(out[:, 2:4]) * self.stride
        scores = out[:, 4:5] * out[:, 5:]
        cls = scores.argmax(1)
        sc = scores[np.arange(len(cls)), cls]
        keep = np.isin(cls, COCO_VEHICLES) & (sc >= conf)
        boxes = np.concatenate([xy - wh / 2, xy + wh / 2], 1)[keep] / r
        sc = sc[keep]
        idx = cv2.dnn.NMSBoxes(
            [[float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])] for b in boxes],
            sc.tolist(),
            conf,
            nms_iou,
        )
        return [(tuple(float(v) for v in boxes[i]), float(sc[i])) for i in np.asarray(idx).reshape(-1)]


def frames(path: Path, fps: float):
    import cv2

    cap = cv2.VideoCapture(str(path))
    src = cap.get(cv2.CAP_PROP_FPS) or 25.0
    step = max(1, round(src / fps))
    i = 0
    while True:
        ok, f = cap.read()
        if not ok:
            break
        if i % step == 0:
            yield f
        i += 1
    cap.release()


def main(argv=None) -> int:
    from rich.console import Console
    from rich.table import Table

    from dashcam.alpr import VehicleTracker, iou
    from dashcam.settings import Settings

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--fps", type=float, default=6.0)
    args = ap.parse_args(argv)
    s = Settings(model_dir=model_dir())
    v8 = VehicleTracker(s)
    yx = YoloxNano(model_dir() / "yolox-nano-coco-416.onnx")
    min_w = s.plate_min_vehicle_px
    groups = {
        "road-video": sorted((shared_dir() / "data" / "road-video").glob("*.mp4")),
        "plates-video": sorted((shared_dir() / "data" / "plates-video").rglob("*.avi")),
    }
    t = Table(title=f"vehicle models on the same frames ({args.fps:g} fps sample, conf >= 0.25)")
    for c in (
        "clips",
        "frames",
        "v8n det/frame",
        "yolox det/frame",
        "v8n ms",
        "yolox ms",
        f"only v8n (< / >= {min_w:g} px)",
        f"only yolox (< / >= {min_w:g} px)",
    ):
        t.add_column(c, justify="right")
    for name, paths in groups.items():
        n = d8 = dx = 0
        t8 = tx = 0.0
        o8 = [0, 0]
        ox = [0, 0]
        for p in paths:
            for f in frames(p, args.fps):
                n += 1
                a = time.perf_counter()
                b8 = list(v8.detect(f))  # (box, conf) per vehicle
                t8 += time.perf_counter() - a
                a = time.perf_counter()
                bx = yx.detect(f)
                tx += time.perf_counter() - a
                d8 += len(b8)
                dx += len(bx)
                for mine, other, acc in ((b8, bx, o8), (bx, b8, ox)):
                    for b, _ in mine:
                        if all(iou(b, o) < 0.5 for o, _ in other):
                            acc[(b[2] - b[0]) >= min_w] += 1
        t.add_row(
            f"{name} ({len(paths)})",
            str(n),
            f"{d8 / n:.2f}",
            f"{dx / n:.2f}",
            f"{1000 * t8 / n:.0f}",
            f"{1000 * tx / n:.0f}",
            f"{o8[0]} / {o8[1]}",
            f"{ox[0]} / {ox[1]}",
        )
    Console(width=160).print(t)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
