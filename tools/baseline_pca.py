"""Eigenfaces baseline: PCA of the aligned faces + a linear (ridge, one-vs-rest) classifier.

    python -m tools.baseline_pca [--cache ~/.cache/audience-kiosk/faces.npz]

Fitted on the cache's train split (gender on UTKFace, emotion on FER2013Train's original labels)
and shown beside the CNN by ``python -m tools.evaluate --baseline pca``. Faces are shrunk to
32x32 first: eigenfaces gain nothing from finer pixels, and the SVD stays a few seconds.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

from tools.locations import default_faces

SIDE = 32


def features(crops) -> np.ndarray:
    """(N, SIDE*SIDE) float32 pixels in [0, 1] from uint8 gray crops of any square size."""
    return np.stack([cv2.resize(np.asarray(c), (SIDE, SIDE), interpolation=cv2.INTER_AREA)
                     for c in crops]).reshape(len(crops), -1).astype(np.float32) / 255.0


class PCABaseline:
    """Eigenfaces + ridge classifiers for gender and emotion.

    Args:
        components: eigenfaces kept.
        ridge: L2 penalty of the linear classifiers (in whitened PCA space).
    """

    def __init__(self, components: int = 150, ridge: float = 1.0):
        self.components, self.ridge = components, ridge

    def fit_pca(self, x: np.ndarray) -> None:
        self.mean = x.mean(axis=0)
        _, s, vt = np.linalg.svd(x - self.mean, full_matrices=False)
        self.basis = vt[:self.components]
        self.scale = s[:self.components] / np.sqrt(len(x))

    def project(self, x: np.ndarray) -> np.ndarray:
        z = (x - self.mean) @ self.basis.T / np.maximum(self.scale, 1e-6)
        return np.hstack([z, np.ones((len(z), 1), z.dtype)])

    def _ridge(self, z: np.ndarray, labels: np.ndarray, n: int) -> np.ndarray:
        y = -np.ones((len(z), n), np.float32)
        y[np.arange(len(z)), labels] = 1
        a = z.T @ z + self.ridge * np.eye(z.shape[1])
        return np.linalg.solve(a, z.T @ y)

    def fit(self, x_gender, gender, x_emotion, emotion) -> PCABaseline:
        """Fit the eigenfaces on all faces, then one linear classifier per task."""
        fg, fe = features(x_gender), features(x_emotion)
        self.fit_pca(np.vstack([fg, fe]))
        self.w_gender = self._ridge(self.project(fg), np.asarray(gender, int), 2)
        self.w_emotion = self._ridge(self.project(fe), np.asarray(emotion, int), 7)
        return self

    def predict_gender(self, crops) -> np.ndarray:
        return np.argmax(self.project(features(crops)) @ self.w_gender, axis=1)

    def predict_emotion_probs(self, crops) -> np.ndarray:
        """Class scores (not calibrated) in ``EMOTIONS`` order; argmax is the prediction."""
        return self.project(features(crops)) @ self.w_emotion

    def predict_emotion(self, crops) -> np.ndarray:
        return np.argmax(self.predict_emotion_probs(crops), axis=1)


def fit_from_cache(data: dict, split: int = 0, **kw) -> PCABaseline:
    """Fit on one split of a ``tools.prepare`` cache."""
    s = data["split"] == split
    g = s & (data["gender"] >= 0)
    e = s & (data["emotion"] >= 0)
    return PCABaseline(**kw).fit(data["x"][g], data["gender"][g], data["x"][e], data["emotion"][e])


def _acc(pred, truth) -> float:
    return float(np.mean(np.asarray(pred) == np.asarray(truth)))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.baseline_pca",
                                 description=__doc__.split("\n")[0])
    ap.add_argument("--cache", type=Path, default=default_faces(),
                    help="tools.prepare cache (default: %(default)s)")
    ap.add_argument("--components", type=int, default=150)
    args = ap.parse_args(argv)
    from tools.prepare import load_cache

    data = load_cache(args.cache)
    model = fit_from_cache(data, components=args.components)
    val = data["split"] == 1
    g, e = val & (data["gender"] >= 0), val & (data["emotion"] >= 0)
    m = val & (data["majority"] >= 0)
    res = {"utk_val_gender_acc": _acc(model.predict_gender(data["x"][g]), data["gender"][g]),
           "fer_valid_acc_orig": _acc(model.predict_emotion(data["x"][e]), data["emotion"][e]),
           "fer_valid_acc_ferplus": _acc(model.predict_emotion(data["x"][m]), data["majority"][m])}
    print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
