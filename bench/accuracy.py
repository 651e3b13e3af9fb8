"""ALPR accuracy benchmarks on the shared, labelled data.

Usage::

    .venv/bin/python bench/accuracy.py images [--limit N] [--region us|eu] [--per-region] [--failures]
    .venv/bin/python bench/accuracy.py videos [--limit N] [--category 1|3|4] [--detect-fps F]
    .venv/bin/python bench/accuracy.py frames [--limit N] [--category 1|3|4] [--failures]
    .venv/bin/python bench/accuracy.py ocr [--limit N] [--repeat R]

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
* the photos are read with the default settings (``plate_formats`` ``auto``: with no GPS, the
  country of this machine's timezone, else no prior; ``DASHCAM_*`` variables apply), or with
  ``--per-region`` each region with its plate-format prior (``US`` for the US photos, ``NL,EU``
  for the EU ones), as OpenALPR's benchmark runs with its country flag;
* mean ms per photo for each stage (vehicles, plates, ocr);

then a **character confusion table** over the captured-but-misread plates: each label/read pair
is aligned with :class:`difflib.SequenceMatcher` and every substituted, dropped (read ``-``) or
inserted (truth ``-``) character span is counted, most frequent first.

``frames`` does the same per *annotated frame* of the clips (``plates-video/boxes.csv``: 274
frames with a labelled plate box and text): each frame is decoded and read with
:func:`dashcam.alpr.read_array` (no tracking, no voting), giving per-frame **capture** (a plate box
with IoU >= 0.5) and per-frame exact read per clip category, plus the confusion table. This is the
single-frame quality that the tracker's vote in ``videos`` starts from.

``videos`` runs the Prefect flow ``ingest`` (the same flow as ``dashcam ingest``, in-process,
ephemeral Prefect API) on every labelled clip of ``<shared>/data/plates-video/labels.csv`` into a
throw-away data dir, and prints per clip: expected plates, the plate events it stored (text and
voted confidence), whether every labelled plate came out exactly once, false plates (events that
match no label) and wall time; then totals: category I clips read exactly (the issue-2 target is
>= 90%), labelled plates read exactly once over all clips, false plates and their share of all
stored plate events (issue-5 target <= 5%).

``ocr`` compares the OCR engines alone on the **labelled** plate boxes of plates-images (no
detection): per engine, recogniser crops per plate read, wall ms per plate read (all crop
variants, batched as the pipeline does, after an untimed warm-up; best of ``--repeat`` passes)
and exact read (no format prior; folded O=0 I=1 too).

The shared folder is ``$DASHCAM_SHARED_DIR`` or ``shared/`` beside the repository root; models
come from ``$DASHCAM_MODEL_DIR`` or ``<shared>/models``.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("YOLO_VERBOSE", "False")  # ultralytics' model-loading chatter


# Settings.plate_formats per plates-images region (the photos' region is known, as a user's is)
REGION_FORMATS = {"us": ("US",), "eu": ("NL", "EU")}


def shared_dir() -> Path:
    return Path(os.environ.get("DASHCAM_SHARED_DIR") or REPO.parent / "shared")


def csv_rows(path: Path) -> list[dict[str, str]]:
    """The rows of a CSV file with a header line (UTF-8), as dicts; the file is closed again."""
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def model_dir() -> Path:
    return Path(os.environ.get("DASHCAM_MODEL_DIR") or shared_dir() / "models")


def match(res: list[dict], gt, label: str) -> tuple[dict | None, bool, bool]:
    """``(best, captured, correct)`` for the plates ``res`` of :func:`dashcam.alpr.read_array`
    against one labelled box ``gt`` (x1, y1, x2, y2 px) and text: ``best`` has the highest IoU,
    ``captured`` = that IoU >= 0.5, ``correct`` = captured and its text equals ``label``."""
    from dashcam.alpr import iou

    best = max(res, key=lambda d: iou(d["plate_bbox"], gt), default=None)
    captured = best is not None and iou(best["plate_bbox"], gt) >= 0.5
    return best, captured, captured and best["text"] == label


def confusion(pairs: list[tuple[str, str]]) -> Counter[tuple[str, str]]:
    """Character error spans of ``(truth, read)`` pairs: ``{(truth_span, read_span): count}``
    from :class:`difflib.SequenceMatcher` opcodes (``"-"`` for an empty side: a dropped or an
    inserted character run). Identical pairs contribute nothing."""
    from difflib import SequenceMatcher

    out: Counter = Counter()
    for truth, read in pairs:
        for op, i1, i2, j1, j2 in SequenceMatcher(None, truth, read, autojunk=False).get_opcodes():
            if op == "equal":
                continue
            a, b = truth[i1:i2] or "-", read[j1:j2] or "-"
            if op == "replace" and i2 - i1 == j2 - j1:  # per-character substitutions
                for x, y in zip(a, b, strict=True):
                    out[(x, y)] += 1
            else:
                out[(a, b)] += 1
    return out


def print_confusion(console, pairs: list[tuple[str, str]], title: str, top: int = 20) -> None:
    """Print :func:`confusion` of ``pairs`` as a table (most frequent ``top`` spans)."""
    from rich.table import Table

    conf = confusion(pairs)
    t = Table(title=f"{title}: character errors on {len(pairs)} misread plates ({sum(conf.values())} spans)")
    for c in ("truth", "read", "count", "", "truth ", "read ", "count "):
        t.add_column(c, justify="right")
    items = conf.most_common(top)
    half = (len(items) + 1) // 2
    for i in range(half):
        left = items[i]
        right = items[i + half] if i + half < len(items) else None
        t.add_row(
            left[0][0],
            left[0][1],
            str(left[1]),
            "",
            *((right[0][0], right[0][1], str(right[1])) if right else ("", "", "")),
        )
    console.print(t)


def cmd_images(args: argparse.Namespace) -> int:
    import cv2
    from rich.console import Console
    from rich.table import Table

    from dashcam.alpr import iou, normalize_plate, read_array
    from dashcam.settings import Settings
    from dashcam.vote import fold

    root = shared_dir() / "data" / "plates-images"
    rows = csv_rows(root / "labels.csv")
    if args.region:
        rows = [r for r in rows if r["region"] == args.region]
    if args.limit:
        rows = rows[: args.limit]
    if args.per_region:  # each region with its plate formats, as OpenALPR's benchmark runs with -c us / -c eu
        by_region = {reg: Settings(model_dir=model_dir(), plate_formats=fmts) for reg, fmts in REGION_FORMATS.items()}
    else:  # what a new user gets: default settings
        by_region = dict.fromkeys(REGION_FORMATS, Settings(model_dir=model_dir()))
    stats: dict[str, dict] = defaultdict(lambda: defaultdict(float))
    failures, misreads = [], []
    console = Console(width=160)
    for r in rows:
        img = cv2.imread(str(root / r["file"]))
        label = normalize_plate(r["plate_text"])
        gt = tuple(float(r[k]) for k in ("x1", "y1", "x2", "y2"))
        tim: dict = {}
        t0 = time.perf_counter()
        res = read_array(img, by_region[r["region"]], timings=tim)
        total = 1000 * (time.perf_counter() - t0)
        best, captured, correct = match(res, gt, label)
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
        if captured and not correct:
            misreads.append((label, best["text"]))
        if not correct:
            failures.append(
                (
                    r["file"],
                    label,
                    [(d["text"], d["text_conf"], d["raw_text"], round(iou(d["plate_bbox"], gt), 2)) for d in res],
                )
            )

    mode = "per-region plate formats" if args.per_region else "default settings"
    t = Table(title=f"plates-images: read_image vs labels ({len(rows)} photos, {mode})")
    for c in (
        "region",
        "n",
        "capture",
        "read|captured",
        "end-to-end",
        "e2e O=0 I=1",
        "any-text",
        "ms/photo",
        "veh ms",
        "plate ms",
        "ocr ms",
    ):
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
    print_confusion(console, misreads, "photos")
    if args.failures:
        for f in failures:
            console.print(f, highlight=False)
    return 0


def cmd_ocr(args: argparse.Namespace) -> int:
    import cv2
    from rich.console import Console
    from rich.table import Table

    from dashcam.alpr import PlateReader, normalize_plate
    from dashcam.settings import Settings
    from dashcam.vote import fold

    root = shared_dir() / "data" / "plates-images"
    rows = csv_rows(root / "labels.csv")
    if args.limit:
        rows = rows[: args.limit]
    imgs = [cv2.imread(str(root / r["file"])) for r in rows]
    boxes = [tuple(float(r[k]) for k in ("x1", "y1", "x2", "y2")) for r in rows]
    labels = [normalize_plate(r["plate_text"]) for r in rows]
    t = Table(title=f"OCR alone on {len(rows)} labelled plate boxes (no detection, no format prior)")
    for c in ("engine", "crops/plate", "ms/plate read", "exact", "exact O=0 I=1"):
        t.add_column(c, justify="right")
    ms = {}
    for engine in ("rapidocr", "plate"):
        reader = PlateReader(Settings(model_dir=model_dir(), ocr_engine=engine))
        reader.read_boxes(imgs[0], [boxes[0]])  # warm-up
        best, texts = float("inf"), []
        for _ in range(max(1, args.repeat)):
            t0 = time.perf_counter()
            texts = [reader.read_boxes(img, [b])[0].text for img, b in zip(imgs, boxes, strict=True)]
            best = min(best, time.perf_counter() - t0)
        ms[engine] = 1000 * best / len(rows)
        ok = sum(a == b for a, b in zip(texts, labels, strict=True))
        fok = sum(fold(a) == fold(b) for a, b in zip(texts, labels, strict=True))
        t.add_row(
            engine, str(len(reader.variants)), f"{ms[engine]:.1f}", f"{ok / len(rows):.1%}", f"{fok / len(rows):.1%}"
        )
    Console(width=160).print(t)
    print(f"OCR cost per plate read, rapidocr / plate: {ms['rapidocr'] / ms['plate']:.1f}x")
    return 0


def annotated_frames(root: Path, category: int | None = None, limit: int = 0):
    """Yield ``(clip, category, frame_idx, label, gt_bbox, frame_bgr)`` for every row of
    ``plates-video/boxes.csv`` (frames decoded sequentially with OpenCV, one clip at a time)."""
    import cv2

    from dashcam.alpr import normalize_plate

    cats = {}
    with open(root / "labels.csv", newline="") as f:
        for row in csv.DictReader(f):
            cats[row["file"]] = row["category"]
    want: dict[str, dict[int, list]] = defaultdict(dict)
    with open(root / "boxes.csv", newline="") as f:
        for row in csv.DictReader(f):
            if category and cats.get(row["file"]) != str(category):
                continue
            gt = tuple(float(row[k]) for k in ("x1", "y1", "x2", "y2"))
            want[row["file"]].setdefault(int(row["clip_frame"]), []).append((normalize_plate(row["plate_text"]), gt))
    n = 0
    for clip, frames in want.items():
        cap = cv2.VideoCapture(str(root / clip))
        idx = 0
        try:
            while idx <= max(frames):
                ok, frame = cap.read()
                if not ok:
                    break
                for label, gt in frames.get(idx, []):
                    yield clip, cats.get(clip, "?"), idx, label, gt, frame
                    n += 1
                    if limit and n >= limit:
                        return
                idx += 1
        finally:
            cap.release()


def cmd_frames(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from dashcam.alpr import read_array
    from dashcam.settings import Settings

    root = shared_dir() / "data" / "plates-video"
    settings = Settings(model_dir=model_dir())
    stats: dict[str, dict] = defaultdict(lambda: defaultdict(float))
    misreads, failures = [], []
    console = Console(width=160)
    for clip, cat, idx, label, gt, frame in annotated_frames(root, args.category, args.limit):
        t0 = time.perf_counter()
        res = read_array(frame, settings)
        ms = 1000 * (time.perf_counter() - t0)
        best, captured, correct = match(res, gt, label)
        if label and captured and not correct:
            misreads.append((label, best["text"]))
        if label and not correct:
            failures.append((Path(clip).name, idx, label, best["text"] if captured else None))
        for key in (f"category {cat}", "total"):
            s = stats[key]
            s["n"] += 1
            s["cap"] += captured
            s["ms"] += ms
            if label:  # 4 boxes in boxes.csv have no text: capture only
                s["nl"] += 1
                s["capl"] += captured
                s["ok"] += correct
    t = Table(title="plates-video annotated frames: read_array per frame vs boxes.csv")
    for c in ("clips", "frames", "capture (IoU >= 0.5)", "read|captured", "per-frame exact (labelled)", "ms/frame"):
        t.add_column(c, justify="right")
    for key in sorted(k for k in stats if k != "total") + ["total"]:
        s = stats[key]
        n = s["n"]
        t.add_row(
            key,
            str(int(n)),
            f"{s['cap'] / n:.1%}",
            f"{s['ok'] / s['capl']:.1%}" if s["capl"] else "-",
            f"{s['ok'] / s['nl']:.1%}" if s["nl"] else "-",
            f"{s['ms'] / n:.0f}",
        )
    console.print(t)
    print_confusion(console, misreads, "annotated frames")
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
    items = [
        (k, v) for k, v in clips.items() if v["plates"] and (not args.category or v["category"] == str(args.category))
    ]
    if args.limit:
        items = items[: args.limit]
    console = Console(width=160)
    settings = Settings(
        data_dir=Path(tempfile.mkdtemp(prefix="dashcam-bench-")),
        model_dir=model_dir(),
        camera_tz="UTC",
        **({"detect_fps": args.detect_fps} if args.detect_fps else {}),
    )
    t = Table(title=f"ingest over labelled clips (detect_fps {settings.detect_fps})")
    for col in ("clip", "cat", "expected", "got (confidence)", "exact", "false", "wall s"):
        t.add_column(col)
    stats = defaultdict(lambda: [0, 0])  # category -> [clips exact, clips]
    n_plates = n_plates_ok = n_false = n_events = 0
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
        n_events += len(texts)
        t.add_row(
            Path(name).name,
            clip["category"],
            " ".join(clip["plates"]),
            " ".join(f"{p} ({c:.2f})" for p, c in got) or "-",
            "yes" if exact else "NO",
            str(len(false)),
            f"{wall:.1f}",
        )
    console.print(t)
    tot = Table(title=f"totals ({len(items)} clips, {time.perf_counter() - t_all:.0f} s)")
    for col in ("measure", "value"):
        tot.add_column(col)
    for cat, (ok_, n_) in sorted(stats.items()):
        tot.add_row(f"category {cat}: clips with every labelled plate exactly once", f"{ok_}/{n_} = {ok_ / n_:.0%}")
    tot.add_row("labelled plates read exactly once", f"{n_plates_ok}/{n_plates} = {n_plates_ok / max(n_plates, 1):.0%}")
    tot.add_row(
        "false plates (events matching no label) / all events",
        f"{n_false}/{n_events} = {n_false / max(n_events, 1):.0%}",
    )
    console.print(tot)
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("images", help="read_image over plates-images/labels.csv")
    p.add_argument("--limit", type=int, default=0, help="first N photos only")
    p.add_argument("--region", choices=["us", "eu"], default=None)
    p.add_argument("--per-region", action="store_true", help="read each region with its plate formats (US / NL,EU)")
    p.add_argument("--failures", action="store_true", help="print every photo not read exactly")
    p.set_defaults(func=cmd_images)
    p = sub.add_parser("frames", help="read_array on each annotated frame of plates-video/boxes.csv")
    p.add_argument("--limit", type=int, default=0, help="first N annotated frames only")
    p.add_argument("--category", type=int, choices=[1, 3, 4], default=None)
    p.add_argument("--failures", action="store_true", help="print every frame not read exactly")
    p.set_defaults(func=cmd_frames)
    p = sub.add_parser("ocr", help="OCR engines alone on the labelled plate boxes: cost and exact read")
    p.add_argument("--limit", type=int, default=0, help="first N photos only")
    p.add_argument("--repeat", type=int, default=2, help="timed passes per engine (best kept)")
    p.set_defaults(func=cmd_ocr)
    p = sub.add_parser("videos", help="the ingest flow over plates-video/labels.csv")
    p.add_argument("--limit", type=int, default=0, help="first N clips only")
    p.add_argument("--category", type=int, choices=[1, 3, 4], default=None)
    p.add_argument("--detect-fps", type=float, default=None)
    p.set_defaults(func=cmd_videos)
    args = ap.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
