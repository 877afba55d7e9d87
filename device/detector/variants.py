"""The BlazeFace variants we ship, with MediaPipe's own graph options for each.

Values come from MediaPipe's ``face_detection_short_range.pbtxt`` /
``face_detection_full_range.pbtxt`` and the shared ``face_detection.pbtxt``
(SsdAnchorsCalculator, TensorsToDetectionsCalculator, NonMaxSuppressionCalculator nodes).
"""

from __future__ import annotations

from dataclasses import dataclass

from device.detector.anchors import AnchorOptions


@dataclass(frozen=True)
class DetectorVariant:
    """One BlazeFace model family and how to decode its outputs.

    Attributes:
        name: ``"short"`` or ``"full"``.
        anchors: anchor options (input size, strides, interpolated aspect ratio).
        score_threshold: MediaPipe's ``min_score_thresh``.
        nms_iou: MediaPipe's ``min_suppression_threshold`` (IoU, weighted NMS).
        score_clip: MediaPipe's ``score_clipping_thresh`` (logits clipped before the sigmoid).
        float_model / int8_model: file names in ``models/src`` and ``models/``.
    """

    name: str
    anchors: AnchorOptions
    score_threshold: float
    float_model: str
    int8_model: str
    nms_iou: float = 0.3
    score_clip: float = 100.0

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
    # instead of 192x108, so faces are 1.67x larger in the input, for 1.67x the compute
    "full_wide": DetectorVariant(
        "full_wide", AnchorOptions(320, 192, (4,), interpolated_scale_aspect_ratio=0.0),
        score_threshold=0.6, float_model="face_detection_full_range.tflite",
        int8_model="face_detector_full_wide_int8.tflite"),
}

DEFAULT_VARIANT = "full_wide"
