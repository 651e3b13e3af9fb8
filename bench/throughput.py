"""Throughput and memory benchmark of the heavy stage (:func:`dashcam.pipeline.analyze`).

Usage::

    .venv/bin/python bench/throughput.py [--inputs VIDEO ...] [--detect-fps F] [--csv OUT]
                                         [--series] [--series-lengths 10,60,600] [--series-source VIDEO]
                                         [--dashcam-formats] [--dashcam-seconds 60]

Each input video is probed and run through ``dashcam.pipeline.analyze`` **in-process** (no Prefect,
no database, no archive encode: only decode -> vehicles + tracking -> plates -> OCR and the writing
of its records/crops into a throw-away work folder). Before anything is timed, one warm-up
``analyze`` runs on a tiny input (the first second of plates-video ``Categorie I/Video13_2.avi``,
not one of the default inputs, cut with ffmpeg into the temp folder): that loads the vehicle,
plate and OCR models (cached per process by ``dashcam.models``) and pays onnxruntime's
first-inference cost, so model loading is *not* in the timed figures. Right after each
``analyze`` the same file is decoded by ffmpeg alone (:func:`dashcam.video.decode_only_seconds`:
full decode to ``null``) in the same run, so both figures see the same machine load.

Columns (one row per input):

* ``input``: file name; ``WxH``: decoded frame size (pixels);
* ``video s``: the video's duration (seconds, from probe);
* ``wall s``: wall-clock seconds of ``analyze`` (``perf_counter`` around the call);
* ``RTF``: real-time factor = video seconds / wall second (>= 1 means faster than real time);
* ``decode s``: wall seconds of ffmpeg decode-only of the same file;
* ``x decode``: wall s / decode s (how many times slower than pure decoding; issue-5 target <= 3);
* ``dec fr/s``: source frames covered per wall second (``AnalyzeResult.frames_decoded`` / wall);
* ``ana fr/s``: frames actually analysed per wall second (``frames_analyzed`` / wall; about
  ``detect_fps`` x RTF);
* ``veh/s``: vehicle detections (tracked boxes summed over analysed frames) per wall second;
* ``plate det/s``: vehicle crops sent to the plate detector per wall second (the vehicles that
  :class:`dashcam.alpr.PlateReadScheduler` chose; each costs one plate-detector call);
* ``reads/s``: plate reads (plates detected in tracked vehicles that OCR read as non-empty text)
  per wall second;
* ``peak RSS MiB``: maximum resident set size of *this Python process* while that input was
  analysed (psutil, sampled every 50 ms in a background thread; MiB = 2^20 bytes). The ffmpeg
  decoder subprocess is not included (its own RSS is small and does not grow with length).
  Because models stay loaded, this includes the ~models + runtime baseline; ``RSS before`` is the
  RSS just before the call.

``--series`` adds a memory-vs-length series: ``--series-source`` (default the Udacity
``solidWhiteRight`` road clip) is repeated with ffmpeg's concat demuxer (``-c copy``, no re-encode)
and cut to each of ``--series-lengths`` seconds (default ``10,60,600``), each run like the inputs
above; the last line gives the peak-RSS change from the shortest to the longest in % (issue-5
target: within 10%). Note a 600 s input takes on the order of an hour on a 2-core CPU.

``--dashcam-formats`` (issue 17) runs the dashcam-format clips of ``bench/dashcam_formats.py``
instead of the default inputs (made on first use and cached under ``bench/out/dashcam_formats/``;
60 s, 30 fps: 1080p H.264, 1440p HEVC, 2160p HEVC, and a Viofo-named front/rear pair, front 1440p
HEVC + rear 1080p H.264, all **upscaled from the 960x540 highway clip**, which the table title
says). Its table has the columns above that matter for the decoder plus ``codec``, ``decoder``
(``AnalyzeResult.decoder``: backend, hwaccel, threads), ``dec wait s`` (``AnalyzeResult.decode_wait_s``:
seconds the frame loop waited for the decoder, i.e. how much of the wall time decode was the
limit) and ``EP`` (the onnxruntime execution
provider(s) of the loaded sessions), and one extra ``pair`` line for the front+rear segment:
video s = one segment (60 s), wall s and decode s = the sums over both files (run one after the
other), RTF = segment s / summed wall, peak RSS = the larger. The decode-only figure uses the
hwaccel the pipeline ran with (CPU here).

Any :class:`dashcam.settings.Settings` field can be changed for a run through its ``DASHCAM_*``
environment variable (e.g. ``DASHCAM_PLATE_SETTLE_READS=0 DASHCAM_PLATE_CROP_IMGSZ=640`` for the
issue-2 plate-reading policy); the first line printed lists the ones that matter here.

The machines this runs on are shared and noisy: compare the **ratios** (``RTF``, ``x decode``,
RSS change in %), not the seconds, between runs or machines.

Output: one Rich table per part, and a CSV (default ``bench/out/throughput.csv``, one row per
input, ``kind`` = ``input`` or ``series``). Shared data: ``$DASHCAM_SHARED_DIR`` or ``shared/``
beside the repository root; models from ``$DASHCAM_MODEL_DIR`` or ``<shared>/models``.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("YOLO_VERBOSE", "False")  # ultralytics' model-loading chatter
os.environ.setdefault("YOLO_OFFLINE", "1")

MIB = 1024 * 1024


def shared_dir() -> Path:
    return Path(os.environ.get("DASHCAM_SHARED_DIR") or REPO.parent / "shared")


def model_dir() -> Path:
    return Path(os.environ.get("DASHCAM_MODEL_DIR") or shared_dir() / "models")


def default_inputs() -> list[Path]:
    data = shared_dir() / "data"
    road = sorted((data / "road-video").glob("*.mp4"))
    plates = [
        data / "plates-video" / "TrainingSet" / "Categorie I" / "Video10_2.avi",
        data / "plates-video" / "TrainingSet" / "Categorie III" / "Video100_2.avi",
    ]
    return road + [p for p in plates if p.exists()]


class PeakRSS:
    """Sample this process's RSS every ``interval`` s in a daemon thread; ``peak`` is the max (bytes)."""

    def __init__(self, interval: float = 0.05):
        import psutil

        self._proc = psutil.Process()
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        self.peak = max(self.peak, self._proc.memory_info().rss)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> PeakRSS:
        self._sample()
        self._t.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._t.join()
        self._sample()


def providers() -> str:
    """The onnxruntime execution providers of the models loaded so far (:func:`dashcam.models.execution_providers`),
    short names joined by ``+``, e.g. ``CPU`` or ``CUDA+CPU``; ``-`` before any model is loaded."""
    from dashcam.models import execution_providers

    eps = sorted({ep.removesuffix("ExecutionProvider") for ep in execution_providers().values()})
    return "+".join(eps) or "-"


def _hw_of(decoder: str | None) -> str | None:
    """The hwaccel method in an ``AnalyzeResult.decoder`` string (None: CPU)."""
    for part in (decoder or "").split():
        if part.startswith("hwaccel="):
            return None if part == "hwaccel=none" else part.split("=", 1)[1]
    return None


def measure(path: Path, settings, work_root: Path) -> dict:
    """Run analyze on ``path`` (timed, RSS sampled), then ffmpeg decode-only on it; one result row."""
    import psutil

    from dashcam.pipeline import analyze
    from dashcam.video import decode_only_seconds, probe

    info = probe(path)
    rss_before = psutil.Process().memory_info().rss
    with PeakRSS() as mon:
        t0 = time.perf_counter()
        res = analyze(info, settings, work_root)
        wall = time.perf_counter() - t0
    dec = decode_only_seconds(path, hwaccel=_hw_of(res.decoder))
    return {
        "input": path.name,
        "WxH": f"{info.width}x{info.height}",
        "codec": info.codec,
        "decoder": res.decoder or "-",
        "wait_s": res.decode_wait_s if res.decode_wait_s is not None else float("nan"),
        "video_s": info.duration_s,
        "frames_decoded": res.frames_decoded,
        "frames_analyzed": res.frames_analyzed,
        "vehicle_detections": res.n_vehicle_detections,
        "plate_reads": res.n_plate_reads,
        "plate_tries": res.n_plate_tries,
        "wall_s": wall,
        "rtf": info.duration_s / wall,
        "decode_s": dec,
        "x_decode": wall / dec,
        "dec_fps": res.frames_decoded / wall,
        "ana_fps": res.frames_analyzed / wall,
        "veh_per_s": res.n_vehicle_detections / wall,
        "tries_per_s": res.n_plate_tries / wall,
        "reads_per_s": res.n_plate_reads / wall,
        "rss_before_mib": rss_before / MIB,
        "peak_rss_mib": mon.peak / MIB,
    }


COLUMNS = [
    ("input", "input", "{}"),
    ("WxH", "WxH", "{}"),
    ("video s", "video_s", "{:.1f}"),
    ("wall s", "wall_s", "{:.1f}"),
    ("RTF", "rtf", "{:.2f}"),
    ("decode s", "decode_s", "{:.2f}"),
    ("x decode", "x_decode", "{:.0f}"),
    ("dec fr/s", "dec_fps", "{:.1f}"),
    ("ana fr/s", "ana_fps", "{:.2f}"),
    ("veh/s", "veh_per_s", "{:.1f}"),
    ("plate det/s", "tries_per_s", "{:.2f}"),
    ("reads/s", "reads_per_s", "{:.2f}"),
    ("RSS before MiB", "rss_before_mib", "{:.0f}"),
    ("peak RSS MiB", "peak_rss_mib", "{:.0f}"),
]


DASHCAM_COLUMNS = [
    ("input", "input", "{}"),
    ("WxH", "WxH", "{}"),
    ("codec", "codec", "{}"),
    ("video s", "video_s", "{:.1f}"),
    ("wall s", "wall_s", "{:.1f}"),
    ("RTF", "rtf", "{:.2f}"),
    ("decode s", "decode_s", "{:.2f}"),
    ("x decode", "x_decode", "{:.2f}"),
    ("dec fr/s", "dec_fps", "{:.1f}"),
    ("ana fr/s", "ana_fps", "{:.2f}"),
    ("dec wait s", "wait_s", "{:.1f}"),
    ("peak RSS MiB", "peak_rss_mib", "{:.0f}"),
    ("decoder", "decoder", "{}"),
    ("EP", "ep", "{}"),
]


def table(title: str, rows: list[dict], columns=COLUMNS):
    from rich.table import Table

    t = Table(title=title)
    for name, _, _ in columns:
        t.add_column(name, justify="left" if name in ("input", "decoder") else "right")
    for r in rows:
        t.add_row(*(fmt.format(r[key]) for _, key, fmt in columns))
    return t


def markdown(rows: list[dict], columns) -> str:
    """The rows as a Markdown table (what docs/performance.md quotes)."""
    head = "| " + " | ".join(n for n, _, _ in columns) + " |"
    sep = "|" + "---|" * len(columns)
    body = ["| " + " | ".join(fmt.format(r[k]) for _, k, fmt in columns) + " |" for r in rows]
    return "\n".join([head, sep, *body])


def pair_row(front: dict, rear: dict) -> dict:
    """One line for a front+rear segment: both files' wall and decode seconds summed (they ran one
    after the other), video s = the segment length, RTF = segment s / summed wall."""
    wall, dec = front["wall_s"] + rear["wall_s"], front["decode_s"] + rear["decode_s"]
    frames = front["frames_decoded"] + rear["frames_decoded"]
    analysed = front["frames_analyzed"] + rear["frames_analyzed"]
    return {
        **{k: front[k] for k in ("decoder", "ep")},
        "input": "pair F+R (one segment)",
        "WxH": f"{front['WxH']}+{rear['WxH']}",
        "codec": f"{front['codec']}+{rear['codec']}",
        "video_s": max(front["video_s"], rear["video_s"]),
        "wall_s": wall,
        "rtf": max(front["video_s"], rear["video_s"]) / wall,
        "decode_s": dec,
        "x_decode": wall / dec,
        "dec_fps": frames / wall,
        "ana_fps": analysed / wall,
        "peak_rss_mib": max(front["peak_rss_mib"], rear["peak_rss_mib"]),
        "wait_s": front["wait_s"] + rear["wait_s"],
        "kind": "pair",
    }


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


def make_tiny(src: Path, dst: Path, seconds: float = 1.0) -> Path:
    _ffmpeg("-i", str(src), "-t", str(seconds), "-c", "copy", str(dst))
    return dst


def make_long(src: Path, seconds: float, tmp: Path) -> Path:
    """``src`` repeated with the concat demuxer (stream copy) and cut to ``seconds``."""
    from dashcam.video import probe

    dur = probe(src).duration_s
    n = int(seconds // dur) + 1
    lst = tmp / f"concat_{int(seconds)}.txt"
    lst.write_text("".join(f"file '{src.resolve()}'\n" for _ in range(n)))
    out = tmp / f"{src.stem}_{int(seconds)}s{src.suffix}"
    _ffmpeg("-f", "concat", "-safe", "0", "-i", str(lst), "-t", str(seconds), "-c", "copy", str(out))
    return out


def run_dashcam_formats(args, settings, work: Path, console) -> list[dict]:
    """Make/find the dashcam-format clips, measure each (and the pair), print the table."""
    from bench.dashcam_formats import UPSCALED_NOTE, make_all

    made = make_all(seconds=args.dashcam_seconds, log=console.print)
    only = {x.strip() for x in args.dashcam_only.split(",") if x.strip()}
    rows: list[dict] = []
    for p in made["singles"]:
        if only and not any(k in p.name for k in only):
            continue
        r = measure(p, settings, work)
        r["ep"], r["kind"] = providers(), "dashcam"
        rows.append(r)
        console.print(f"  {r['input']}: {r['wall_s']:.1f} s")
    if not only or "pair" in only:
        pair = []
        for p in made["pair"]:
            r = measure(p, settings, work)
            r["ep"], r["kind"] = providers(), "dashcam"
            pair.append(r)
            rows.append(r)
            console.print(f"  {r['input']}: {r['wall_s']:.1f} s")
        rows.append(pair_row(*pair))
    title = (
        f"dashcam formats, {args.dashcam_seconds:.0f} s at 30 fps, {UPSCALED_NOTE} "
        f"(detect_fps {settings.detect_fps}, {os.cpu_count()} cpus)"
    )
    console.print(table(title, rows, DASHCAM_COLUMNS))
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(f"{title}\n\n{markdown(rows, DASHCAM_COLUMNS)}\n", encoding="utf-8")
        console.print(f"Markdown: {args.markdown}")
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--inputs",
        nargs="*",
        type=Path,
        default=None,
        help="videos to measure (default: the 3 road clips + 2 plates-video clips); "
        "pass --inputs with no file to run the series only",
    )
    ap.add_argument(
        "--detect-fps", type=float, default=None, help="analysed frames per video second (default: Settings)"
    )
    ap.add_argument("--csv", type=Path, default=REPO / "bench" / "out" / "throughput.csv")
    ap.add_argument("--series", action="store_true", help="also run the memory-vs-length series")
    ap.add_argument("--series-lengths", default="10,60,600", help="series lengths in seconds, comma-separated")
    ap.add_argument(
        "--series-source", type=Path, default=shared_dir() / "data" / "road-video" / "udacity_solidWhiteRight.mp4"
    )
    ap.add_argument(
        "--dashcam-formats",
        action="store_true",
        help="run the dashcam-format clips (1080p H.264, 1440p/2160p HEVC, a front/rear pair; made and cached "
        "by bench/dashcam_formats.py) instead of the default inputs",
    )
    ap.add_argument("--dashcam-seconds", type=float, default=60.0, help="length of the dashcam-format clips")
    ap.add_argument("--dashcam-only", default="", help="comma-separated subset: 1080p,1440p,2160p,pair")
    ap.add_argument("--markdown", type=Path, default=None, help="also write the dashcam table as Markdown here")
    args = ap.parse_args(argv)
    if args.dashcam_formats and args.csv == ap.get_default("csv"):
        args.csv = REPO / "bench" / "out" / "throughput_dashcam.csv"

    from rich.console import Console

    from dashcam.pipeline import analyze
    from dashcam.settings import Settings
    from dashcam.video import probe

    console = Console(width=200)
    inputs = args.inputs if args.inputs is not None else [] if args.dashcam_formats else default_inputs()
    kw = {"detect_fps": args.detect_fps} if args.detect_fps else {}
    settings = Settings(model_dir=model_dir(), **kw)
    console.print(
        f"detect_fps={settings.detect_fps}  models={settings.vehicle_model}, {settings.plate_model}, "
        f"{settings.ocr_engine}  plate_crop_imgsz={settings.plate_crop_imgsz}  "
        f"plate_min_vehicle_px={settings.plate_min_vehicle_px}  plate_settle_reads={settings.plate_settle_reads}  "
        f"plate_retry_s={settings.plate_retry_s}  hwaccel={settings.hwaccel}  "
        f"decode_threads={settings.decode_threads}  cpus={os.cpu_count()}"
    )
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="dashcam-throughput-") as td:
        tmp = Path(td)
        work = tmp / "work"
        # warm-up: load the three models and run their first inference, untimed
        warm_src = shared_dir() / "data" / "plates-video" / "TrainingSet" / "Categorie I" / "Video13_2.avi"
        t0 = time.perf_counter()
        analyze(probe(make_tiny(warm_src, tmp / "warmup.avi")), settings, work)
        console.print(f"warm-up (model load + first inference, untimed below): {time.perf_counter() - t0:.1f} s")

        for p in inputs:
            r = measure(Path(p), settings, work)
            r["kind"] = "input"
            rows.append(r)
            console.print(f"  {r['input']}: {r['wall_s']:.1f} s")
        if inputs:
            console.print(
                table(
                    f"analyze throughput (detect_fps {settings.detect_fps})", [r for r in rows if r["kind"] == "input"]
                )
            )

        if args.dashcam_formats:
            rows += run_dashcam_formats(args, settings, work, console)

        if args.series:
            lengths = [float(x) for x in args.series_lengths.split(",") if x.strip()]
            series = []
            for L in lengths:
                p = make_long(args.series_source, L, tmp)
                r = measure(p, settings, work)
                r["kind"] = "series"
                series.append(r)
                rows.append(r)
                console.print(f"  {r['input']}: {r['wall_s']:.1f} s")
                p.unlink()
            console.print(
                table(
                    f"memory vs length: {args.series_source.name} repeated (detect_fps {settings.detect_fps})", series
                )
            )
            if len(series) >= 2:
                a, b = series[0], series[-1]
                change = 100 * (b["peak_rss_mib"] - a["peak_rss_mib"]) / a["peak_rss_mib"]
                console.print(
                    f"peak RSS {a['video_s']:.0f} s -> {b['video_s']:.0f} s: "
                    f"{a['peak_rss_mib']:.0f} -> {b['peak_rss_mib']:.0f} MiB ({change:+.1f}%; target within 10%)"
                )

    args.csv.parent.mkdir(parents=True, exist_ok=True)
    keys = ["kind"]
    for r in rows:
        keys += [k for k in r if k not in keys]
    with open(args.csv, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=keys, restval="")
        w.writeheader()
        for r in rows:
            w.writerow({k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()})
    console.print(f"CSV: {args.csv}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
