#!/usr/bin/env bash
# One entry point for a fresh Debian machine with Python 3.11:
#   bash infra/dev.sh setup   # ffmpeg (apt, if missing), .venv with every package
#   bash infra/dev.sh demo    # setup + ingest a real clip from ../shared and list its plates
#   bash infra/dev.sh lint    # setup + ruff check, ruff format --check, mypy (.ci/run runs it first)
#   bash infra/dev.sh test    # setup + the whole test suite (.ci/run runs it after lint)
# Environment: PYTHON (default python3.11, else python3), SHARED (default ../shared),
# VENV (default .venv).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV=${VENV:-$ROOT/.venv}
SHARED=${SHARED:-$(cd "$ROOT/.." && pwd)/shared}
cmd=${1:-setup}

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

setup_system() {
    local pkgs=()
    command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null || pkgs+=(ffmpeg)
    # the tests start a throwaway PostgreSQL from the local binaries (initdb, pg_ctl, postgres)
    if [ "$cmd" = test ] && ! command -v pg_ctl >/dev/null && ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then
        pkgs+=(postgresql)
    fi
    # the web UI's browser tests drive Debian's chromium through Playwright
    if [ "$cmd" = test ] && ! command -v chromium >/dev/null; then
        pkgs+=(chromium)
    fi
    if [ ${#pkgs[@]} -gt 0 ]; then
        echo "installing with apt-get: ${pkgs[*]}"
        as_root apt-get update -qq
        DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${pkgs[@]}" >/dev/null
    fi
}

setup_python() {
    local py=${PYTHON:-}
    if [ -z "$py" ]; then py=$(command -v python3.11 || command -v python3); fi
    [ -x "$VENV/bin/python" ] || "$py" -m venv "$VENV"
    # reinstall only when the dependency spec changed (stamp = hash of pyproject + constraints)
    local stamp="$VENV/.dashcam-deps"
    local want
    want=$(cat pyproject.toml infra/constraints.txt | sha256sum | cut -c1-16)
    if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
        "$VENV/bin/python" -m pip install -q --upgrade pip
        # torch first, as a pinned pair: a lone `pip install ultralytics` would pick the newest
        "$VENV/bin/pip" install -q -c infra/constraints.txt torch torchvision
        "$VENV/bin/pip" install -q -c infra/constraints.txt -e ".[dev]"
        echo "$want" > "$stamp"
    fi
}

# ruff (lint rules + import order), ruff format --check, mypy: each problem on one line
# (`path:line:col: code message`), all three always run; exit 1 when any reported a problem.
# Configuration: [tool.ruff] and [tool.mypy] in pyproject.toml. Extra args go to `ruff check`
# (e.g. `bash infra/dev.sh lint --statistics`).
lint() {
    local failed=() out n
    echo "== ruff check"
    "$VENV/bin/ruff" check --output-format concise --no-fix "$@" . || failed+=("ruff check")
    echo "== ruff format --check"
    "$VENV/bin/ruff" format --check --output-format concise . || failed+=("ruff format")
    echo "== mypy"
    # notes (overload lists, hints) go to the full run: `.venv/bin/mypy`
    out=$("$VENV/bin/mypy" --no-pretty --no-error-summary --hide-error-context 2>&1) || failed+=("mypy")
    n=$(grep -c ': error:' <<<"$out" || true)
    if [ -n "$out" ]; then grep -v ': note:' <<<"$out" || true; fi
    echo "mypy: $n error(s)"
    if [ ${#failed[@]} -gt 0 ]; then
        echo "lint FAILED: ${failed[*]}" >&2
        return 1
    fi
    echo "lint passed"
}

case "$cmd" in
    setup)
        setup_system; setup_python ;;
    demo)
        setup_system; setup_python
        export DASHCAM_MODEL_DIR=${DASHCAM_MODEL_DIR:-$SHARED/models}
        export DASHCAM_DATA_DIR=${DASHCAM_DATA_DIR:-$ROOT/.dashcam}
        "$VENV/bin/dashcam" ingest "$SHARED/data/plates-video/TrainingSet/Categorie I/Video10_2.avi" "${@:2}"
        "$VENV/bin/dashcam" plates ;;
    lint)
        setup_python
        lint "${@:2}" ;;
    test)
        setup_system; setup_python
        export DASHCAM_SHARED_DIR=$SHARED
        exec "$VENV/bin/python" -m pytest "${@:2}" ;;
    *)
        echo "usage: bash infra/dev.sh setup|demo|lint|test [args]" >&2; exit 2 ;;
esac
