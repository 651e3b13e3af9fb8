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

Loaders are cached: one ``ultralytics.YOLO`` instance per **thread** per ``(resolved path, task,
device)`` (issue 17: ``ingest`` analyses several videos at once in threads). An ultralytics model
object holds a predictor with mutable state, so a model object is not thread-safe: each thread
gets its own, kept while the thread lives (one analyze at a time per thread; the analyze stage
runs detection in the calling thread). Tracking state is *not* kept on the cached model (see
:class:`dashcam.alpr.VehicleTracker`), so several trackers may share one model object.

``YOLO_OFFLINE=1`` is set at import (``os.environ.setdefault``) so that ultralytics never tries to
reach the network (update checks, auto-installs) when loading the ONNX exports; the ``onnx``
package must be installed, or ultralytics tries to pip-install it.
"""

from __future__ import annotations

import ast
import functools
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

os.environ.setdefault("YOLO_OFFLINE", "1")

USER_CACHE_DIR = Path.home() / ".cache" / "dashcam" / "models"
# re-targeted copies of fixed-size ONNX exports (:func:`yolo_onnx_at_imgsz`); never searched by name
DERIVED_CACHE_DIR = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "dashcam" / "derived"
YOLO_STRIDES = (8, 16, 32)  # YOLOv8 detection-head strides (P3, P4, P5)


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


CPU_EP = "CPUExecutionProvider"
CUDA_EP = "CUDAExecutionProvider"


class InferenceDeviceError(RuntimeError):
    """``Settings.device`` asks for a GPU that this machine (its onnxruntime / torch) cannot use."""


@dataclass(frozen=True)
class InferenceDevice:
    """Where inference runs, resolved from ``Settings.device`` by :func:`resolve_device`.

    ``setting``: the value asked for (``auto``, ``cpu``, ``cuda``, ``cuda:N``, ``N``, or another
    ultralytics device string); ``torch_device``: what ultralytics gets for ``predict``
    (pre/post-processing, ``.pt`` models): ``"cpu"`` or ``"cuda:N"``; ``providers``: the onnxruntime
    execution providers our ONNX sessions are built with, best first (``CPUExecutionProvider``
    last, as onnxruntime's own fallback); ``cuda_id``: the CUDA device index; ``reason``: one line
    saying what was chosen and why (logged once per process)."""

    setting: str
    torch_device: str
    providers: tuple[str, ...]
    cuda_id: int
    reason: str

    @property
    def ort_gpu(self) -> bool:
        """The ONNX sessions run on onnxruntime's CUDA execution provider."""
        return self.providers[0] == CUDA_EP

    def ort_providers(self) -> list:
        """``providers`` in the form ``onnxruntime.InferenceSession(providers=...)`` takes (CUDA
        with its ``device_id``)."""
        return [(p, {"device_id": self.cuda_id}) if p == CUDA_EP else p for p in self.providers]


def _torch_cuda() -> tuple[bool, int]:
    """(``torch.cuda.is_available()``, device count); (False, 0) without torch."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch comes with ultralytics
        return False, 0
    ok = bool(torch.cuda.is_available())
    return ok, int(torch.cuda.device_count()) if ok else 0


def _cuda_index(setting: str) -> int | None:
    """The CUDA index a GPU setting asks for (``cuda`` -> 0, ``cuda:1`` / ``1`` -> 1), else None."""
    s = setting.strip().lower()
    if s == "cuda":
        return 0
    if s.startswith("cuda:") and s[5:].isdigit():
        return int(s[5:])
    return int(s) if s.isdigit() else None


@functools.lru_cache(maxsize=8)
def resolve_device(setting: str = "auto") -> InferenceDevice:
    """Resolve ``Settings.device`` to an :class:`InferenceDevice`, asking this machine what it has
    (``onnxruntime.get_available_providers()``, ``torch.cuda.is_available()``); cached and logged
    (INFO, logger ``dashcam.models``, one line) once per process per setting.

    * ``auto`` (default): CUDA device 0 when onnxruntime has ``CUDAExecutionProvider`` (the
      ``onnxruntime-gpu`` package) or torch sees a CUDA GPU, else CPU; the log line says which and
      why (e.g. ``auto: no CUDA: onnxruntime 1.32.0 has AzureExecutionProvider,
      CPUExecutionProvider; torch.cuda.is_available() is False``).
    * ``cpu``: CPU, whatever the machine has.
    * ``cuda``, ``cuda:N``, ``N``: that GPU, for the ONNX sessions (CUDA execution provider) and
      for ultralytics (torch), each where it can; raises :class:`InferenceDeviceError` (one line)
      when neither onnxruntime nor torch can use CUDA here, or torch has fewer GPUs: an explicit
      GPU request does not fall back to CPU silently (``auto`` does).
    * anything else (``mps``, ``0,1``, ...) is passed to ultralytics as it is, ONNX sessions on CPU.

    TensorRT's execution provider is not used (it builds an engine per model and input shape on
    first use); the CUDA one needs no build step.
    """
    import onnxruntime as ort

    s = str(setting).strip()
    avail = list(ort.get_available_providers())
    have = f"onnxruntime {ort.__version__} has {', '.join(avail)}"
    if s.lower() == "cpu":
        dev = InferenceDevice(s, "cpu", (CPU_EP,), 0, "cpu: set explicitly")
    elif s.lower() == "auto" or _cuda_index(s) is not None:
        idx = _cuda_index(s) or 0
        torch_ok, n_gpu = _torch_cuda()
        ort_ok = CUDA_EP in avail
        torch_txt = f"torch.cuda.is_available() is {torch_ok}" + (f" ({n_gpu} GPU)" if torch_ok else "")
        if s.lower() == "auto" and not (ort_ok or torch_ok):
            dev = InferenceDevice(s, "cpu", (CPU_EP,), 0, f"cpu (auto: no CUDA: {have}; {torch_txt})")
        elif not (ort_ok or (torch_ok and idx < n_gpu)):
            raise InferenceDeviceError(
                f"device {s!r} asks for CUDA GPU {idx}, but {have} (install onnxruntime-gpu for "
                f"CUDAExecutionProvider) and {torch_txt}; set DASHCAM_DEVICE=auto (falls back to CPU) or cpu"
            )
        else:
            t_dev = f"cuda:{idx}" if torch_ok and idx < n_gpu else "cpu"
            prov = (CUDA_EP, CPU_EP) if ort_ok else (CPU_EP,)
            dev = InferenceDevice(
                s,
                t_dev,
                prov,
                idx,
                f"cuda:{idx} ({'auto' if s.lower() == 'auto' else 'set'}: ONNX sessions on {prov[0]}, "
                f"ultralytics pre/post-processing on {t_dev}; {have}; {torch_txt})",
            )
    else:
        dev = InferenceDevice(s, s, (CPU_EP,), 0, f"{s}: passed to ultralytics as it is; ONNX sessions on CPU")
    log.info("inference device: %s", dev.reason)
    return dev


def ort_session(path: str | Path, device: InferenceDevice | None = None):
    """An onnxruntime ``InferenceSession`` for ``path`` on ``device``'s execution providers
    (default: CPU only), with intra-op thread **spinning off** (ORT session config key
    ``session.intra_op.allow_spinning`` = ``0``) and full graph optimisation; its providers are
    recorded for :func:`execution_providers`. onnxruntime falls back to CPU by itself (with its
    own warning) when the CUDA provider cannot be created.

    By default each session's thread pool busy-waits for work after every run. This process holds
    four sessions (vehicles, plates at two sizes, OCR) next to the ffmpeg decode thread on a few
    cores, so idle pools spin against the one that works. Measured on 2 cores
    (docs/performance.md, step 4): ``analyze`` 16-20% faster on the ``vehdet`` and close-up
    clips, ~6% slower on the highway clip (nearly all vehicle-model time: the one case spinning
    helps)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    providers = device.ort_providers() if device is not None else [CPU_EP]
    sess = ort.InferenceSession(str(path), opts, providers=providers)
    record_session(path, sess)
    return sess


def cpu_session(path: str | Path):
    """:func:`ort_session` on CPU only (spinning off)."""
    return ort_session(path, None)


_SESSION_PROVIDERS: dict[str, tuple[str, ...]] = {}


def record_session(path: str | Path, session) -> None:
    """Note which execution providers the onnxruntime ``session`` of model file ``path`` runs on
    (``session.get_providers()``), for :func:`execution_providers`."""
    _SESSION_PROVIDERS[Path(path).name] = tuple(session.get_providers())


def execution_providers() -> dict[str, str]:
    """Model file name -> the onnxruntime execution provider that runs it (the first of its
    session's providers, e.g. ``CPUExecutionProvider``, ``CUDAExecutionProvider``), for every
    ONNX session this process has built so far (vehicles, plates at each size, the plate
    recogniser or PP-OCR). Empty before a model is loaded. What the benchmarks print as
    "which execution provider ran"; ``", ".join(sorted(set(execution_providers().values())))``
    is the short form."""
    return {name: provs[0] for name, provs in sorted(_SESSION_PROVIDERS.items()) if provs}


def release_freed_memory() -> None:
    """Hand memory that was freed back to the OS (glibc ``malloc_trim(0)``; a no-op elsewhere).

    Loading a model frees large temporaries (ONNX protobufs, the session a tuned one replaces)
    that glibc keeps in its heap; returning them after load keeps the process's RSS to what it
    uses."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


# (thread ident, resolved path, task, device) -> YOLO. A plain dict, not threading.local: Python
# frees the thread-locals of the other threads in a child forked with a preexec_fn
# (dashcam.procs), and an onnxruntime session destroyed there hangs in pthread_cond_destroy.
_THREAD_MODELS: dict[tuple[int, str, str, str], object] = {}
_THREAD_MODELS_LOCK = threading.Lock()


def _load_yolo_cached(path: str, task: str, device: str):
    """The calling thread's instance of the model (loaded on its first call in this thread); the
    models of threads that have ended are dropped when a new one is loaded."""
    key = (threading.get_ident(), path, task, device)
    model = _THREAD_MODELS.get(key)
    if model is None:
        model = _load_yolo(path, task, device)
        with _THREAD_MODELS_LOCK:
            live = {t.ident for t in threading.enumerate()}
            for k in [k for k in _THREAD_MODELS if k[0] not in live]:
                del _THREAD_MODELS[k]
            _THREAD_MODELS[key] = model
    return model


def _load_yolo(path: str, task: str, device: str):
    from ultralytics import YOLO

    dev = resolve_device(device)
    model = YOLO(path, task=task)
    if path.lower().endswith(".onnx"):
        # ultralytics builds its onnxruntime session on the first predict, with default options:
        # build it now on a small blank image (any size: only the session matters)
        import numpy as np

        model.predict(np.zeros((64, 64, 3), np.uint8), device=dev.torch_device, verbose=False)
        backend: Any = getattr(getattr(model.predictor, "model", None), "backend", None)
        session: Any = getattr(backend, "session", None)
        if session is None:  # pragma: no cover - an ultralytics layout we do not know: keep its session
            log.warning("could not tune the onnxruntime session of %s (ultralytics internals changed)", path)
        elif dev.torch_device == "cpu" or session.get_providers()[0] == CPU_EP:
            # ultralytics made a CPU session (torch on CPU, or no CUDA provider): swap in ours (no
            # thread spinning; on the CUDA provider when onnxruntime has it, fed from host memory)
            backend.session = ort_session(path, dev)
            release_freed_memory()  # the replaced session's arena
        else:  # torch and onnxruntime on CUDA: ultralytics' own session, IO-bound to torch tensors, kept
            record_session(path, session)
    return model


def load_yolo(
    name_or_path: str,
    task: str = "detect",
    model_dir: Path | str | None = None,
    device: str = "auto",
):
    """Load (once per thread per resolved path, task, device) an ``ultralytics.YOLO`` model.

    ``task`` is ``"detect"`` or ``"segment"`` (ONNX exports need it spelled out). ``device`` is a
    ``Settings.device`` value (``"auto"``, ``"cpu"``, ``"cuda:0"``, ``"0"``; :func:`resolve_device`);
    pass ``resolve_device(device).torch_device`` to ``predict``. An ONNX model's session runs on
    the resolved execution providers (:func:`execution_providers` says which). Raises
    :class:`ModelNotFoundError` (see :func:`resolve_model`), :class:`InferenceDeviceError` for a
    GPU this machine cannot use. The instance is the calling thread's: do not hand it to another
    thread (see module docstring).
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


class ModelRetargetError(ValueError):
    """A model file is not a fixed-size Ultralytics YOLOv8 ONNX export that can be re-targeted."""


def _yolo_anchors(imgsz: int):
    """Anchor points and strides of a YOLOv8 head for a square ``imgsz`` input.

    Returns ``(anchors, strides)``: ``float32`` arrays of shape ``(1, 2, A)`` (x, y grid-cell
    centres in grid units, P3 then P4 then P5, row-major) and ``(1, A)`` (pixels), with
    ``A = sum((imgsz / s) ** 2 for s in YOLO_STRIDES)`` (8400 at 640, 2100 at 320). Layout as
    ultralytics' ``make_anchors`` (``ultralytics/utils/tal.py``, grid_cell_offset 0.5), which the
    ONNX export bakes into the graph as constants.
    """
    import numpy as np

    anc, st = [], []
    for s in YOLO_STRIDES:
        n = imgsz // s
        ys, xs = np.meshgrid(np.arange(n) + 0.5, np.arange(n) + 0.5, indexing="ij")
        anc.append(np.stack([xs.ravel(), ys.ravel()]))
        st.append(np.full(n * n, float(s)))
    return np.concatenate(anc, 1)[None].astype(np.float32), np.concatenate(st)[None].astype(np.float32)


def retarget_yolo_onnx(src: str | Path, dst: str | Path, imgsz: int) -> Path:
    """Write a copy of a fixed-size Ultralytics YOLOv8 detect/segment ONNX export that takes a
    ``1 x 3 x imgsz x imgsz`` input and outputs **boxes only**.

    Why: the plate detector we ship with (``platedet-yolov8s-seg-640.onnx``) is a fixed 640x640
    YOLOv8s-*seg* export without its ``.pt``, so ultralytics cannot re-export it at another size.
    A YOLOv8 graph is fully convolutional except for constants the exporter bakes in for the
    export size: the anchor grid ``(1, 2, A)``, the per-anchor stride ``(1, A)`` and int64 reshape
    targets containing ``A`` (``A`` = 8400 at 640). This rewrites those for ``imgsz`` (anchors as
    :func:`_yolo_anchors`, checked first to reproduce the original constants exactly), sets the
    input shape and the ``imgsz`` metadata, and for a segment model slices ``output0`` to its
    ``4 + nc`` box/class rows and drops the mask-prototype branch (unused by this pipeline), so
    onnxruntime no longer computes it. ``task`` metadata becomes ``detect``. Measured on the plate
    model (2 CPU cores): 640 boxes-only gives bit-identical boxes to the original at ~0.8x its time;
    320 costs ~0.2x (bench/ and docs/performance.md).

    ``imgsz`` must be a multiple of 32. The write is atomic (temp file + rename). Raises
    :class:`ModelRetargetError` when ``src`` does not look like such an export (no anchor
    constant, anchors that do not match the YOLOv8 layout, dynamic input), ``ValueError`` for a
    bad ``imgsz``.
    """
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    if imgsz <= 0 or imgsz % 32:
        raise ValueError(f"imgsz must be a positive multiple of 32, got {imgsz}")
    src, dst = Path(src), Path(dst)
    m = onnx.load(str(src))
    g = m.graph
    meta = {p.key: p.value for p in m.metadata_props}
    dims = g.input[0].type.tensor_type.shape.dim
    if len(dims) != 4 or not dims[2].dim_value or dims[2].dim_value != dims[3].dim_value:
        raise ModelRetargetError(f"{src}: input is not a fixed square image (dims {[d.dim_value for d in dims]})")
    s0 = dims[2].dim_value
    a0 = _yolo_anchors(s0)
    a1 = _yolo_anchors(imgsz)
    n0, n1 = a0[0].shape[-1], a1[0].shape[-1]
    found = {"anchors": 0, "strides": 0}
    for i, t in enumerate(g.initializer):
        a = numpy_helper.to_array(t)
        if a.shape == (1, 2, n0) and a.dtype.kind == "f":
            if not np.allclose(a.astype(np.float32), a0[0]):
                raise ModelRetargetError(f"{src}: anchor constant {t.name} is not the YOLOv8 grid")
            g.initializer[i].CopyFrom(numpy_helper.from_array(a1[0].astype(a.dtype), t.name))
            found["anchors"] += 1
        elif a.shape == (1, n0) and a.dtype.kind == "f":
            if not np.allclose(a.astype(np.float32), a0[1]):
                raise ModelRetargetError(f"{src}: stride constant {t.name} is not the YOLOv8 layout")
            g.initializer[i].CopyFrom(numpy_helper.from_array(a1[1].astype(a.dtype), t.name))
            found["strides"] += 1
        elif a.dtype == np.int64 and a.ndim == 1 and n0 in a.tolist():
            g.initializer[i].CopyFrom(numpy_helper.from_array(np.where(a == n0, n1, a).astype(np.int64), t.name))
    if found != {"anchors": 1, "strides": 1}:
        raise ModelRetargetError(f"{src}: expected one YOLOv8 anchor and one stride constant, found {found}")
    dims[2].dim_value = dims[3].dim_value = imgsz
    try:
        nc = len(ast.literal_eval(meta.get("names", "{}"))) or 1
    except (ValueError, SyntaxError):
        nc = 1
    out0 = g.output[0]
    elem = out0.type.tensor_type.elem_type
    g.initializer.extend(
        [
            numpy_helper.from_array(np.array([0], np.int64), "dashcam_slice_start"),
            numpy_helper.from_array(np.array([4 + nc], np.int64), "dashcam_slice_end"),
            numpy_helper.from_array(np.array([1], np.int64), "dashcam_slice_axis"),
        ]
    )
    g.node.append(
        helper.make_node(
            "Slice", [out0.name, "dashcam_slice_start", "dashcam_slice_end", "dashcam_slice_axis"], ["boxes"]
        )
    )
    del g.output[:]
    g.output.append(helper.make_tensor_value_info("boxes", elem, [1, 4 + nc, n1]))
    meta.update(imgsz=f"[{imgsz}, {imgsz}]", task="detect")
    return _save_pruned(m, dst, meta)


def _save_pruned(m, dst: Path, meta: dict[str, str]) -> Path:
    """Save the edited ONNX model ``m`` to ``dst`` atomically (temp file + rename): nodes that no
    graph output needs any more are pruned (``onnx.utils.extract_model``), stale ``value_info``
    shapes dropped (onnxruntime infers them), ``meta`` written as the metadata (ultralytics reads
    task, imgsz, names, stride from it) and the result checked (``onnx.checker``)."""
    import onnx

    g = m.graph
    del g.value_info[:]
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.{threading.get_ident()}.tmp")  # threads: issue 17
    try:
        onnx.save(m, str(tmp))
        onnx.utils.extract_model(str(tmp), str(tmp), [i.name for i in g.input], [o.name for o in g.output])
        m = onnx.load(str(tmp))
        del m.metadata_props[:]
        for k, v in meta.items():
            m.metadata_props.add(key=k, value=v)
        onnx.checker.check_model(m)
        onnx.save(m, str(tmp))
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)
    return dst


def yolo_onnx_at_imgsz(path: str, imgsz: int) -> str:
    """The boxes-only ``imgsz`` copy of the ONNX export ``path`` (see :func:`retarget_yolo_onnx`),
    made once and kept in ``DERIVED_CACHE_DIR`` under a name that carries the source file's
    SHA-256 prefix (a changed source gives a new copy). Returns its path as ``str``. Raises
    :class:`ModelRetargetError` / ``ValueError`` as :func:`retarget_yolo_onnx`."""
    p = Path(path)
    dst = DERIVED_CACHE_DIR / f"{p.stem}.{_sha12(p)}.boxes{imgsz}.onnx"
    if not dst.is_file():
        retarget_yolo_onnx(p, dst, imgsz)
    return str(dst)


def dequantize_dynamic_onnx(src: str | Path, dst: str | Path) -> Path:
    """Write an fp32 copy of an ONNX model made by onnxruntime's *dynamic* int8 quantisation
    (``onnxruntime.quantization.quantize_dynamic``): every ``DynamicQuantizeLinear`` ->
    ``ConvInteger`` -> ``Cast`` -> ``Mul(x_scale * w_scale)`` chain becomes one float ``Conv`` with
    weights ``(w_q - w_zero_point) * w_scale`` (per-tensor or per-output-channel scale), and the
    then unused quantisation nodes are pruned. The bias ``Add`` after it is kept.

    Why: the vehicle model we ship with (``yolov8n-coco-int8-320.onnx``) is such an export, and
    onnxruntime's CPU kernels run its ``ConvInteger`` + ``DynamicQuantizeLinear`` pairs ~4x slower
    than the same network in fp32 (measured on 2 cores: ~110 ms vs ~24 ms for YOLOv8n at 320).
    The weights are exactly the int8 ones, so detections are those of the int8 model minus its
    activation-quantisation noise (``tests/test_alpr.py`` compares them on a real frame).
    Ultralytics metadata is kept, so ``ultralytics.YOLO(dst)`` loads it like the source.

    The write is atomic (temp file + rename). Raises :class:`ModelRetargetError` when ``src`` has
    no ``ConvInteger`` or a chain does not have the layout above.
    """
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    src, dst = Path(src), Path(dst)
    m = onnx.load(str(src))
    g = m.graph
    meta = {p.key: p.value for p in m.metadata_props}
    init = {t.name: t for t in g.initializer}
    prod = {o: n for n in g.node for o in n.output}
    cons: dict[str, list] = {}
    for n in g.node:
        for i in n.input:
            cons.setdefault(i, []).append(n)

    def arr(name: str):
        if name not in init:
            raise ModelRetargetError(f"{src}: {name} is not a constant")
        return numpy_helper.to_array(init[name])

    convs = [n for n in g.node if n.op_type == "ConvInteger"]
    if not convs:
        raise ModelRetargetError(f"{src}: no ConvInteger node (not a dynamic-int8 model)")
    drop, new_nodes = set(), {}
    for n in convs:
        xq, wq, _xzp, wzp = (list(n.input) + ["", "", "", ""])[:4]
        dql = prod.get(xq)
        nxt = cons.get(n.output[0], [])
        cast = nxt[0] if len(nxt) == 1 and nxt[0].op_type == "Cast" else None
        nxt = cons.get(cast.output[0], []) if cast is not None else []
        mul = nxt[0] if len(nxt) == 1 and nxt[0].op_type == "Mul" else None
        if dql is None or dql.op_type != "DynamicQuantizeLinear" or mul is None or cast is None:
            raise ModelRetargetError(f"{src}: {n.name}: not a DynamicQuantizeLinear/ConvInteger/Cast/Mul chain")
        scale_out = next(i for i in mul.input if i != cast.output[0])
        smul = prod.get(scale_out)
        if smul is None or smul.op_type != "Mul" or not any(i in init for i in smul.input):
            raise ModelRetargetError(f"{src}: {n.name}: weight scale not found")
        w_scale = arr(next(i for i in smul.input if i in init)).astype(np.float32)
        w = arr(wq).astype(np.float32) - (arr(wzp).astype(np.float32) if wzp else 0.0)
        if w_scale.ndim == 1 and w_scale.size == w.shape[0]:
            w_scale = w_scale.reshape(-1, 1, 1, 1)
        wname = f"{wq}_dequantized_fp32"
        g.initializer.append(numpy_helper.from_array((w * w_scale).astype(np.float32), wname))
        conv = helper.make_node(
            "Conv", [dql.input[0], wname], [mul.output[0]], name=n.name.replace("_quant", "") + "_fp32"
        )
        conv.attribute.extend(n.attribute)
        new_nodes[id(n)] = conv
        drop.update({id(cast), id(mul)})
    nodes = [new_nodes.get(id(n), n) for n in g.node if id(n) not in drop]
    del g.node[:]
    g.node.extend(nodes)
    return _save_pruned(m, dst, meta)


def _sha12(path: Path) -> str:
    """First 12 hex digits of the SHA-256 of the file at ``path``; hashed once per process per
    (path, size, mtime) (a detector is built per video: ~0.1 s per build for the 24 MB plate model)."""
    st = path.stat()
    return _sha12_of(str(path.resolve()), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _sha12_of(path: str, size: int, mtime_ns: int) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:12]


def onnx_fp32(path: str) -> str:
    """The fp32 copy of the dynamic-int8 ONNX model ``path`` (:func:`dequantize_dynamic_onnx`),
    made once in ``DERIVED_CACHE_DIR`` (named after the source's SHA-256 prefix); ``path`` itself
    when it has no ``ConvInteger`` node or is not ONNX. Returns a path as ``str``."""
    p = Path(path)
    if p.suffix.lower() != ".onnx":
        return path
    dst = DERIVED_CACHE_DIR / f"{p.stem}.{_sha12(p)}.fp32.onnx"
    if dst.is_file():
        return str(dst)
    import onnx

    if not any(n.op_type == "ConvInteger" for n in onnx.load(str(p), load_external_data=False).graph.node):
        return path
    return str(dequantize_dynamic_onnx(p, dst))
