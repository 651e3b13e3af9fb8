"""Locate and load the detection models (offline-first).

Resolution order for a model name or path (:func:`resolve_model`):

1. ``name_or_path`` is an existing file -> that file.
2. A file of that *name* in ``model_dir`` (the ``Settings.model_dir`` argument), else in
   ``$DASHCAM_MODEL_DIR``.
3. A file of that name in the ultralytics weights dir (``ultralytics.utils.SETTINGS["weights_dir"]``)
   or in the user cache ``~/.cache/dashcam/models``.
4. The bare name, **only** if ultralytics knows how to download it (``GITHUB_ASSETS_NAMES``, e.g.
   ``yolo11n.pt``): ultralytics then downloads it on machines with internet.
5. Otherwise :class:`ModelNotFoundError` (a ``FileNotFoundError``) listing every place looked in.

Loaders are cached: one ``ultralytics.YOLO`` instance per process per ``(resolved path, task,
device)``. An ultralytics model object holds a predictor with mutable state, so **a cached model
is not thread-safe**: use it from one thread at a time (the analyze stage runs detection on a
single worker thread). Tracking state is *not* kept on the cached model (see
:class:`dashcam.alpr.VehicleTracker`), so several trackers may share one model object.

``YOLO_OFFLINE=1`` is set at import (``os.environ.setdefault``) so that ultralytics never tries to
reach the network (update checks, auto-installs) when loading the ONNX exports; the ``onnx``
package must be installed, or ultralytics tries to pip-install it.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")

USER_CACHE_DIR = Path.home() / ".cache" / "dashcam" / "models"


class ModelNotFoundError(FileNotFoundError):
    """A model was asked for by a name/path that exists nowhere locally and cannot be downloaded."""


def _ultralytics_weights_dir() -> Path | None:
    try:
        from ultralytics.utils import SETTINGS

        return Path(SETTINGS["weights_dir"]).expanduser()
    except Exception:  # pragma: no cover - ultralytics settings unreadable
        return None


def _downloadable_by_ultralytics(name: str) -> bool:
    try:
        from ultralytics.utils.downloads import GITHUB_ASSETS_NAMES
    except Exception:  # pragma: no cover
        return False
    return name in GITHUB_ASSETS_NAMES


def candidate_dirs(model_dir: Path | str | None) -> list[Path]:
    """Directories searched for a model file by name, in order (missing ones included)."""
    dirs: list[Path] = []
    if model_dir:
        dirs.append(Path(model_dir).expanduser())
    env = os.environ.get("DASHCAM_MODEL_DIR")
    if env:
        dirs.append(Path(env).expanduser())
    wd = _ultralytics_weights_dir()
    if wd is not None:
        dirs.append(wd)
    dirs.append(USER_CACHE_DIR)
    seen: set[Path] = set()
    out = []
    for d in dirs:
        if d not in seen:
            seen.add(d)
            out.append(d)
    return out


def resolve_model(name_or_path: str, model_dir: Path | str | None = None) -> str:
    """Return a local file path for ``name_or_path`` (as ``str``), or a bare downloadable name.

    See the module docstring for the order. Raises :class:`ModelNotFoundError` when nothing local
    exists and ultralytics cannot download the name (e.g. our ONNX exports); the message lists the
    places searched and says to set ``DASHCAM_MODEL_DIR``.
    """
    p = Path(name_or_path).expanduser()
    if p.is_file():
        return str(p.resolve())
    looked = [str(p)]
    name = p.name
    for d in candidate_dirs(model_dir):
        cand = d / name
        looked.append(str(cand))
        if cand.is_file():
            return str(cand.resolve())
    if p.name == name_or_path and _downloadable_by_ultralytics(name):
        return name  # ultralytics downloads it by name (needs internet)
    raise ModelNotFoundError(
        f"model {name_or_path!r} not found; looked at: {', '.join(looked)}. "
        "Put the file in one of these places or set DASHCAM_MODEL_DIR (or Settings.model_dir) "
        "to the folder that holds it."
    )


@functools.lru_cache(maxsize=8)
def _load_yolo_cached(path: str, task: str, device: str):
    from ultralytics import YOLO

    model = YOLO(path, task=task)
    model._dashcam_device = device  # predict() takes device per call; remembered for callers
    return model


def load_yolo(
    name_or_path: str,
    task: str = "detect",
    model_dir: Path | str | None = None,
    device: str = "cpu",
):
    """Load (once per process per resolved path, task, device) an ``ultralytics.YOLO`` model.

    ``task`` is ``"detect"`` or ``"segment"`` (ONNX exports need it spelled out). ``device`` is an
    ultralytics device string (``"cpu"``, ``"0"``, ``"cuda:0"``); pass it to ``predict`` too.
    Raises :class:`ModelNotFoundError` (see :func:`resolve_model`). Not thread-safe (see module
    docstring).
    """
    return _load_yolo_cached(resolve_model(name_or_path, model_dir), task, str(device))


@functools.lru_cache(maxsize=2)
def load_rapidocr():
    """The rapidocr engine (PP-OCRv6 det/cls/rec ONNX bundled in the wheel), INFO logging silenced.

    One instance per process. onnxruntime sessions are safe to call from several threads, but
    rapidocr keeps no per-call state worth sharing: prefer one caller thread.
    """
    import logging

    from rapidocr import RapidOCR

    eng = RapidOCR(params={"Global.log_level": "error"})
    for name in ("RapidOCR", "rapidocr"):
        logging.getLogger(name).setLevel(logging.ERROR)
    return eng
