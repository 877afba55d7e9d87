"""Balanced sampling: how often each training face is drawn in an epoch.

Faces with an age and gender label (UTKFace, All-Age-Faces) are drawn less often the larger their
group is, the group being (UTKFace race group, or All-Age-Faces as one group of its own; age
group; gender), so the gender head does not learn its errors on the groups and ages it sees least,
nor a gender prior per group. FER faces are drawn likewise by their FER+ majority emotion (faces
with none form one group), so disgust and fear are seen more than once an epoch.

The weight of a face in a group of ``n`` faces is ``n ** -alpha``: 0 keeps the data as it is, 1
draws every group equally often (a 20-face group would then be seen as often as a 2,000-face one,
which over-fits its faces), 0.5 is between the two. The weights are rescaled within each of the
two kinds of faces, so an epoch draws as many face-labelled and FER faces as the data holds. The
groups are the data sets' own labels, used only to draw faces: the appliance never sees or infers
them.
"""

from __future__ import annotations

import numpy as np

from tools.training.metrics import age_groups_of

AAF = 2  # source code of All-Age-Faces rows (tools.prepare)


def group_keys(data: dict[str, np.ndarray], idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(kind, key) per row of ``idx``: kind 0 a face with age and gender, 1 a FER face, 2 other;
    ``key`` a string naming the row's group within its kind."""
    src, age, gender = data["source"][idx], data["age"][idx], data["gender"][idx]
    face = (age >= 0) & (gender >= 0)
    fer = ~face & (data["votes"][idx].sum(1) > 0)
    kind = np.where(face, 0, np.where(fer, 1, 2))
    race = np.where(src == AAF, "aaf", data["race"][idx].astype(str))
    groups = age_groups_of(np.maximum(age, 0))
    keys = np.where(face, np.char.add(np.char.add(np.char.add(race, "/"), groups),
                                      np.char.add("/", gender.astype(str))),
                    np.where(fer, data["majority"][idx].astype(str), ""))
    return kind, keys


def sampling_weights(data: dict[str, np.ndarray], idx: np.ndarray, face_alpha: float = 0.0,
                     emotion_alpha: float = 0.0) -> np.ndarray:
    """Relative draw weight of each row of ``idx`` (see the module docstring); all ones when
    both alphas are 0.

    Raises:
        ValueError: an alpha outside [0, 1].
    """
    for name, a in (("face_alpha", face_alpha), ("emotion_alpha", emotion_alpha)):
        if not 0.0 <= a <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {a}")
    kind, keys = group_keys(data, idx)
    w = np.ones(len(idx))
    for k, alpha in ((0, face_alpha), (1, emotion_alpha)):
        rows = np.flatnonzero(kind == k)
        if not alpha or not len(rows):
            continue
        _, inverse, counts = np.unique(keys[rows], return_inverse=True, return_counts=True)
        wk = counts[inverse].astype(float) ** -alpha
        w[rows] = wk * len(rows) / wk.sum()
    return w


def epoch_order(idx: np.ndarray, weights: np.ndarray | None, seed: int, epoch: int) -> np.ndarray:
    """The rows of one epoch, as many as ``idx`` holds, depending only on (seed, epoch): a
    permutation when ``weights`` is None, else a weighted draw with replacement."""
    rng = np.random.default_rng([seed, epoch])
    if weights is None:
        return rng.permutation(idx)
    return rng.choice(idx, size=len(idx), replace=True, p=weights / weights.sum())


def group_shares(data: dict[str, np.ndarray], idx: np.ndarray, weights: np.ndarray,
                 kind: int = 0) -> dict[str, float]:
    """Share of an epoch's draws of ``kind`` (0 faces, 1 FER) that each group gets, for the log."""
    kinds, keys = group_keys(data, idx)
    sel = kinds == kind
    total = weights[sel].sum()
    return {k: float(weights[sel][keys[sel] == k].sum() / total) for k in np.unique(keys[sel])}
