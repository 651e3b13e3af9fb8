"""Paths to the shared real test data and models (no mocks: tests use these real files).

``DASHCAM_SHARED_DIR`` (default: the ``shared`` folder beside the repository root) holds
``models/`` and ``data/`` (see its README.md); ``DASHCAM_MODEL_DIR`` defaults to
``<shared>/models``.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_dir() -> Path:
    """The shared models+data folder: ``$DASHCAM_SHARED_DIR`` or ``<repo>/../shared``."""
    env = os.environ.get("DASHCAM_SHARED_DIR")
    return Path(env).expanduser() if env else Path(__file__).resolve().parents[2] / "shared"


def model_dir() -> Path:
    """The model folder: ``$DASHCAM_MODEL_DIR`` or ``<shared>/models``."""
    env = os.environ.get("DASHCAM_MODEL_DIR")
    return Path(env).expanduser() if env else shared_dir() / "models"
