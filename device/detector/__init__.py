"""Face detection: YuNet-n (shipped) and MediaPipe BlazeFace (short / full range), with our own
priors and anchors, decoding and NMS.

``FaceDetector(default_detector_path())`` is the usual entry point.
"""

from __future__ import annotations

from pathlib import Path

from device.detector.face_detector import FaceDetector
from device.detector.variants import DEFAULT_VARIANT, DETECTOR_VARIANTS, DetectorVariant
from device.models import MODELS_DIR

__all__ = ["FaceDetector", "DETECTOR_VARIANTS", "DEFAULT_VARIANT", "DetectorVariant",
           "default_detector_path", "float_detector_path"]


def _variant(name: str) -> DetectorVariant:
    try:
        return DETECTOR_VARIANTS[name]
    except KeyError:
        raise ValueError(f"unknown detector variant {name!r}; "
                         f"choose from {sorted(DETECTOR_VARIANTS)}") from None


def default_detector_path(variant: str = DEFAULT_VARIANT) -> Path:
    """The int8 model of ``variant`` (``DEFAULT_VARIANT``, the shipped one, by default) in
    ``models/``; BlazeFace's ``full_wide`` lies in ``models/src``, which is not installed."""
    return MODELS_DIR / _variant(variant).int8_model


def float_detector_path(variant: str = DEFAULT_VARIANT) -> Path:
    """The float model of ``variant`` in ``models/src`` (MediaPipe's, a reference and conversion
    input; YuNet's float source is its ONNX export, outside ``models/``)."""
    return MODELS_DIR / "src" / _variant(variant).float_model
