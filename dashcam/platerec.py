"""The plate-specific recogniser (fast-plate-ocr) and constrained decoding of its slot output.

Model
-----
``Settings.plate_ocr_model`` (default ``cct_xs_v1_global.onnx``: fast-plate-ocr's CCT-XS v1 global
model, MIT, trained on plates of 65+ countries) with its plate-config YAML
(``Settings.plate_ocr_config``, default ``<model stem>_plate_config.yaml`` beside the model), run
by PyPI ``fast-plate-ocr`` (``LicensePlateRecognizer(onnx_model_path=..., plate_config_path=...)``,
from local files: its hub download is never used). Any fast-plate-ocr model with its YAML works
(e.g. the newer ``cct_s_v2_global`` models).

The model reads a plate crop resized to its input (64x128 RGB for the default, no aspect keep)
and outputs, **per slot**, a softmax over its alphabet (``0-9A-Z`` plus the pad ``_``): shape
``[N, slots, len(alphabet)]``, slots = 9 for the default. A plate is the slot characters left to
right, pads at the end. Plates with more characters than slots cannot be read whole (the
default: 9; no national format in :data:`dashcam.vote.PLATE_FORMATS` is longer than 8); two-line
plates are read as the model was trained (the global model saw two-line plates, read top line
first), with no special handling here.

Constrained decoding (:func:`decode_slots`)
-------------------------------------------
As OpenALPR's post-processing does (``src/openalpr/postprocess/postprocess.cpp``: candidate
strings from per-character confidences, the best one that matches a region template wins), but
exact over the slot probabilities instead of a top-N permutation list: for every slot pattern of
the regions (``L`` letter, ``D`` digit; :data:`dashcam.vote.PLATE_FORMATS`), the best string that
fits it is the per-slot argmax over the slot's allowed characters, with pads after the last
character; its log-probability is the sum of those slots' log-probabilities. The best fitting
string is used when its probability is at least ``PRIOR_MIN_RATIO`` times that of the
unconstrained argmax string; else the plate is taken as read (a foreign plate, or a format not
in the table). With no patterns (region unknown, or a region without a fixed format) the decode
is the plain argmax.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from dashcam.settings import Settings

log = logging.getLogger(__name__)

# a fitting string is used when p(fitting) >= PRIOR_MIN_RATIO * p(as read): measured on the
# plates-images crops (docs/performance.md, issue 14 step 2)
PRIOR_MIN_RATIO = 0.1
_EPS = 1e-9


@dataclass(frozen=True)
class SlotDecode:
    """One decoded slot output: ``text`` ([A-Z0-9]), ``conf`` (mean probability of its
    characters' slots, 0 for an empty text), ``char_confs`` per character, ``logp`` (sum of the
    log-probabilities of all slots, pads included), ``constrained`` (a format pattern changed the
    reading)."""

    text: str
    conf: float
    char_confs: tuple[float, ...]
    logp: float
    constrained: bool = False


def _config_path(model_path: str, config: str | None, model_dir) -> str:
    from dashcam.models import resolve_model

    if config:
        return resolve_model(config, model_dir)
    p = Path(model_path)
    cand = p.with_name(p.stem + "_plate_config.yaml")
    if not cand.is_file():
        from dashcam.models import ModelNotFoundError

        raise ModelNotFoundError(
            f"plate OCR config not found: {cand} (set DASHCAM_PLATE_OCR_CONFIG to the model's fast-plate-ocr YAML)"
        )
    return str(cand)


class PlateRecognizer:
    """fast-plate-ocr recogniser from local files: plate crops -> per-slot probabilities.

    ``settings.plate_ocr_model`` resolves like the detection models (:func:`dashcam.models.resolve_model`:
    a path, or a file name in ``model_dir``); raises :class:`dashcam.models.ModelNotFoundError` when
    the model or its YAML is missing. The onnxruntime session runs on the execution providers of
    ``device`` (:func:`dashcam.models.resolve_device`), without intra-op thread spinning (the
    :func:`dashcam.models.ort_session` rule). Its input has a dynamic batch: :meth:`probs` reads
    all crops of a call in one run. Not thread-safe (one caller thread).
    """

    def __init__(self, model: str, config: str, device: str = "auto"):
        import onnxruntime as ort
        from fast_plate_ocr import LicensePlateRecognizer

        from dashcam.models import record_session, resolve_device

        dev = resolve_device(device)
        opts = ort.SessionOptions()
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.rec = LicensePlateRecognizer(
            onnx_model_path=model, plate_config_path=config, providers=dev.ort_providers(), sess_options=opts
        )
        record_session(model, self.rec.model)
        cfg = self.rec.config
        self.cfg = cfg
        self.alphabet = cfg.alphabet
        self.pad = cfg.alphabet.index(cfg.pad_char)
        self.slots = int(cfg.max_plate_slots)
        self.rgb = cfg.image_color_mode == "rgb"
        self.model_path = model

    def probs(self, crops_bgr: list[np.ndarray]) -> np.ndarray:
        """Per-slot softmax for each crop: ``float32 [N, slots, len(alphabet)]``. ``crops_bgr``:
        ``(h, w, 3)`` uint8 BGR plate crops (non-empty), resized to the model input as its YAML says."""
        from fast_plate_ocr.core.process import resize_image

        if not crops_bgr:
            return np.zeros((0, self.slots, len(self.alphabet)), np.float32)
        cfg = self.cfg
        frames = []
        for c in crops_bgr:
            img = cv2.cvtColor(c, cv2.COLOR_BGR2RGB) if self.rgb else cv2.cvtColor(c, cv2.COLOR_BGR2GRAY)
            frames.append(
                resize_image(
                    img,
                    cfg.img_height,
                    cfg.img_width,
                    image_color_mode=cfg.image_color_mode,
                    keep_aspect_ratio=cfg.keep_aspect_ratio,
                    interpolation_method=cfg.interpolation,
                    padding_color=cfg.padding_color,
                )
            )
        x = np.stack(frames).astype(np.uint8)
        out = self.rec.model.run([self.rec.plate_output_name], {"input": x})[0]
        return np.asarray(out, dtype=np.float32).reshape(len(crops_bgr), self.slots, len(self.alphabet))


@functools.lru_cache(maxsize=4)
def _cached(model: str, config: str, device: str) -> PlateRecognizer:
    return PlateRecognizer(model, config, device)


def load_plate_recognizer(settings: Settings) -> PlateRecognizer:
    """The :class:`PlateRecognizer` of ``settings`` (``plate_ocr_model``, ``plate_ocr_config``,
    ``device``), loaded once per process per resolved model, config and device. Raises
    :class:`dashcam.models.ModelNotFoundError` when the model or its YAML is missing."""
    from dashcam.models import resolve_model

    model = resolve_model(settings.plate_ocr_model, settings.model_dir)
    config = _config_path(model, settings.plate_ocr_config, settings.model_dir)
    return _cached(model, config, str(settings.device))


def _classes(alphabet: str, pad: int) -> dict[str, np.ndarray]:
    idx = np.arange(len(alphabet))
    digit = np.array([c.isdigit() for c in alphabet])
    letter = np.array([c.isalpha() for c in alphabet])
    no_oi = letter & ~np.isin(np.array(list(alphabet)), ["O", "I"])
    return {"D": idx[digit], "L": idx[letter], "l": idx[no_oi], "*": idx[(digit | letter) & (idx != pad)]}


def _as_read(p: np.ndarray, alphabet: str, pad: int) -> SlotDecode:
    k = p.argmax(axis=1)
    logp = float(np.log(p[np.arange(len(k)), k] + _EPS).sum())
    chars = [(alphabet[j], float(p[i, j])) for i, j in enumerate(k) if j != pad]
    return SlotDecode(
        "".join(c for c, _ in chars),
        float(np.mean([q for _, q in chars])) if chars else 0.0,
        tuple(q for _, q in chars),
        logp,
    )


def _fit(p: np.ndarray, pattern: str, letters_o_i: bool, alphabet: str, pad: int, cls) -> SlotDecode | None:
    n = len(pattern)
    if n > p.shape[0]:
        return None
    chars, confs, logp = [], [], 0.0
    for i, kind in enumerate(pattern):
        allowed = cls["l" if kind == "L" and not letters_o_i else kind]
        j = allowed[int(p[i, allowed].argmax())]
        chars.append(alphabet[j])
        confs.append(float(p[i, j]))
        logp += float(np.log(p[i, j] + _EPS))
    logp += float(np.log(p[n:, pad] + _EPS).sum())
    return SlotDecode("".join(chars), float(np.mean(confs)), tuple(confs), logp, True)


def decode_slots(
    p: np.ndarray, alphabet: str, pad: int, regions: Sequence[str] = (), min_ratio: float = PRIOR_MIN_RATIO
) -> SlotDecode:
    """Decode one slot output ``p`` (``[slots, len(alphabet)]`` probabilities) with the plate
    formats of ``regions`` (keys of :data:`dashcam.vote.PLATE_FORMATS`; ``()`` = plain argmax).

    Rule (module docstring): the most probable string fitting any pattern of the regions wins
    when ``p(fit) >= min_ratio * p(argmax)``; else the argmax reading. A region with
    ``o_is_zero`` (US) and no patterns writes ``O`` as ``0`` (its plates print them alike).
    Unknown region names raise ``ValueError``."""
    from dashcam.vote import formats_of

    fmts = formats_of(regions)
    read = _as_read(p, alphabet, pad)
    cls = _classes(alphabet, pad)
    best = None
    for f in fmts:
        for pat in f.patterns:
            d = _fit(p, pat, f.letters_o_i, alphabet, pad, cls)
            if d is not None and (best is None or d.logp > best.logp):
                best = d
    if best is not None and best.logp >= read.logp + np.log(min_ratio):
        return best if best.text != read.text else read
    if fmts and any(f.o_is_zero for f in fmts) and not any(f.patterns for f in fmts) and "O" in read.text:
        return SlotDecode(read.text.replace("O", "0"), read.conf, read.char_confs, read.logp, True)
    return read


def mean_slots(ps: Sequence[np.ndarray], weights: Sequence[float] | None = None) -> np.ndarray:
    """Weighted mean of several slot outputs of one plate (same shape ``[slots, V]``): the
    per-slot evidence that the vote decodes once (:func:`dashcam.vote.vote_track`)."""
    arr = np.stack([np.asarray(p, dtype=np.float64) for p in ps])
    w = np.ones(len(arr)) if weights is None else np.maximum(np.asarray(weights, dtype=np.float64), 1e-6)
    return (arr * w[:, None, None]).sum(axis=0) / w.sum()


# slot outputs travel in PlateRead records as JSON: one {char: p} per slot (p >= SLOT_KEEP_P),
# pad under "" - independent of the model's alphabet order
SLOT_KEEP_P = 1e-3
CANON = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def slots_to_json(p: np.ndarray, alphabet: str, pad: int) -> list[dict[str, float]]:
    """``[slots, V]`` probabilities -> ``[{char: p}]`` per slot (pad as ``""``, p >= ``SLOT_KEEP_P``,
    4 decimals): the compact form stored in :attr:`dashcam.records.PlateRead.slot_probs`."""
    out = []
    for row in np.asarray(p):
        d = {}
        for j in np.nonzero(row >= SLOT_KEEP_P)[0]:
            c = "" if j == pad else alphabet[j]
            if c == "" or c in CANON:
                d[c] = round(float(row[j]), 4)
        out.append(d)
    return out


def slots_from_json(slots: list[dict[str, float]]) -> np.ndarray:
    """Inverse of :func:`slots_to_json` over the canonical alphabet ``CANON`` + pad (index 36):
    ``float64 [slots, 37]``, each row renormalised to sum 1 (the dropped small probabilities)."""
    p = np.full((len(slots), len(CANON) + 1), 1e-6)
    for i, d in enumerate(slots):
        for c, q in d.items():
            p[i, len(CANON) if c == "" else CANON.index(c)] = q
    return p / p.sum(axis=1, keepdims=True)


CANON_PAD = len(CANON)
CANON_ALPHABET = CANON + "_"
