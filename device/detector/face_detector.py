"""``FaceDetector``: BlazeFace or YuNet through the TFLite runtime seam, with pure
pre/post-processing."""

from __future__ import annotations

import dataclasses
import os

import cv2
import numpy as np

from device.detector import yunet
from device.detector.anchors import generate_anchors
from device.detector.decode import select
from device.detector.letterbox import Letterbox, letterbox_image, shrink_whole, to_model_range
from device.detector.nms import weighted_nms
from device.detector.tiling import detection_regions
from device.detector.variants import DETECTOR_VARIANTS, DetectorVariant
from device.errors import ModelError
from device.runtime import TFLiteModel, dequantize, pixel_lut
from device.types import Detection


def family_of(model) -> str:
    """``"yunet"`` when the model's outputs are YuNet's twelve named head maps, else
    ``"blazeface"`` (models are recognised by their outputs and their input size)."""
    names = {_output_name(model, spec) for spec in model.outputs}
    return "yunet" if names == set(yunet.output_names()) else "blazeface"


def _output_name(model, spec) -> str:
    signature = getattr(model, "signature_names", {}) or {}
    return signature.get(spec.index, spec.name)


def variant_for_input(width: int, height: int, family: str = "blazeface") -> DetectorVariant:
    """The variant of ``family`` whose input is ``width`` x ``height``. YuNet takes any input
    whose sides are multiples of 32 (the shipped variant's settings at that size)."""
    for v in DETECTOR_VARIANTS.values():
        if v.family == family and v.input_size == (width, height):
            return v
    if family == "yunet" and width % 32 == 0 and height % 32 == 0:
        v = DETECTOR_VARIANTS["yunet"]
        return dataclasses.replace(v, anchors=dataclasses.replace(
            v.anchors, input_width=width, input_height=height))
    what = "BlazeFace" if family == "blazeface" else "YuNet"
    raise ModelError(f"no {what} variant takes a {width}x{height} input")


def output_roles(shapes: list[tuple[int, ...]]) -> tuple[int, int]:
    """Indices of (regressors, scores) among the outputs, told apart by their last axis (16 / 1)."""
    last = [s[-1] for s in shapes]
    if sorted(last) != [1, 16]:
        raise ModelError(f"expected a 16-value regressor and a 1-value score output, got {shapes}")
    return last.index(16), last.index(1)


def shrink_factor(regions, input_size) -> int:
    """The whole-number factor every region can be shrunk by before its letterbox (>= 1)."""
    iw, ih = input_size
    finest = max(min(iw / (x2 - x1), ih / (y2 - y1)) for x1, y1, x2, y2 in regions)
    return max(1, int(1.0 / finest + 1e-9)) if finest <= 0.5 else 1


def to_detections(rows: np.ndarray, scores: np.ndarray, lb: Letterbox,
                  width: int, height: int) -> list[Detection]:
    """Normalised rows (x1, y1, x2, y2, 6 keypoints) to ``Detection``s in frame pixels.

    Boxes are clipped to the ``width`` x ``height`` frame; keypoints are not.
    """
    out = []
    for row, score in zip(rows, scores, strict=True):
        pts = lb.to_frame(row.reshape(-1, 2))
        x1, y1 = np.clip(pts[0], 0, (width, height))
        x2, y2 = np.clip(pts[1], 0, (width, height))
        out.append(Detection((float(x1), float(y1), float(x2), float(y2)), float(score),
                             pts[2:].astype(np.float32)))
    return out


class FaceDetector:
    """Finds faces in BGR frames with a BlazeFace or YuNet model (float or int8).

    Args:
        model_path: a detector ``.tflite``: BlazeFace (short 128x128, full 192x192, full_wide
            320x192) or YuNet (320x192 shipped), float or int8.
        threads: interpreter CPU threads.
        score_threshold: minimum face score; None uses MediaPipe's value for the variant.
        nms_iou: IoU above which boxes merge in weighted NMS; None uses MediaPipe's 0.3.
        model: an already loaded model with ``inputs``/``outputs``/``run`` (tests, Edge TPU);
            ``model_path`` is then ignored.
        tiles: tiles per side for large frames (see ``tiling``): "auto" (1 below 720 px tall,
            2 below 1200, then 3), or a number; 1 runs the model on the whole frame only.
    """

    def __init__(self, model_path: str | os.PathLike | None = None, threads: int = 1,
                 score_threshold: float | None = None, nms_iou: float | None = None,
                 model=None, tiles: int | str = "auto"):
        self.model = model if model is not None else TFLiteModel(model_path, threads=threads)
        shape = self.model.inputs[0].shape
        if len(shape) != 4 or shape[3] != 3:
            raise ModelError(f"detector input must be 1 x H x W x 3, got {shape}")
        self.family = family_of(self.model)
        self.eye_map = None  # YuNet: yunet.EYE_MAP (a dict to measure another one)
        self.variant = variant_for_input(shape[2], shape[1], self.family)
        self.size = self.variant.input_size
        if self.family == "yunet":
            self._heads = self._yunet_heads()
            self.anchors = yunet.priors(*self.size)
        else:
            self.anchors = generate_anchors(self.variant.anchors)
            self._roles = output_roles([s.shape for s in self.model.outputs])
            n = self.model.outputs[self._roles[0]].shape[-2]
            if n != len(self.anchors):
                raise ModelError(f"model has {n} boxes, variant {self.variant.name!r} "
                                 f"expects {len(self.anchors)}")
        self.score_threshold = (self.variant.score_threshold if score_threshold is None
                                else float(score_threshold))
        self.nms_iou = self.variant.nms_iou if nms_iou is None else float(nms_iou)
        if tiles != "auto" and (not str(tiles).isdigit() or int(tiles) < 1):
            raise ValueError(f"tiles must be 'auto' or a positive number, got {tiles!r}")
        self.tiles = tiles
        # the logit below which no anchor can reach the score threshold (sigmoid is monotonic)
        t = min(max(self.score_threshold, 1e-6), 1 - 1e-6)
        self._logit_floor = (yunet.score_floor(t) if self.family == "yunet"
                             else float(np.log(t / (1 - t))) - 1e-4)
        # uint8 pixel -> input tensor value in one table lookup (no float image in between)
        self._lut = (pixel_lut(self.model.inputs[0], self._to_float)
                     if hasattr(self.model, "run_raw") else None)
        # an int8 input of scale 1 and zero point -128 (YuNet) holds each pixel's bits with the
        # top one flipped: one XOR instead of the table, the same bytes
        self._flip_top_bit = (
            self._lut is not None and self._lut.dtype == np.int8
            and np.array_equal(self._lut.view(np.uint8), np.arange(256, dtype=np.uint8) ^ 0x80))

    def _to_float(self, pixels: np.ndarray) -> np.ndarray:
        """uint8 pixel values (any shape) as the model's float input: [-1, 1] for BlazeFace,
        the pixel values themselves for YuNet."""
        p = np.asarray(pixels, np.float32)
        return p if self.family == "yunet" else (p - 127.5) / 127.5

    def _yunet_heads(self) -> list[int]:
        """Output indices of YuNet's twelve heads in ``yunet.output_names()`` order."""
        by_name = {_output_name(self.model, s): i for i, s in enumerate(self.model.outputs)}
        return [by_name[n] for n in yunet.output_names()]

    def _run(self, rgb: np.ndarray) -> list[np.ndarray]:
        """The model's outputs for one letterboxed RGB input, each in its own (integer or float)
        type when the model takes raw input, else as floats."""
        if self._lut is None:
            x = to_model_range(rgb) if self.family == "blazeface" else rgb[None].astype(np.float32)
            return self.model.run(x)
        if self._flip_top_bit:
            x = np.bitwise_xor(rgb, np.uint8(0x80)).view(np.int8)
        elif self._lut.itemsize == 1:  # int8/uint8 input: OpenCV's LUT on the same bytes
            x = cv2.LUT(rgb, self._lut.view(np.uint8)).view(self._lut.dtype)
        else:
            x = self._lut[rgb]
        return self.model.run_raw(x[None], dequantize_outputs=False)

    def _float(self, outs: list[np.ndarray], i: int) -> np.ndarray:
        """Output ``i`` of ``_run`` as float values."""
        return dequantize(outs[i], self.model.outputs[i]) if self._lut is not None else outs[i]

    def _yunet_rows(self, outs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """YuNet's candidates over the score threshold: (rows N x 16, scores N)."""
        n = len(yunet.STRIDES)
        heads = [np.concatenate([self._float(outs, self._heads[h * n + k]).reshape(
            -1, yunet.CHANNELS[name]) for k in range(n)]) for h, name in enumerate(yunet.HEADS)]
        cls, obj = heads[0].reshape(-1), heads[1].reshape(-1)
        # only priors whose two score heads can both pass are scored and decoded
        keep = np.flatnonzero((cls >= self._logit_floor) & (obj >= self._logit_floor))
        score = yunet.scores(cls[keep], obj[keep], self.variant.score_clip)
        passed = score >= self.score_threshold
        keep, score = keep[passed], score[passed]
        rows = yunet.decode(heads[2][keep], heads[3][keep], self.anchors[keep], *self.size)
        return yunet.six_keypoints(rows, *self.size, self.eye_map), score

    def score_logits(self, rgb: np.ndarray) -> np.ndarray:
        """Every anchor's (prior's) score as a logit, for one H x W x 3 uint8 RGB picture the
        size of the model input (the known-answer fingerprint). YuNet's is the logit of its
        geometric-mean score, in float64."""
        outs = self._run(rgb)
        if self.family == "yunet":
            maps = [self._float(outs, i) for i in self._heads]
            cls = np.concatenate([m.reshape(-1) for m in maps[0:3]])
            obj = np.concatenate([m.reshape(-1) for m in maps[3:6]])
            s = np.clip(yunet.scores(cls, obj).astype(np.float64), 1e-30, 1 - 1e-16)
            return np.log(s / (1 - s)).astype(np.float32)
        return self._float(outs, self._roles[1]).reshape(-1)

    def raw(self, image_bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray, Letterbox]:
        """Run the model on a frame; returns (normalised rows, scores, letterbox) before NMS."""
        rgb, lb = letterbox_image(image_bgr, *self.size)
        if self.family == "yunet":
            return (*self._yunet_rows(self._run(rgb)), lb)
        if self._lut is not None:
            outs = self._run(rgb)
            reg_spec, cls_spec = (self.model.outputs[i] for i in self._roles)
            cls = dequantize(outs[self._roles[1]], cls_spec).reshape(-1)
            # only anchors that can pass the threshold get their 16 regressor values dequantised
            keep = np.flatnonzero(cls >= self._logit_floor)
            reg = dequantize(outs[self._roles[0]].reshape(len(cls), -1)[keep], reg_spec)
            rows, scores = select(reg, cls[keep], self.anchors[keep], self.size,
                                  self.score_threshold, self.variant.score_clip)
            return rows, scores, lb
        outs = self.model.run(to_model_range(rgb))
        reg, cls = outs[self._roles[0]], outs[self._roles[1]]
        rows, scores = select(reg, cls, self.anchors, self.size, self.score_threshold,
                              self.variant.score_clip)
        return rows, scores, lb

    def detect(self, image_bgr: np.ndarray) -> list[Detection]:
        """All faces in one H x W x 3 uint8 BGR frame, best score first, in frame pixels."""
        if image_bgr is None or image_bgr.ndim != 3 or image_bgr.shape[2] != 3:
            raise ValueError("detect() wants an H x W x 3 BGR image")
        h, w = image_bgr.shape[:2]
        regions = detection_regions(w, h, self.tiles)
        # One whole-number box-filter shrink first (fast, the same on every CPU, and it averages
        # every pixel so small faces keep their contrast); the letterbox then has at most 2x left.
        # Shrunk pixel (i, j) covers frame pixels [i*k, (i+1)*k): frame = shrunk * k, exactly.
        k = shrink_factor(regions, self.size)
        if k > 1:
            image_bgr = shrink_whole(image_bgr, k)
            sh, sw = image_bgr.shape[:2]
            regions = [(min(x1 // k, sw), min(y1 // k, sh), min(x2 // k, sw), min(y2 // k, sh))
                       for x1, y1, x2, y2 in regions]
        # every region's candidates in normalised frame coordinates, merged by one weighted NMS
        all_rows, all_scores = [], []
        frame = Letterbox(1.0, (0, 0), (w, h))
        to_norm = np.array([k / w, k / h], np.float32)
        for x1, y1, x2, y2 in regions:
            rows, scores, lb = self.raw(image_bgr[y1:y2, x1:x2])
            if len(rows):
                pts = lb.to_frame(rows.reshape(-1, 2)) + np.array([x1, y1], np.float32)
                all_rows.append((pts * to_norm).reshape(len(rows), -1))
                all_scores.append(scores)
        if not all_rows:
            return []
        rows, scores = weighted_nms(np.concatenate(all_rows), np.concatenate(all_scores),
                                    self.nms_iou)
        return to_detections(rows, scores, frame, w, h)
