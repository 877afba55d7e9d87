"""The detector variants: MediaPipe BlazeFace (short / full range) and YuNet-n.

BlazeFace values come from MediaPipe's ``face_detection_short_range.pbtxt`` /
``face_detection_full_range.pbtxt`` and the shared ``face_detection.pbtxt``
(SsdAnchorsCalculator, TensorsToDetectionsCalculator, NonMaxSuppressionCalculator nodes).
YuNet's are in ``device.detector.yunet`` and, for its threshold and input size, in
``models/README.md``.
"""

from __future__ import annotations

from dataclasses import dataclass

from device.detector.anchors import AnchorOptions


@dataclass(frozen=True)
class DetectorVariant:
    """One detector model and how to decode its outputs.

    Attributes:
        name: ``"short"``, ``"full"``, ``"full_wide"`` or ``"yunet"``.
        anchors: anchor options (input size, strides, interpolated aspect ratio; for YuNet only
            the input size and strides, its priors come from ``device.detector.yunet``).
        score_threshold: MediaPipe's ``min_score_thresh``.
        nms_iou: MediaPipe's ``min_suppression_threshold`` (IoU, weighted NMS).
        score_clip: MediaPipe's ``score_clipping_thresh`` (logits clipped before the sigmoid).
        float_model / int8_model: file names in ``models/src`` and ``models/``.
        family: ``"blazeface"`` (a 16-value regressor and a score per anchor, input [-1, 1])
            or ``"yunet"`` (twelve head maps found by name, input in pixel values 0..255).
    """

    name: str
    anchors: AnchorOptions
    score_threshold: float
    float_model: str
    int8_model: str
    nms_iou: float = 0.3
    score_clip: float = 100.0
    family: str = "blazeface"

    @property
    def input_size(self) -> tuple[int, int]:
        """(width, height) of the model input."""
        return self.anchors.input_width, self.anchors.input_height


DETECTOR_VARIANTS: dict[str, DetectorVariant] = {
    # faces within ~2 m; 128x128, 896 anchors
    "short": DetectorVariant(
        "short", AnchorOptions(128, 128, (8, 16, 16, 16), interpolated_scale_aspect_ratio=1.0),
        score_threshold=0.5, float_model="face_detection_short_range.tflite",
        int8_model="face_detector_short_int8.tflite"),
    # faces within ~5 m; 192x192, 2304 anchors (one per 4x4 cell)
    "full": DetectorVariant(
        "full", AnchorOptions(192, 192, (4,), interpolated_scale_aspect_ratio=0.0),
        score_threshold=0.6, float_model="face_detection_full_range.tflite",
        int8_model="face_detector_full_int8.tflite"),
    # the full-range weights on a 320x192 input (made by tools.convert): 16:9 frames fill 320x180
    # instead of 192x108, so faces are 1.67x larger in the input, for 1.67x the compute; the
    # default until models 1.6.0, kept in models/src (not installed) for comparison
    "full_wide": DetectorVariant(
        "full_wide", AnchorOptions(320, 192, (4,), interpolated_scale_aspect_ratio=0.0),
        score_threshold=0.6, float_model="face_detection_full_range.tflite",
        int8_model="src/face_detector_full_wide_int8.tflite"),
    # YuNet-n (libfacedetection), made for int8: 320x192 input, priors at strides 8, 16, 32; the
    # shipped default from models 1.6.0 (its float source is the ONNX export, not in models/)
    "yunet": DetectorVariant(
        "yunet", AnchorOptions(320, 192, (8, 16, 32)), score_threshold=0.6,
        float_model="face_detector_yunet_float.tflite",
        int8_model="face_detector_yunet_int8.tflite", family="yunet"),
}

DEFAULT_VARIANT = "yunet"
