"""Dataset readers on small fixtures written by the tests in each public layout."""

from __future__ import annotations

import csv

import cv2
import numpy as np
import pytest

from device.types import EMOTIONS
from tools.datasets import (
    DatasetLayoutError,
    ferplus_to_emotions,
    read_aaf,
    read_ck48,
    read_fer2013_csv,
    read_fer_folders,
    read_ferplus,
    read_utkface,
)
from tools.datasets.faces import align_utk_chip, crop_to_input
from tools.datasets.ferplus import ferplus_majority


def _img(path, size=48, value=128, color=False):
    path.parent.mkdir(parents=True, exist_ok=True)
    img = np.full((size, size, 3) if color else (size, size), value, np.uint8)
    cv2.imwrite(str(path), img)
    return path


def test_utkface_reads_labels_and_counts_malformed_names(tmp_path):
    _img(tmp_path / "25_1_2_20170116174525125.jpg.chip.jpg", 200, color=True)
    _img(tmp_path / "3_0_0_20170110213000000.jpg.chip.jpg", 200, color=True)
    _img(tmp_path / "39_1_20170116174525125.jpg.chip.jpg", 200, color=True)  # no race field
    _img(tmp_path / "x_0_0_1.jpg.chip.jpg", 200, color=True)
    res = read_utkface(tmp_path)
    assert [(r.age, r.gender, r.race) for r in res.records] == [(25, 1, 2), (3, 0, 0)]
    assert res.skipped["malformed_name"] == 2
    assert "skipped malformed_name: 2" in res.summary()


def test_utkface_wrong_layout_is_a_clear_error(tmp_path):
    with pytest.raises(DatasetLayoutError, match="UTKFace"):
        read_utkface(tmp_path / "missing")
    with pytest.raises(DatasetLayoutError, match="no \\*.jpg"):
        read_utkface(tmp_path)
    with pytest.raises(FileNotFoundError):  # the built-in it also is
        read_utkface(tmp_path / "missing")


def _ferplus(tmp_path, rows, originals=True):
    split = tmp_path / "FER2013Valid"
    split.mkdir(parents=True)
    with open(split / "label.csv", "w", newline="") as f:
        w = csv.writer(f)
        for name, votes in rows:
            _img(split / name)
            w.writerow([name, "(0, 0, 48, 48)", *votes])
        w.writerow(["fer9999999.png", "(0, 0, 48, 48)", "x"])  # malformed
        w.writerow(["fer9999998.png", "(0, 0, 48, 48)", *[1] * 10])  # image missing
    if originals:
        with open(tmp_path / "fer2013_labels.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["Image name", "Usage", "emotion"])
            for i, (name, _) in enumerate(rows):
                w.writerow([name, "PublicTest", i % 7])
    return split


def test_ferplus_votes_and_original_labels(tmp_path):
    rows = [("fer0000000.png", [6, 0, 1, 1, 0, 0, 0, 2, 0, 0]),
            ("fer0000001.png", [0, 0, 0, 0, 0, 0, 0, 1, 9, 0])]
    split = _ferplus(tmp_path, rows)
    res = read_ferplus(split)
    assert len(res) == 2
    assert res.skipped == {"malformed_row": 1, "missing_image": 1}
    assert res.records[0].emotion == 0 and res.records[1].emotion == 1
    assert res.records[0].usage == "PublicTest"
    np.testing.assert_array_equal(res.records[0].votes, rows[0][1])
    assert ferplus_majority(res.records[0].votes) == EMOTIONS.index("neutral")
    assert ferplus_majority(res.records[1].votes) is None  # unknown wins


def test_ferplus_vote_mapping_folds_contempt_into_disgust_and_drops_unknown():
    votes = np.array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], float)
    mapped = ferplus_to_emotions(votes)
    want = {"neutral": 1, "happy": 2, "surprise": 3, "sad": 4, "angry": 5, "disgust": 6 + 8,
            "fear": 7}
    assert dict(zip(EMOTIONS, mapped.tolist())) == want


def test_ferplus_without_original_labels_and_wrong_layout(tmp_path):
    split = _ferplus(tmp_path, [("fer0000000.png", [1] + [0] * 9)], originals=False)
    assert read_ferplus(split).records[0].emotion is None
    with pytest.raises(DatasetLayoutError, match="label.csv"):
        read_ferplus(tmp_path)


def test_fer2013_csv(tmp_path):
    path = tmp_path / "fer2013.csv"
    pixels = " ".join(["7"] * 2304)
    path.write_text("emotion,pixels,Usage\n"
                    f"3,{pixels},Training\n6,{pixels},PrivateTest\n9,{pixels},Training\n"
                    "2,1 2 3,Training\nx,1,Training\n")
    res = read_fer2013_csv(path)
    assert [r.emotion for r in res.records] == [3, 6]
    assert res.skipped["malformed_row"] == 3
    assert res.records[0].image().shape == (48, 48, 3)
    assert len(read_fer2013_csv(path, usage="PrivateTest")) == 1
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(DatasetLayoutError, match="emotion,pixels"):
        read_fer2013_csv(bad)


def test_fer_class_folders(tmp_path):
    _img(tmp_path / "angry" / "a.jpg")
    _img(tmp_path / "neutral" / "b.jpg")
    (tmp_path / "neutral" / "notes.txt").write_text("x")
    res = read_fer_folders(tmp_path)
    assert sorted(r.emotion for r in res.records) == [0, 6]
    assert res.skipped["not_an_image"] == 1
    with pytest.raises(DatasetLayoutError, match="class folders"):
        read_fer_folders(tmp_path / "angry")


def test_ck48_maps_classes_and_skips_contempt(tmp_path):
    for cls in ("anger", "contempt", "sadness", "happy"):
        _img(tmp_path / cls / "S005_001_00000011.png")
    res = read_ck48(tmp_path)
    assert sorted(EMOTIONS[r.emotion] for r in res.records) == ["angry", "happy", "sad"]
    assert res.skipped["class_contempt"] == 1


def test_aaf_flips_gender_and_reads_age(tmp_path):
    _img(tmp_path / "aglined faces" / "00001A02.jpg", 64, color=True)
    _img(tmp_path / "aglined faces" / "07999A64.jpg", 64, color=True)
    (tmp_path / "image sets").mkdir()
    (tmp_path / "image sets" / "val.txt").write_text(
        "00001A02.jpg 0\n07999A64.jpg 1\nbad line here\n12345A01.jpg 1\n")
    res = read_aaf(tmp_path)
    assert [(r.age, r.gender) for r in res.records] == [(2, 1), (64, 0)]  # 0 female -> ours 1
    assert res.skipped == {"malformed_line": 1, "missing_image": 1}
    with pytest.raises(DatasetLayoutError, match="split list"):
        read_aaf(tmp_path, split="train")


def test_alignment_helpers():
    assert crop_to_input(np.zeros((48, 48), np.uint8)).shape == (64, 64)
    chip = np.zeros((200, 200, 3), np.uint8)
    crop, fallback = align_utk_chip(chip, detector=None)
    assert crop.shape == (64, 64) and fallback

    class NoFaces:
        def detect(self, image):
            return []

    assert align_utk_chip(chip, NoFaces())[1]
