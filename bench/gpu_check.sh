#!/usr/bin/env bash
# GPU check for issue 17: one prepared run on a lent GPU machine (docs/performance.md, "Issue 17").
#
#   bash bench/gpu_check.sh            # from the repository root; writes everything under $OUT
#
# What it does, each step under a timeout, printing what is missing instead of failing:
#   1. inventory: nvidia-smi, ffmpeg -hwaccels, a Python with the project's imports, onnxruntime's
#      providers, PyAV's hardware devices, the shared data/models;
#   2. makes the dashcam-format clips (bench/dashcam_formats.py, cached under bench/out/);
#   3. decoder options on the first 10 s of each clip (bench/decode_options.py: null decode,
#      -hwaccel cuda, threads, the pipe);
#   4. bench/throughput.py --dashcam-formats with default settings (hwaccel auto: NVDEC when the
#      probe decodes a frame; the onnxruntime EP is whatever dashcam.models picks) -> Markdown + CSV.
# Environment: OUT (default ./gpu_check_out), PYTHON (default: .venv/bin/python, then python3),
#   DASHCAM_SHARED_DIR (default ./shared, then ../shared), WHEELHOUSE (a folder of wheels to
#   install missing modules from, offline), GPU_CHECK_SECONDS (clip length, default 60),
#   GPU_CHECK_STEP_TIMEOUT (seconds per step, default 420).
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu_check_out}
mkdir -p "$OUT"
LOG="$OUT/gpu_check.log"
SECONDS_CLIP=${GPU_CHECK_SECONDS:-60}
STEP_T=${GPU_CHECK_STEP_TIMEOUT:-420}
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD YOLO_OFFLINE=1
say() { echo "== $*" | tee -a "$LOG"; }
missing=()

say "gpu_check $(date -u +%FT%TZ) on $(hostname), $(nproc) cpus, tree $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
if command -v nvidia-smi >/dev/null; then
  timeout 30 nvidia-smi --query-gpu=name,driver_version,memory.total,utilization.gpu --format=csv 2>&1 | tee -a "$LOG"
else
  say "MISSING nvidia-smi (no NVIDIA driver visible)"; missing+=(nvidia-smi)
fi
if command -v ffmpeg >/dev/null; then
  ffmpeg -hide_banner -version | head -1 | tee -a "$LOG"
  echo "ffmpeg hwaccels: $(ffmpeg -hide_banner -hwaccels | tail -n +2 | xargs)" | tee -a "$LOG"
else
  say "MISSING ffmpeg: nothing to decode with, stopping"; exit 0
fi

PY=${PYTHON:-}
for cand in "$PY" .venv/bin/python /work/main/.venv/bin/python python3; do
  [ -n "$cand" ] && command -v "$cand" >/dev/null && { PY=$cand; break; }
done
say "python: $PY ($($PY --version 2>&1))"
mods="numpy cv2 onnxruntime ultralytics pydantic pydantic_settings ffmpeg psutil rich av rapidfuzz"
need=$($PY - "$mods" <<'EOF'
import importlib.util, sys
print(" ".join(m for m in sys.argv[1].split() if importlib.util.find_spec(m) is None))
EOF
)
if [ -n "$need" ] && [ -n "${WHEELHOUSE:-}" ] && [ -d "${WHEELHOUSE:-}" ]; then
  say "installing from $WHEELHOUSE: $need"
  pkgs=$(echo "$need" | sed 's/\bcv2\b/opencv-python-headless/; s/\bffmpeg\b/ffmpeg-python/; s/\bpydantic_settings\b/pydantic-settings/')
  # shellcheck disable=SC2086
  timeout 300 $PY -m pip install --no-index --find-links "$WHEELHOUSE" $pkgs 2>&1 | tail -3 | tee -a "$LOG"
  need=$($PY -c "import importlib.util;print(' '.join(m for m in '$mods'.split() if importlib.util.find_spec(m) is None))")
fi
if [ -n "$need" ]; then
  say "MISSING python modules: $need (set PYTHON or WHEELHOUSE); only the clips and the plain-ffmpeg decode table will run"; missing+=($need)
fi
$PY - <<'EOF' 2>&1 | tee -a "$LOG"
try:
    import onnxruntime as ort
    print("onnxruntime", ort.__version__, "providers:", ort.get_available_providers())
except Exception as e:
    print("onnxruntime: not importable:", e)
try:
    import av
    from av.codec.hwaccel import hwdevices_available
    print("PyAV", av.__version__, "hw devices:", hwdevices_available())
except Exception as e:
    print("PyAV: not importable:", e)
try:
    import logging; logging.basicConfig(level=logging.INFO, format="%(message)s")
    from dashcam.media.hwaccel import choose_hwaccel
    import glob
    clip = (glob.glob("shared/data/road-video/*.mp4") + glob.glob("../shared/data/road-video/*.mp4") + [""])[0]
    if clip:
        print("dashcam hwaccel auto:", choose_hwaccel("auto", clip, "h264")[1])
except Exception as e:
    print("dashcam.media.hwaccel:", e)
EOF

SHARED=${DASHCAM_SHARED_DIR:-}
for cand in "$SHARED" "$PWD/shared" "$PWD/../shared"; do
  [ -n "$cand" ] && [ -f "$cand/data/road-video/udacity_solidWhiteRight.mp4" ] && { SHARED=$cand; break; }
done
if [ -z "$SHARED" ] || [ ! -f "$SHARED/data/road-video/udacity_solidWhiteRight.mp4" ]; then
  say "MISSING shared data: <shared>/data/road-video/udacity_solidWhiteRight.mp4 (copy it into ./shared, see docs/performance.md)"
  missing+=(shared-data)
else
  export DASHCAM_SHARED_DIR=$SHARED
  [ -d "$SHARED/models" ] || { say "MISSING $SHARED/models"; missing+=(models); }
  [ -f "$SHARED/data/plates-video/TrainingSet/Categorie I/Video13_2.avi" ] || {
    say "MISSING warm-up clip plates-video/TrainingSet/Categorie I/Video13_2.avi"; missing+=(warmup-clip); }
fi
if [[ " ${missing[*]} " == *" shared-data "* ]]; then
  say "stopping: missing ${missing[*]}"; exit 0
fi

say "1/3 make the dashcam-format clips (${SECONDS_CLIP} s; needs only python3 + ffmpeg)"
clipdir=$(timeout "$STEP_T" $PY bench/dashcam_formats.py --seconds "$SECONDS_CLIP" 2>&1 | tee -a "$LOG" | tail -1)
[ -d "$clipdir" ] || { say "clip generation failed or timed out"; exit 0; }

# decode-only with plain ffmpeg (works without the project's Python modules): CPU vs NVDEC
{
  echo "| clip | CPU null s | -hwaccel cuda s (frames to RAM) | -hwaccel cuda -hwaccel_output_format cuda s |"
  echo "|---|---|---|---|"
  for f in "$clipdir"/dashcam_*.mp4 "$clipdir"/*R.MP4; do
    row="| $(basename "$f")"
    for opts in "" "-hwaccel cuda" "-hwaccel cuda -hwaccel_output_format cuda"; do
      t0=$EPOCHREALTIME
      # shellcheck disable=SC2086
      if timeout 300 ffmpeg -nostdin -hide_banner -loglevel error $opts -i "$f" -map 0:v:0 -f null - 2>>"$LOG"; then
        row="$row | $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }')"
      else
        row="$row | fails"
      fi
    done
    echo "$row |"
  done
} | tee "$OUT/decode_only.md" | tee -a "$LOG"
if [ -n "$need" ]; then
  say "stopping before the pipeline benches: missing python modules $need"; exit 0
fi

say "2/3 decoder options (first 10 s of each clip)"
timeout "$STEP_T" $PY bench/decode_options.py --only "null,null -threads 2,pipe (iter_frames),pyav,hwaccel cuda,hwaccel vaapi" \
  2>&1 | tee "$OUT/decode_options.md" | tee -a "$LOG" || say "decode options failed or timed out (partial table kept)"

say "3/3 throughput, dashcam formats, default settings (hwaccel auto)"
util_pid=""
if command -v nvidia-smi >/dev/null; then  # GPU and NVDEC busy %, once a second, during the bench
  nvidia-smi --query-gpu=timestamp,utilization.gpu,utilization.decoder,memory.used --format=csv -l 1 \
    >"$OUT/gpu_util.csv" 2>&1 &
  util_pid=$!
fi
timeout "$STEP_T" $PY bench/throughput.py --dashcam-formats --dashcam-seconds "$SECONDS_CLIP" \
  --markdown "$OUT/throughput_dashcam.md" --csv "$OUT/throughput_dashcam.csv" 2>&1 | tee -a "$LOG" \
  || say "throughput bench failed or timed out"
if [ -n "$util_pid" ]; then
  kill "$util_pid" 2>/dev/null
  $PY - "$OUT/gpu_util.csv" <<'EOF' 2>&1 | tee -a "$LOG"
import sys
rows = [r.split(",") for r in open(sys.argv[1]).read().splitlines()[1:] if r.count(",") >= 3]
g = [float(r[1].split()[0]) for r in rows if r[1].strip()[:1].isdigit()]
d = [float(r[2].split()[0]) for r in rows if r[2].strip()[:1].isdigit()]
if g:
    print(f"GPU busy mean {sum(g) / len(g):.0f}% (n={len(g)} s), NVDEC busy mean {sum(d) / max(1, len(d)):.0f}%")
EOF
fi
say "done; missing: ${missing[*]:-nothing}; tables in $OUT"
exit 0
