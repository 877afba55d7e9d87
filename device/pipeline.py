"""The per-frame vision path: detect faces, align each one, analyze them in one batch."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import cv2
import numpy as np

from device import kat
from device.align import align_face
from device.analyzer import Analyzer
from device.detector import (
    DEFAULT_VARIANT,
    FaceDetector,
    default_detector_path,
    float_detector_path,
)
from device.errors import ModelError, NoAttributeModel
from device.manifest import load_manifest, model_path
from device.models import MODELS_DIR
from device.types import Detection, FaceAttributes, Frame

log = logging.getLogger(__name__)

SELFTEST_DIR = MODELS_DIR / "selftest"


def _detector_file(models_dir: Path, variant: str | None) -> Path:
    """The detector the manifest names, else the shipped int8 model of the variant."""
    manifest_file = models_dir / "manifest.json"
    if manifest_file.is_file():
        entry = load_manifest(models_dir)["detector"]
        if variant is None or entry.get("variant", variant) == variant:
            return model_path(models_dir, entry)
    path = default_detector_path(variant or DEFAULT_VARIANT)
    if path.is_file():
        return path
    fallback = float_detector_path(variant or DEFAULT_VARIANT)
    if fallback.is_file():
        log.warning("int8 detector %s missing; using the float model %s", path.name, fallback.name)
        return fallback
    raise ModelError(f"no detector model at {path}")


class VisionPipeline:
    """Frame in, faces with attributes out.

    Args:
        models_dir: folder with ``manifest.json`` and the models (default: the shipped ``models/``).
        threads: interpreter threads for each model.
        detector_variant: "yunet" (the shipped default), or a BlazeFace variant ("full_wide",
            "full", "short"; their files are not installed); None: the manifest's.
        detector_tiles: tiles per side on large frames ("auto" or a number, see
            ``device.detector.tiling``).
        analyze_every: analyze faces on every n-th processed frame only (tracking carries the
            attributes in between); 1 analyzes every frame.
        reanalyze_s: with a tracker passed to :meth:`process`, a tracked face is analyzed again
            only once this many seconds have passed since its last analysis (new faces at once;
            ``Tracker.wanted``); 0 analyzes every face on every frame.
        min_face_px: faces whose eye distance is below this many pixels are detected but not
            analyzed (too small for a meaningful estimate).
        analyzer_flip: average each face with its mirror image (True/False); None: as the
            models' manifest says (``[models] mirror_average``).
    """

    def __init__(self, models_dir: str | Path | None = None, threads: int | None = 1,
                 detector_variant: str | None = None, analyze_every: int = 1,
                 min_face_px: float = 8.0, score_threshold: float | None = None,
                 detector_tiles: int | str = "auto", analyzer_flip: bool | None = None,
                 reanalyze_s: float = 0.0):
        self.models_dir = Path(models_dir) if models_dir else MODELS_DIR
        self.detector = FaceDetector(_detector_file(self.models_dir, detector_variant),
                                     threads=threads, score_threshold=score_threshold,
                                     tiles=detector_tiles)
        try:
            self.analyzer: Analyzer | None = Analyzer(self.models_dir, threads=threads,
                                                      flip=analyzer_flip)
        except NoAttributeModel as exc:
            log.warning("%s", exc)
            self.analyzer = None
        self.analyze_every = max(1, int(analyze_every))
        if not reanalyze_s >= 0:
            raise ValueError(f"reanalyze_s must be >= 0 seconds, got {reanalyze_s!r}")
        self.reanalyze_s = float(reanalyze_s)
        self.min_face_px = float(min_face_px)
        self._count = 0

    @property
    def analyzer_available(self) -> bool:
        return self.analyzer is not None

    @property
    def accelerator(self) -> str:
        return getattr(self.detector.model, "accelerator", "cpu")

    @property
    def model_version(self) -> str:
        try:
            return str(load_manifest(self.models_dir).get("version", "unknown"))
        except ModelError:
            return "factory"

    def describe(self) -> dict:
        """Names of the models in use, for status messages and benchmarks."""
        path = getattr(self.detector.model, "path", None)
        return {"detector": Path(path).name if path is not None else "custom",
                "analyzer": self.analyzer.name if self.analyzer else None,
                "analyzer_flip": self.analyzer.flip if self.analyzer else None,
                "accelerator": self.accelerator, "model_version": self.model_version}

    def crops(self, image: np.ndarray, detections: list[Detection]) -> list[np.ndarray]:
        """Aligned crops for the analyzer, one per detection."""
        size = self.analyzer.size if self.analyzer else 64
        gray = (self.analyzer.channels == 1) if self.analyzer else True
        return [align_face(image, d.right_eye, d.left_eye, size=size, gray=gray)
                for d in detections]

    def process(self, frame: Frame | np.ndarray, tracker=None
                ) -> list[tuple[Detection, FaceAttributes | None]]:
        """Faces in one frame with their attributes (None when not analyzed on this frame).

        Args:
            frame: a ``Frame``, or a BGR image.
            tracker: the ``device.tracking.Tracker`` these results will be fed to, before its
                ``update`` for this frame; with ``reanalyze_s`` it picks the faces to analyze
                (``Tracker.wanted``). Needs a ``Frame`` (its timestamp).
        """
        image = frame.image if isinstance(frame, Frame) else frame
        detections = self.detector.detect(image)
        attrs: list[FaceAttributes | None] = [None] * len(detections)
        analyze_now = self.analyzer is not None and self._count % self.analyze_every == 0
        self._count += 1
        if analyze_now and detections:
            wanted = [True] * len(detections)
            if tracker is not None and self.reanalyze_s > 0 and isinstance(frame, Frame):
                wanted = tracker.wanted(detections, frame.timestamp, self.reanalyze_s)
            idx = [i for i, d in enumerate(detections) if wanted[i]
                   and float(np.hypot(*(d.left_eye - d.right_eye))) >= self.min_face_px]
            if idx:
                results = self.analyzer.analyze(self.crops(image, [detections[i] for i in idx]))
                for i, a in zip(idx, results):
                    attrs[i] = a
        return list(zip(detections, attrs))

    def self_test(self) -> dict:
        """The models' self-test, the one the appliance runs before it uses a model set.

        First the set's known-answer test (the answers recorded when its bundle was built; a
        smoke test for models shipped without them, ``device.kat``), then the shipped test
        picture through the whole pipeline. Each model is used as loaded, never loaded again.

        Returns what the picture gave (faces found, and the attributes when an analyzer is
        installed). Raises ModelError naming what failed.
        """
        problems = kat.self_test(self.models_dir, detector_model=self.detector.model,
                                 analyzer=self.analyzer)
        if problems:
            raise ModelError("known-answer test: " + "; ".join(problems))
        spec_file = SELFTEST_DIR / "selftest.json"
        try:
            spec = json.loads(spec_file.read_text())
            image = cv2.imread(str(SELFTEST_DIR / spec["image"]))
        except (OSError, KeyError, json.JSONDecodeError) as exc:
            raise ModelError(f"self-test picture missing or unreadable in {SELFTEST_DIR}: "
                             f"{exc}") from exc
        if image is None:
            raise ModelError(f"self-test picture {spec['image']} cannot be decoded")
        faces = self.detector.detect(image)
        if len(faces) != spec["faces"]:
            raise ModelError(f"self-test: detector found {len(faces)} faces, "
                             f"expected {spec['faces']}")
        result = {"faces": len(faces)}
        if self.analyzer is not None:
            attrs = self.analyzer.analyze(self.crops(image, faces))
            for a in attrs:
                total = sum(a.emotions.values())
                if not (np.isfinite(a.age) and 0 <= a.age <= 120 and abs(total - 1) < 0.05):
                    raise ModelError(f"self-test: analyzer output out of range: {a}")
            result["attributes"] = [a.to_dict() for a in attrs]
        return result


def pipeline_for(models_cfg, folder: str | Path) -> VisionPipeline:
    """A pipeline on ``folder`` with the ``[models]`` settings, as the appliance runs it.

    A provisioned slot's manifest names its own detector, so ``detector_variant`` applies only to
    the models installed with the software (``[models] dir``). ``models_cfg`` None: defaults.
    """
    if models_cfg is None:
        return VisionPipeline(folder)
    own = Path(folder) != Path(models_cfg.dir)
    return VisionPipeline(folder, threads=models_cfg.threads,
                          analyze_every=models_cfg.analyze_every,
                          detector_variant=None if own else (models_cfg.detector_variant or None),
                          detector_tiles=models_cfg.detector_tiles,
                          analyzer_flip=models_cfg.analyzer_flip,
                          reanalyze_s=models_cfg.reanalyze_s)


def model_problems(folder: str | Path, models_cfg=None) -> list[str]:
    """What is wrong with the model set in ``folder`` (empty: it passed its self-test)."""
    try:
        pipeline_for(models_cfg, folder).self_test()
    except Exception as exc:  # whatever loading or testing raises makes the set unusable
        return [f"{type(exc).__name__}: {exc}"]
    return []
