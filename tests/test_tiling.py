"""Tiling large frames for the detector: grid geometry, merging, and the effect on real footage."""

import cv2
import numpy as np
import pytest

from device.detector import FaceDetector, default_detector_path
from device.detector.face_detector import shrink_factor
from device.detector.tiling import auto_grid, detection_regions, tile_grid
from tests.shared_data import sample


def test_tiling_finds_the_child_in_two_people_2():
    img = cv2.imread(str(sample("two_people_2.jpg")))
    adults = FaceDetector(default_detector_path("full_wide"), tiles=1).detect(img)
    everyone = FaceDetector(default_detector_path("full_wide")).detect(img)
    assert len(adults) == 2 and len(everyone) == 3
    child = [d for d in everyone if d.box[1] > 1000]  # the one face in the lower third
    assert len(child) == 1 and 1550 < child[0].box[0] < 1650 and child[0].score > 0.7


def test_auto_grid_by_frame_height():
    assert [auto_grid(h) for h in (240, 360, 540, 719, 720, 1080, 1199, 1200, 2160)] == [
        1, 1, 1, 1, 2, 2, 2, 3, 3]


@pytest.mark.parametrize("n", [2, 3])
def test_tiles_cover_the_frame_and_overlap(n):
    w, h = 1920, 1080
    tiles = tile_grid(w, h, n)
    assert len(tiles) == n * n
    covered = np.zeros((h, w), bool)
    for x1, y1, x2, y2 in tiles:
        assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h
        covered[y1:y2, x1:x2] = True
    assert covered.all()
    # neighbours share 20% of the side: a face that size fits wholly inside one tile
    ax2, bx1 = tiles[0][2], tiles[1][0]
    assert ax2 - bx1 == pytest.approx(0.2 * w, abs=2)


def test_regions_include_the_whole_frame():
    assert detection_regions(640, 360) == [(0, 0, 640, 360)]
    regions = detection_regions(1920, 1080)
    assert regions[0] == (0, 0, 1920, 1080) and len(regions) == 5
    assert detection_regions(1920, 1080, tiles=1) == [(0, 0, 1920, 1080)]


def test_shrink_factor_is_whole_and_leaves_at_most_2x():
    assert shrink_factor([(0, 0, 640, 360)], (320, 192)) == 2
    assert shrink_factor([(0, 0, 1920, 1080)], (320, 192)) == 6
    assert shrink_factor([(0, 0, 1920, 1080), (0, 0, 1152, 648)], (320, 192)) == 3
    assert shrink_factor([(0, 0, 1000, 720)], (320, 192)) == 3  # 3.75x: 3x first, then 1.25x
    assert shrink_factor([(0, 0, 300, 200)], (320, 192)) == 1


def test_bad_tiles_value_is_rejected():
    with pytest.raises(ValueError, match="tiles"):
        FaceDetector(default_detector_path("full_wide"), tiles="lots")


def test_tiles_find_more_of_the_small_faces_in_1080p():
    cap = cv2.VideoCapture(str(sample("pedestrians_1080p.mp4")))
    frames = []
    for i in range(40):
        ok, img = cap.read()
        if i % 8 == 0:
            frames.append(img)
    whole = FaceDetector(default_detector_path("full_wide"), tiles=1)
    tiled = FaceDetector(default_detector_path("full_wide"), tiles="auto")
    n_whole = sum(len(whole.detect(f)) for f in frames)
    faces = [tiled.detect(f) for f in frames]
    assert sum(map(len, faces)) >= 1.5 * n_whole
    for dets in faces:  # one detection per face: no duplicates left by overlapping tiles
        for i, a in enumerate(dets):
            for b in dets[i + 1:]:
                ix = max(0, min(a.box[2], b.box[2]) - max(a.box[0], b.box[0]))
                iy = max(0, min(a.box[3], b.box[3]) - max(a.box[1], b.box[1]))
                assert ix * iy < 0.3 * a.width * a.height
