"""The appliance's own path for evaluation: installed models, detector -> align -> analyzer."""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from device.align import align_face
from device.analyzer import Analyzer
from device.manifest import load_manifest, model_path
from device.types import EMOTIONS, GENDERS
from tools.datasets.faces import CHIP_PAD, crop_to_input, detect_eyes_on_chip

UNTOLD = -1  # gender index of a face whose gender the appliance did not tell


@dataclass
class Predictions:
    """Decoded analyzer outputs for N faces: years, gender index (0 male, 1 female, -1 not told:
    the face looked younger than the model's min_age, or the model was less sure than its
    min_prob), emotion probabilities."""

    age: np.ndarray
    gender: np.ndarray
    emotion: np.ndarray


def models_dir_for(model: Path) -> tuple[Path, tempfile.TemporaryDirectory | None]:
    """A models folder to load: ``model`` itself, or for a ``.tflite`` a temporary folder whose
    manifest is the one beside the file with its analyzer entry pointed at that file."""
    model = Path(model)
    if model.is_dir():
        return model, None
    manifest = load_manifest(model.parent)
    tmp = tempfile.TemporaryDirectory()
    entry = dict(manifest["analyzer"], file=str(model.resolve()))
    entry.pop("sha256", None)
    det_file = model.parent / manifest["detector"]["file"]
    det = dict(manifest["detector"], file=str(det_file.resolve()))
    manifest.update(analyzer=entry, detector=det)
    (Path(tmp.name) / "manifest.json").write_text(json.dumps(manifest))
    return Path(tmp.name), tmp


class DevicePath:
    """Crops and predictions exactly as the appliance makes them.

    Args:
        models_dir: folder with ``manifest.json`` (detector and analyzer entries).
        threads: interpreter threads.
        pad: face-chip images (UTKFace, All-Age-Faces) are put in a canvas this fraction of their
            side wider on each edge before detection, as a face appears in a camera frame; the
            full-range detector finds no face in a raw chip.
        flip: override the manifest's mirror averaging (None: as the manifest says).
    """

    def __init__(self, models_dir: Path, threads: int = 1, pad: float = CHIP_PAD,
                 flip: bool | None = None):
        self.models_dir = Path(models_dir)
        self.pad = pad
        self.analyzer = Analyzer(self.models_dir, threads=threads, flip=flip)
        self.size = self.analyzer.size
        self._detector = None
        self._threads = threads

    @property
    def detector(self):
        if self._detector is None:  # only the UTKFace / AAF path needs it
            from device.detector import FaceDetector

            entry = load_manifest(self.models_dir)["detector"]
            self._detector = FaceDetector(model_path(self.models_dir, entry), threads=self._threads)
        return self._detector

    def device_crop(self, image_bgr: np.ndarray) -> tuple[np.ndarray, bool]:
        """(aligned crop, face found). No face: the whole image, resized, is analysed."""
        eyes = detect_eyes_on_chip(self.detector, image_bgr, self.pad)
        if eyes is None:
            gray = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2GRAY)
            return cv2.resize(gray, (self.size, self.size), interpolation=cv2.INTER_AREA), False
        return align_face(image_bgr, *eyes, size=self.size), True

    def framed_crop(self, image: np.ndarray) -> np.ndarray:
        """A pre-framed face crop (FER, CK+) resized to the analyzer's input."""
        return crop_to_input(image, self.size)

    def predict(self, crops: list[np.ndarray]) -> Predictions:
        attrs = self.analyzer.analyze(crops)
        return Predictions(
            age=np.array([a.age for a in attrs], float),
            gender=np.array([GENDERS.index(a.gender) if a.gender in GENDERS else UNTOLD
                             for a in attrs], int),
            emotion=np.array([[a.emotions[e] for e in EMOTIONS] for a in attrs], float).reshape(
                len(attrs), len(EMOTIONS)))
