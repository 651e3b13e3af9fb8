"""Paths to the shared real test data and models (no mocks: tests use these real files).

``DASHCAM_SHARED_DIR`` (default: the ``shared`` folder beside the repository root) holds
``models/`` and ``data/`` (see its README.md); ``DASHCAM_MODEL_DIR`` defaults to
``<shared>/models``.
"""

from __future__ import annotations

import csv
import os
import time
from datetime import UTC, datetime
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_dir() -> Path:
    """The shared models+data folder: ``$DASHCAM_SHARED_DIR`` or ``<repo>/../shared``."""
    env = os.environ.get("DASHCAM_SHARED_DIR")
    return Path(env).expanduser() if env else Path(__file__).resolve().parents[2] / "shared"


def csv_rows(path: Path) -> list[dict[str, str]]:
    """The rows of a CSV file with a header line (UTF-8), as dicts; the file is closed again."""
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def model_dir() -> Path:
    """The model folder: ``$DASHCAM_MODEL_DIR`` or ``<shared>/models``."""
    env = os.environ.get("DASHCAM_MODEL_DIR")
    return Path(env).expanduser() if env else shared_dir() / "models"


def copy_in_chunks(src: Path, dst: Path, chunks: int = 4, pause_s: float = 0.2) -> datetime:
    """Write ``src`` to ``dst`` in ``chunks`` writes with ``pause_s`` seconds between them, the
    file kept open (a slow NAS copy); return when it was closed (UTC). Used by the watcher tests
    and ``bench/watch_latency.py``."""
    data = src.read_bytes()
    step = -(-len(data) // chunks)
    with open(dst, "wb") as f:
        for i in range(0, len(data), step):
            f.write(data[i : i + step])
            f.flush()
            time.sleep(pause_s)
    return datetime.now(UTC)
