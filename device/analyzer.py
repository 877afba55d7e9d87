"""The multi-head attribute model at run time: aligned faces in, age/gender/emotions out."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from device.errors import ModelError, NoAttributeModel
from device.manifest import (
    DEFAULT_AGE_GROUPS,
    age_group,
    gender_min_age,
    gender_min_prob,
    load_manifest,
    model_path,
    parse_age_groups,
)
from device.runtime import TFLiteModel, pixel_lut
from device.types import EMOTIONS, GENDERS, UNKNOWN, FaceAttributes

TEST_TIME = ("none", "flip", "in_model")  # in_model: the graph itself averages the mirror


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    z = x - x.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


def _as_probs(x: np.ndarray) -> np.ndarray:
    """Outputs may be probabilities (a softmax inside the model) or logits: return probabilities."""
    x = np.asarray(x, dtype=np.float32)
    if x.shape[-1] == 1:  # one sigmoid unit
        p = x[..., 0] if np.all((x >= 0) & (x <= 1)) else 1 / (1 + np.exp(-x[..., 0]))
        return np.stack([1 - p, p], axis=-1)
    # int8 softmax outputs are coarse (steps of 1/256) and need not sum to 1: anything inside
    # [0, 1] is taken as probabilities and renormalised; logits (negatives, > 1) get a softmax
    if np.all((x >= -1e-3) & (x <= 1 + 1e-3)):
        p = np.clip(x, 0, None)
        total = p.sum(axis=-1, keepdims=True)
        return np.where(total > 0, p / np.maximum(total, 1e-12), 1.0 / x.shape[-1])
    return softmax(x)


def _mean_views(values: np.ndarray, n: int) -> np.ndarray:
    """Average the answer for each face (rows ``:n``) with its mirror image's (rows ``n:``)."""
    return (values[:n] + values[n:]) / 2


def decode_age(raw: np.ndarray, head: dict) -> np.ndarray:
    """Years from the age head: a regression value, or the expectation over year bins."""
    kind = head.get("kind", "regression")
    if kind == "regression":
        return np.asarray(raw, dtype=np.float32).reshape(len(raw), -1)[:, 0]
    if kind == "distribution":
        bins = np.asarray(head["bins"], dtype=np.float32)
        return _as_probs(raw) @ bins
    raise ModelError(f"unknown age head kind {kind!r}")


class Analyzer:
    """Runs the installed multi-head model on aligned face crops.

    Args:
        models_dir: folder with ``manifest.json`` and the model files.
        threads: interpreter threads.
        age_groups: override the manifest's age groups (labels like ``"25-37"``, ``"60+"``).
        flip: run each face and its mirror image and average the two answers (test-time
            augmentation, two interpreter passes per face). None: as the manifest's
            ``"test_time"`` says (``"flip"`` or ``"none"``, the default), since the model's
            validation numbers were measured that way. ``"in_model"``: the model file averages
            the mirror view itself, so the runtime makes one pass.
    Attributes:
        gender_min_age: the manifest's ``heads.gender.min_age`` (0.0 when absent): a face whose
            estimated age is below it gets gender "unknown". Set it to 0.0 to read the model's
            own answer for every face (tools that measure the model do).
        gender_min_prob: the manifest's ``heads.gender.min_prob`` (0.5 when absent): a face
            whose likelier gender has a lower probability gets gender "unknown" (the model
            cannot tell). Set it to 0.5, with ``gender_min_age`` 0.0, to read every answer.
    Raises:
        NoAttributeModel: the manifest lists no analyzer; nothing is invented in its place.
        ModelError: the entry's ``test_time`` is not one this runtime knows, or its
            ``heads.gender.min_age`` is not a number of years >= 0, or its
            ``heads.gender.min_prob`` not a probability in [0.5, 1).
    """

    def __init__(self, models_dir: Path, threads: int | None = 1, age_groups=None,
                 flip: bool | None = None):
        if not (Path(models_dir) / "manifest.json").is_file():
            raise NoAttributeModel(
                f"no attribute model is installed: no manifest.json in {models_dir}")
        manifest = load_manifest(models_dir)
        entry = manifest.get("analyzer")
        if not entry:
            raise NoAttributeModel(
                f"no attribute model is installed in {models_dir}: faces are detected, "
                "but age, gender and emotion are not estimated")
        self.entry = entry
        test_time = entry.get("test_time", "none")
        if test_time not in TEST_TIME:
            raise ModelError(f"analyzer test_time {test_time!r} in {models_dir}/manifest.json is "
                             f"not one of {', '.join(TEST_TIME)}")
        self.test_time = test_time
        self.flip = (test_time == "flip") if flip is None else bool(flip)
        self.version = str(manifest.get("version", "unknown"))
        self.model = TFLiteModel(model_path(models_dir, entry), threads=threads)
        spec = entry.get("input", {})
        self.size = int(spec.get("size", self.model.inputs[0].shape[1]))
        self.channels = int(spec.get("channels", self.model.inputs[0].shape[-1]))
        self.input_scale = float(spec.get("scale", 255.0))
        self.heads = entry["heads"]
        self.gender_min_age = gender_min_age(entry)
        self.gender_min_prob = gender_min_prob(entry)
        self.groups = parse_age_groups(age_groups or entry.get("age_groups") or DEFAULT_AGE_GROUPS)
        self.gender_labels = tuple(self.heads["gender"].get("labels", GENDERS))
        self.emotion_labels = tuple(self.heads["emotion"].get("labels", EMOTIONS))
        self._out = {name: self.model.output(h["output"]) for name, h in self.heads.items()}
        self._batch = self.model.inputs[0].shape[0]
        # uint8 pixel -> input tensor value in one lookup (quantised when the model is int8)
        self._lut = pixel_lut(self.model.inputs[0], lambda p: p / self.input_scale)

    @property
    def name(self) -> str:
        return self.model.path.name

    def _prepare(self, crops: list[np.ndarray]) -> np.ndarray:
        """Aligned uint8 crops to the input tensor's own type and scale."""
        x = np.stack([c if c.ndim == 3 else c[..., None] for c in crops])
        if x.shape[1:] != (self.size, self.size, self.channels):
            raise ValueError(f"crops must be {self.size}x{self.size}x{self.channels}, "
                             f"got {x.shape[1:]}")
        if x.dtype != np.uint8:
            raise ValueError(f"crops must be uint8 images, got {x.dtype}")
        return self._lut[x]

    def raw(self, crops: list[np.ndarray]) -> dict[str, np.ndarray]:
        """Raw float head outputs for a list of aligned crops (batched one at a time if fixed)."""
        x = self._prepare(crops)
        outs = {name: [] for name in self.heads}
        step = len(x) if self._batch != 1 else 1
        if step != 1:
            self.model.resize_batch(len(x))
        for i in range(0, len(x), step):
            res = self.model.run_raw(x[i:i + step])
            by_index = {spec.index: r for spec, r in zip(self.model.outputs, res)}
            for name, spec in self._out.items():
                outs[name].append(by_index[spec.index].reshape(step, -1))
        return {k: np.concatenate(v) for k, v in outs.items()}

    def analyze(self, crops: list[np.ndarray]) -> list[FaceAttributes]:
        """Attributes for each aligned crop (``size`` x ``size`` gray or BGR, uint8)."""
        if not crops:
            return []
        n = len(crops)
        if self.flip:  # mirror images after the originals, one interpreter call for all
            crops = list(crops) + [c[:, ::-1] for c in crops]  # views: _prepare copies once
        raw = self.raw(crops)
        ages = decode_age(raw["age"], self.heads["age"])
        genders = _as_probs(raw["gender"])
        emotions = _as_probs(raw["emotion"])
        if self.flip:
            ages, genders, emotions = (_mean_views(v, n) for v in (ages, genders, emotions))
        out = []
        for age, g, e in zip(ages, genders, emotions):
            age = float(max(age, 0.0))
            gender, prob = self._gender(age, g)
            out.append(FaceAttributes(
                age=age, age_group=age_group(age, self.groups), gender=gender, gender_prob=prob,
                emotions={label: float(p) for label, p in zip(self.emotion_labels, e)}))
        return out

    def _gender(self, age: float, probs: np.ndarray) -> tuple[str, float | None]:
        """(label, its probability), or ("unknown", None) below ``gender_min_age`` or when the
        likelier label's probability is below ``gender_min_prob``."""
        if age < self.gender_min_age:
            return UNKNOWN, None
        gi = int(np.argmax(probs))
        if float(probs[gi]) < self.gender_min_prob:
            return UNKNOWN, None
        return self.gender_labels[gi], float(probs[gi])
