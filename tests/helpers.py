"""Locations of the shared, read-only test data and models (never copied into the repo).

``DASHCAM_SHARED_DIR`` overrides the default ``<repo>/../shared``; ``DASHCAM_MODEL_DIR``
overrides the default ``<shared>/models``.
"""

from __future__ import annotations

import os
from pathlib import Path


def shared_dir() -> Path:
    """Root of the shared folder (holds ``data/`` and ``models/``)."""
    env = os.environ.get("DASHCAM_SHARED_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared"


def model_dir() -> Path:
    """Folder holding the ONNX model files."""
    env = os.environ.get("DASHCAM_MODEL_DIR")
    return Path(env) if env else shared_dir() / "models"
