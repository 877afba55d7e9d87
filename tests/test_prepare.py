"""``tools.prepare``: All-Age-Faces through the device's detector and alignment into the cache."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from tools.prepare import AAF, load_detector, prepare_aaf

PORTRAIT = Path(__file__).resolve().parents[1] / "models" / "selftest" / "astronaut.jpg"


def test_aaf_faces_are_aligned_labelled_and_split(tmp_path):
    root = tmp_path / "aaf"
    faces = root / "aglined faces"
    faces.mkdir(parents=True)
    (root / "image sets").mkdir()
    portrait = cv2.imread(str(PORTRAIT))
    cv2.imwrite(str(faces / "00000A30.jpg"), portrait)
    cv2.imwrite(str(faces / "00001A05.jpg"), np.full((197, 154, 3), 128, np.uint8))  # no face
    (faces / "00002A41.jpg").write_bytes(b"not a jpeg")
    # AAF: 0 female, 1 male (the opposite of ours); one line names a file that is not there
    (root / "image sets" / "train.txt").write_text(
        "00000A30.jpg 0\n00001A05.jpg 1\n00002A41.jpg 1\n00003A20.jpg 0\n")
    out, stats = prepare_aaf(root, load_detector(None), 64, 0.5, 0)
    assert stats["read"] == 3 and stats["unreadable"] == 1
    assert stats["skipped"] == {"missing_image": 1}
    assert out["age"].tolist() == [30, 5] and out["gender"].tolist() == [1, 0]
    assert (out["source"] == AAF).all() and (out["race"] == -1).all()
    # the portrait is aligned on the detector's eyes; the blank one on the eyes found elsewhere
    assert out["fallback"].tolist() == [False, True] and stats["fallback_alignment"] == 1
    assert out["x"].shape == (2, 64, 64) and out["x"][0].std() > 20
    eyes_found = np.array(stats["canonical_eyes"])
    assert eyes_found.shape == (2, 2) and eyes_found[0, 0] < eyes_found[1, 0]
    assert set(out["split"].tolist()) <= {0, 1}
