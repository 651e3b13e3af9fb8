"""ALPR accuracy benchmarks on the shared, labelled data.

Usage::

    .venv/bin/python bench/accuracy.py images [--limit N] [--region us|eu] [--failures]
    .venv/bin/python bench/accuracy.py videos [--limit N] [--category 1|3|4] [--detect-fps F]

``images`` runs :func:`dashcam.alpr.read_array` (same code as ``dashcam read IMAGE``) on every
photo of ``<shared>/data/plates-images/labels.csv`` (openalpr end-to-end benchmark subset, one
labelled plate per photo) and prints, per region and in total:

* ``n``: photos;
* ``capture``: share of photos where some returned plate box has IoU >= 0.5 with the labelled box;
* ``read|captured``: among captured photos, share where that (best-IoU) plate's normalised text
  equals the normalised label exactly;
* ``end-to-end``: share of photos where the best-IoU plate (IoU >= 0.5) is read exactly
  (= capture x read|captured);
* ``e2e O=0 I=1``: end-to-end with ``O``/``0`` and ``I``/``1`` treated as equal (the openalpr
  labels are inconsistent here: US labels write ``0`` in letter runs, EU labels ``O``);
* ``any-text``: share of photos where *any* returned plate text equals the label (box ignored);
* mean ms per photo for each stage (vehicles, plates, ocr).

``videos`` runs the Prefect flow ``ingest`` (the same flow as ``dashcam ingest``, in-process,
ephemeral Prefect API) on every labelled clip of ``<shared>/data/plates-video/labels.csv`` into a
throw-away data dir, and prints per clip: expected plates, the plate events it stored (text and
voted confidence), whether every labelled plate came out exactly once, false plates (events that
match no label) and wall time; then totals: category I clips read exactly (the issue-2 target is
>= 90%), labelled plates read exactly once over all clips, false plates.

The shared folder is ``$DASHCAM_SHARED_DIR`` or ``shared/`` beside the repository root; models
come from ``$DASHCAM_MODEL_DIR`` or ``<shared>/models``.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("YOLO_VERBOSE", "False")  # ultralytics' model-loading chatter


def shared_dir() -> Path:
    return Path(os.environ.get("DASHCAM_SHARED_DIR") or REPO.parent / "shared")


def model_dir() -> Path:
    return Path(os.environ.get("DASHCAM_MODEL_DIR") or shared_dir() / "models")


def cmd_images(args: argparse.Namespace) -> int:
    import cv2
    from rich.console import Console
    from rich.table import Table

    from dashcam.alpr import iou, normalize_plate, read_array
    from dashcam.settings import Settings
    from dashcam.vote import fold

    root = shared_dir() / "data" / "plates-images"
    rows = list(csv.DictReader(open(root / "labels.csv", encoding="utf-8")))
    if args.region:
        rows = [r for r in rows if r["region"] == args.region]
    if args.limit:
        rows = rows[: args.limit]
    settings = Settings(model_dir=model_dir())
    stats: dict[str, dict] = defaultdict(lambda: defaultdict(float))
    failures = []
    console = Console(width=160)
    for r in rows:
        img = cv2.imread(str(root / r["file"]))
        label = normalize_plate(r["plate_text"])
        gt = tuple(float(r[k]) for k in ("x1", "y1", "x2", "y2"))
        tim: dict = {}
        t0 = time.perf_counter()
        res = read_array(img, settings, timings=tim)
        total = 1000 * (time.perf_counter() - t0)
        best = max(res, key=lambda d: iou(d["plate_bbox"], gt), default=None)
        captured = best is not None and iou(best["plate_bbox"], gt) >= 0.5
        correct = captured and best["text"] == label
        folded_ok = captured and fold(best["text"]) == fold(label)
        anytext = any(d["text"] == label for d in res)
        for key in (r["region"], "total"):
            s = stats[key]
            s["n"] += 1
            s["cap"] += captured
            s["ok"] += correct
            s["any"] += anytext
            s["fok"] += folded_ok
            s["ms"] += total
            for k, v in tim.items():
                s["ms_" + k] += v
        if not correct:
            failures.append((r["file"], label, [(d["text"], d["text_conf"], d["raw_text"], round(iou(d["plate_bbox"], gt), 2)) for d in res]))

    t = Table(title=f"plates-images: read_image vs labels ({len(rows)} photos)")
    for c in ("region", "n", "capture", "read|captured", "end-to-end", "e2e O=0 I=1", "any-text", "ms/photo", "veh ms", "plate ms", "ocr ms"):
        t.add_column(c, justify="right")
    for key in sorted(k for k in stats if k != "total") + ["total"]:
        s = stats[key]
        n = s["n"]
        t.add_row(
            key,
            str(int(n)),
            f"{s['cap'] / n:.1%}",
            f"{s['ok'] / s['cap']:.1%}" if s["cap"] else "-",
            f"{s['ok'] / n:.1%}",
            f"{s['fok'] / n:.1%}",
            f"{s['any'] / n:.1%}",
            f"{s['ms'] / n:.0f}",
            f"{s['ms_vehicles'] / n:.0f}",
            f"{s['ms_plates'] / n:.0f}",
            f"{s['ms_ocr'] / n:.1f}",
        )
    console.print(t)
    if args.failures:
        for f in failures:
            console.print(f, highlight=False)
    return 0


def cmd_videos(args: argparse.Namespace) -> int:
    import tempfile

    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "ERROR")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("YOLO_VERBOSE", "False")
    from rich.console import Console
    from rich.table import Table

    from dashcam.alpr import normalize_plate
    from dashcam.settings import Settings
    from flows.ingest import ingest

    root = shared_dir() / "data" / "plates-video"
    clips: dict[str, dict] = {}
    with open(root / "labels.csv", newline="") as f:
        for row in csv.DictReader(f):
            c = clips.setdefault(row["file"], {"category": row["category"], "plates": []})
            if row["plate_text"]:
                c["plates"].append(normalize_plate(row["plate_text"]))
    items = [(k, v) for k, v in clips.items() if v["plates"] and (not args.category or v["category"] == str(args.category))]
    if args.limit:
        items = items[: args.limit]
    console = Console(width=160)
    settings = Settings(data_dir=Path(tempfile.mkdtemp(prefix="dashcam-bench-")), model_dir=model_dir(),
                        camera_tz="UTC", **({"detect_fps": args.detect_fps} if args.detect_fps else {}))
    t = Table(title=f"ingest over labelled clips (detect_fps {settings.detect_fps})")
    for col in ("clip", "cat", "expected", "got (confidence)", "exact", "false", "wall s"):
        t.add_column(col)
    stats = defaultdict(lambda: [0, 0])  # category -> [clips exact, clips]
    n_plates = n_plates_ok = n_false = 0
    t_all = time.perf_counter()
    for name, clip in items:
        t0 = time.perf_counter()
        try:
            [summary] = ingest([str(root / name)], settings=settings)
            got = summary.plates
        except Exception as exc:  # noqa: BLE001 - a failing clip is a row of the table
            got = [(f"ERROR {exc}"[:40], 0.0)]
        wall = time.perf_counter() - t0
        texts = [p for p, _ in got]
        ok = [p for p in clip["plates"] if texts.count(p) == 1]
        false = [p for p in texts if p not in clip["plates"]]
        exact = len(ok) == len(clip["plates"])
        stats[clip["category"]][0] += exact
        stats[clip["category"]][1] += 1
        n_plates += len(clip["plates"])
        n_plates_ok += len(ok)
        n_false += len(false)
        t.add_row(Path(name).name, clip["category"], " ".join(clip["plates"]),
                  " ".join(f"{p} ({c:.2f})" for p, c in got) or "-", "yes" if exact else "NO",
                  str(len(false)), f"{wall:.1f}")
    console.print(t)
    tot = Table(title=f"totals ({len(items)} clips, {time.perf_counter() - t_all:.0f} s)")
    for col in ("measure", "value"):
        tot.add_column(col)
    for cat, (ok_, n_) in sorted(stats.items()):
        tot.add_row(f"category {cat}: clips with every labelled plate exactly once", f"{ok_}/{n_} = {ok_ / n_:.0%}")
    tot.add_row("labelled plates read exactly once", f"{n_plates_ok}/{n_plates} = {n_plates_ok / max(n_plates, 1):.0%}")
    tot.add_row("false plates (events matching no label)", str(n_false))
    console.print(tot)
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("images", help="read_image over plates-images/labels.csv")
    p.add_argument("--limit", type=int, default=0, help="first N photos only")
    p.add_argument("--region", choices=["us", "eu"], default=None)
    p.add_argument("--failures", action="store_true", help="print every photo not read exactly")
    p.set_defaults(func=cmd_images)
    p = sub.add_parser("videos", help="the ingest flow over plates-video/labels.csv")
    p.add_argument("--limit", type=int, default=0, help="first N clips only")
    p.add_argument("--category", type=int, choices=[1, 3, 4], default=None)
    p.add_argument("--detect-fps", type=float, default=None)
    p.set_defaults(func=cmd_videos)
    args = ap.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
