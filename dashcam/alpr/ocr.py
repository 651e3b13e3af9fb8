"""Plate OCR: the plate crop, its sharpness, and the recognisers behind :class:`PlateReader`.

By default (``Settings.ocr_engine = "plate"``) the fast-plate-ocr plate recogniser of
:mod:`dashcam.platerec` (CCT-XS v1 global, per-slot softmax over ``0-9A-Z``), two crops per plate
with their slot probabilities averaged, region plate formats applied over those probabilities
(constrained decoding). ``"rapidocr"``: PaddleOCR PP-OCRv6 text recogniser (CTC) as shipped in the
``rapidocr`` wheel (ONNX on onnxruntime), run by us and decoded with the alphabet **restricted to
[A-Z0-9]** (lower-case letter probability folded into the upper-case letter; separators ``-``,
space, ``·``, ``.`` act as blanks): a "constrained CTC greedy decode" (Graves et al. 2006 CTC;
alphabet restriction as in OpenALPR/fast-plate-ocr plate-specific alphabets), with 4 trimmed crop
variants, the most confident kept.

Crops are ``(h, w, 3)`` uint8 BGR views of the image; plate boxes are in that image's pixels.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from dashcam.alpr.geometry import BoxLike, expand_bbox
from dashcam.models import load_rapidocr, ort_session, record_session, release_freed_memory, resolve_device
from dashcam.records import BBox

if TYPE_CHECKING:  # pragma: no cover
    from dashcam.settings import Settings

# OCR crops: (x, y) fractions of the plate box w/h added on each side (negative = trim). Measured
# on the 161 captured plates of plates-images (bench/accuracy.py): trimming 10% top and bottom
# cuts the US state name / slogan and frame (+3 pt US vs the raw box, +14 pt vs +12% margin);
# reading 4 variants and keeping the most confident gains another ~2 pt (EU folded 96 -> 100%).
PLATE_CROP_MARGIN = (0.03, -0.10)
PLATE_CROP_VARIANTS = ((0.03, -0.10), (0.05, -0.05), (0.03, -0.15), (0.08, -0.10))
# The plate recogniser (ocr_engine "plate") wants context instead: of 8 margins and 20 variant sets
# measured on the 162 captured plates-images plates, the slot probabilities of these two crops
# averaged read best (US 93.5% exact vs 81.5% for PP-OCR's 4 variants; docs/performance.md)
PLATE_MODEL_VARIANTS = ((0.08, 0.10), (0.15, 0.30))

_NON_ALNUM = re.compile(r"[^A-Z0-9]")


def normalize_plate(raw: str) -> str:
    """Upper-case ``raw`` and keep only ``[A-Z0-9]`` (ASCII); ``"xs-nb 23"`` -> ``"XSNB23"``."""
    return _NON_ALNUM.sub("", (raw or "").upper())


def plate_sharpness(crop: np.ndarray) -> float:
    """Variance of the Laplacian of the grey crop (Pech-Pacheco et al. 2000 focus measure).

    ``crop``: ``(H, W, 3)`` BGR or ``(H, W)`` grey uint8. Returns a float >= 0 (0 for an empty
    crop); higher is sharper. Scale-dependent: compare crops of similar size only.
    """
    if crop is None or crop.size == 0:
        return 0.0
    grey = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY) if crop.ndim == 3 else crop
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def crop_plate(image: np.ndarray, plate_bbox: BoxLike, margin: tuple[float, float] = PLATE_CROP_MARGIN) -> np.ndarray:
    """The plate crop used for OCR: ``plate_bbox`` (image pixels) grown by ``margin`` (x, y
    fractions of its width/height), clipped (:func:`dashcam.alpr.geometry.expand_bbox`).

    Detector boxes are often tight and can shave the first/last character; the margin is what
    the recogniser was trained on (text lines with some background). Returns a view
    ``(h, w, 3)`` uint8 (may be empty for a degenerate box).
    """
    h, w = image.shape[:2]
    x1, y1, x2, y2 = expand_bbox(plate_bbox, margin[0], margin[1], w, h)
    return image[y1:y2, x1:x2]


@dataclass(frozen=True)
class PlateText:
    """One OCR result: ``text`` normalised ``[A-Z0-9]`` (may be ``""``), ``raw_text`` the
    unconstrained greedy decode of the same recogniser output, ``conf`` in [0, 1] (mean of the
    per-character probabilities of ``text``; 0 when empty), ``char_confs`` per character;
    ``slots``: for the plate recogniser, its per-slot probabilities in the compact JSON form of
    :func:`dashcam.platerec.slots_to_json` (``None`` for PP-OCR)."""

    text: str
    raw_text: str
    conf: float
    char_confs: tuple[float, ...] = ()
    slots: list | None = field(default=None, compare=False)


_SEPARATORS = ("-", " ", "·", ".", "•", "=", ":", "_", "—", "–")


class _ConstrainedRec:
    """Run rapidocr's PP-OCR recogniser and CTC-decode with an [A-Z0-9] alphabet."""

    def __init__(self, device: str = "auto"):
        engine = load_rapidocr()
        self.rec = engine._load_rec_model()  # rapidocr.ch_ppocr_rec.TextRecognizer
        # the same recogniser in a session of ours: no thread spinning, the resolved device's
        # execution providers (dashcam.models.ort_session)
        inner: Any = getattr(self.rec.session, "session", None)
        path = getattr(inner, "_model_path", None)
        if path and inner.get_providers()[0] == "CPUExecutionProvider":
            self.rec.session.session = ort_session(path, resolve_device(device))
            release_freed_memory()
        elif path:
            record_session(path, inner)
        chars = list(self.rec.postprocess_op.character)  # index 0 = "blank"
        self.chars = chars
        self.n = len(chars)
        allowed = [str(c) for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"]
        idx = {c: i for i, c in enumerate(chars)}
        # (target column, [source columns]) - lower case folded into upper case
        self.groups = []
        for c in allowed:
            src = [idx[c]] if c in idx else []
            if c.isalpha() and c.lower() in idx:
                src.append(idx[c.lower()])
            # full-width forms (e.g. U+FF21) sometimes win on plates
            fw = chr(ord(c) + 0xFEE0)
            if fw in idx:
                src.append(idx[fw])
            if src:
                self.groups.append((c, src))
        self.blank_src = [0] + [idx[s] for s in _SEPARATORS if s in idx]

    def __call__(self, crops: list[np.ndarray]) -> list[PlateText]:
        out: list[PlateText] = []
        b = 6
        for s in range(0, len(crops), b):
            batch = crops[s : s + b]
            _, ih, iw = self.rec.rec_image_shape
            max_ratio = max([iw / ih] + [c.shape[1] / c.shape[0] for c in batch])
            x = np.stack([self.rec.resize_norm_img(c, max_ratio) for c in batch]).astype(np.float32)
            preds = np.asarray(self.rec.session(x))  # (N, T, C) softmax
            for p in preds:
                out.append(self._decode(p))
        return out

    def _decode(self, p: np.ndarray) -> PlateText:
        # raw (unconstrained) greedy decode, for display/debug
        am = p.argmax(axis=1)
        raw, prev = [], -1
        for k in am:
            if k != prev and k != 0:
                raw.append(self.chars[k])
            prev = k
        # constrained: columns = [blank] + allowed chars
        cols = [p[:, self.blank_src].sum(axis=1)]
        names = [""]
        for c, src in self.groups:
            cols.append(p[:, src].sum(axis=1))
            names.append(c)
        q = np.stack(cols, axis=1)
        # residual mass of all other symbols is ignored; renormalise over the kept alphabet
        q = q / np.maximum(q.sum(axis=1, keepdims=True), 1e-9)
        k = q.argmax(axis=1)
        text, confs = [], []
        prev = -1
        for t, kk in enumerate(k):
            if kk != prev and kk != 0:
                text.append(names[kk])
                confs.append(float(q[t, kk]))
            elif kk == prev and kk != 0:
                confs[-1] = max(confs[-1], float(q[t, kk]))
            prev = kk
        txt = "".join(text)
        conf = float(np.mean(confs)) if confs else 0.0
        return PlateText(txt, "".join(raw), conf, tuple(confs))


class PlateReader:
    """Read plate text from a plate crop.

    ``settings.ocr_engine``: ``"plate"`` (default; the fast-plate-ocr plate recogniser of
    :mod:`dashcam.platerec`, crops ``PLATE_MODEL_VARIANTS`` averaged per slot), ``"rapidocr"``
    (PP-OCRv6 rec from the rapidocr wheel, constrained CTC decode, see module docstring) or ``"paddleocr"`` (PaddleOCR 3.x
    ``TextRecognition(model_dir=settings.model_dir / "paddleocr_rec")``; the ``paddleocr``
    package is imported lazily and a clear ``ImportError`` is raised if it is missing).
    Not thread-safe.
    """

    def __init__(self, settings: Settings):
        self.settings = settings
        self.engine = settings.ocr_engine
        if self.engine == "plate":
            from dashcam.platerec import load_plate_recognizer

            self._plate = load_plate_recognizer(settings)
        elif self.engine == "rapidocr":
            self._rec = _ConstrainedRec(settings.device)
        elif self.engine == "paddleocr":
            try:
                from paddleocr import TextRecognition  # noqa: PLC0415
            except ImportError as e:  # pragma: no cover - optional dependency
                raise ImportError(
                    "ocr_engine='paddleocr' needs the optional dependency: pip install "
                    "'dashcam-pipeline[paddle]' (paddleocr>=3, paddlepaddle), and a recogniser "
                    "model folder at <model_dir>/paddleocr_rec"
                ) from e
            if settings.model_dir is None:
                raise ValueError("ocr_engine='paddleocr' needs Settings.model_dir (holding paddleocr_rec/)")
            model_dir = Path(settings.model_dir) / "paddleocr_rec"
            if not model_dir.is_dir():
                raise FileNotFoundError(f"PaddleOCR recogniser model folder not found: {model_dir}")
            self._paddle = TextRecognition(model_dir=str(model_dir))
        else:
            raise ValueError(f"unknown ocr_engine {self.engine!r}")

    def read(self, plate_crop_bgr: np.ndarray) -> PlateText:
        """OCR one plate crop (``(h, w, 3)`` uint8 BGR, e.g. from :func:`crop_plate`)."""
        return self.read_many([plate_crop_bgr])[0]

    @property
    def variants(self) -> tuple[tuple[float, float], ...]:
        """The crop margins this engine reads each plate box with (see :meth:`read_boxes`)."""
        return PLATE_MODEL_VARIANTS if self.engine == "plate" else PLATE_CROP_VARIANTS

    def read_boxes(
        self,
        image_bgr: np.ndarray,
        plate_bboxes: list[BBox],
        variants: tuple[tuple[float, float], ...] | None = None,
        regions: tuple[str, ...] = (),
    ) -> list[PlateText]:
        """OCR plates given by boxes (image pixels) with test-time crop variants: each box is
        cropped with every ``(x, y)`` margin of ``variants`` (default :attr:`variants`; see
        :func:`crop_plate`). Plate recogniser: the crops' slot probabilities are averaged per box
        and decoded once, with the plate formats of ``regions`` (constrained decoding,
        :func:`dashcam.platerec.decode_slots`; ``()`` = as read). PP-OCR: the most confident
        variant is kept (``regions`` is applied by the caller, :func:`dashcam.vote.apply_format_prior`).
        Cost per plate on 2 CPU cores: plate recogniser ~2-4 ms per crop, PP-OCR ~6-20 ms per crop."""
        if not plate_bboxes:
            return []
        variants = self.variants if variants is None else variants
        if self.engine == "plate":
            return self._read_boxes_plate(image_bgr, plate_bboxes, variants, regions)
        crops = [crop_plate(image_bgr, b, m) for b in plate_bboxes for m in variants]
        outs = self.read_many(crops)
        k = len(variants)
        return [max(outs[i * k : (i + 1) * k], key=lambda o: o.conf) for i in range(len(plate_bboxes))]

    def _read_boxes_plate(self, image_bgr, plate_bboxes, variants, regions) -> list[PlateText]:
        from dashcam.platerec import decode_slots, mean_slots, slots_to_json

        crops = [crop_plate(image_bgr, b, m) for b in plate_bboxes for m in variants]
        ok = [min(c.shape[:2]) >= 4 for c in crops]
        probs = self._plate.probs([c for c, g in zip(crops, ok, strict=True) if g])
        it = iter(probs)
        per_crop = [next(it) if g else None for g in ok]
        k, rec, out = len(variants), self._plate, []
        for i in range(len(plate_bboxes)):
            ps = [p for p in per_crop[i * k : (i + 1) * k] if p is not None]
            if not ps:
                out.append(PlateText("", "", 0.0))
                continue
            p = mean_slots(ps)
            read = decode_slots(p, rec.alphabet, rec.pad, ())
            d = decode_slots(p, rec.alphabet, rec.pad, regions) if regions else read
            out.append(PlateText(d.text, read.text, d.conf, d.char_confs, slots_to_json(p, rec.alphabet, rec.pad)))
        return out

    def read_many(self, crops: list[np.ndarray]) -> list[PlateText]:
        """OCR several crops in batches of 6 (one recogniser call per batch). Empty or
        degenerate crops give ``PlateText("", "", 0.0)``."""
        ok = [i for i, c in enumerate(crops) if c is not None and c.ndim == 3 and min(c.shape[:2]) >= 4]
        res = [PlateText("", "", 0.0)] * len(crops)
        if not ok:
            return res
        # No upscaling: the recogniser resizes to 48 px height itself; cubic pre-upscaling of
        # small crops measured neutral-to-worse (-2 pt US) on plates-images.
        prepped = [np.ascontiguousarray(crops[i]) for i in ok]
        if self.engine == "plate":
            from dashcam.platerec import decode_slots, slots_to_json

            rec = self._plate
            outs = []
            for p in rec.probs(prepped):
                d = decode_slots(p, rec.alphabet, rec.pad, ())
                outs.append(PlateText(d.text, d.text, d.conf, d.char_confs, slots_to_json(p, rec.alphabet, rec.pad)))
        elif self.engine == "rapidocr":
            outs = self._rec(prepped)
        else:  # paddleocr
            outs = []
            for c in prepped:
                r = self._paddle.predict(c)
                r0 = r[0] if r else {}
                raw = str(r0.get("rec_text", ""))
                outs.append(PlateText(normalize_plate(raw), raw, float(r0.get("rec_score", 0.0))))
        for i, o in zip(ok, outs, strict=True):
            res[i] = o
        return res
