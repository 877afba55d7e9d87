"""The FaceRes teacher's pure pre- and post-processing (no model files needed)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from tools.teacher_faceres import (
    SIZE,
    age_expectation,
    age_human,
    centre_square,
    crop_sides,
    main,
    p_female,
    sample,
    to_input,
)


def _bgr(h, w, b=10, g=20, r=30):
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 0], img[..., 1], img[..., 2] = b, g, r
    return img


def test_input_shape_dtype_and_unscaled_range():
    x = to_input(_bgr(200, 200))
    assert x.shape == (SIZE, SIZE, 3) and x.dtype == np.float32
    assert np.allclose(x[..., 0], 10) and np.allclose(x[..., 2], 30)  # BGR kept, 0..255 values
    x = to_input(np.full((50, 50, 3), 255, np.uint8))
    assert x.max() == 255.0 and x.min() == 255.0


def test_rgb_order_swaps_channels():
    x = to_input(_bgr(64, 64), order="rgb")
    assert np.allclose(x[..., 0], 30) and np.allclose(x[..., 1], 20) and np.allclose(x[..., 2], 10)
    with pytest.raises(ValueError):
        to_input(_bgr(64, 64), order="hsv")


def test_grayscale_is_expanded():
    x = to_input(np.full((40, 40), 77, np.uint8))
    assert x.shape == (SIZE, SIZE, 3) and np.allclose(x, 77)


def test_centre_square_of_tall_and_wide_images():
    tall = np.arange(10 * 4).reshape(10, 4)
    sq = centre_square(tall)
    assert sq.shape == (4, 4) and np.array_equal(sq, tall[3:7])
    wide = np.arange(4 * 9).reshape(4, 9)
    assert np.array_equal(centre_square(wide), wide[:, 2:6])
    same = np.zeros((5, 5))
    assert centre_square(same) is not None and centre_square(same).shape == (5, 5)


def test_non_square_face_is_cropped_not_stretched():
    img = np.zeros((200, 100, 3), np.uint8)
    img[50:150] = 255  # the centre square is all white, the rest black
    assert np.allclose(to_input(img), 255)
    assert to_input(img, square=False).min() == 0


def test_crop_sides():
    img = np.arange(100).reshape(10, 10)
    assert crop_sides(img, 0.0) is img
    out = crop_sides(img, 0.2)
    assert out.shape == (6, 6) and out[0, 0] == img[2, 2]
    for bad in (-0.1, 0.5):
        with pytest.raises(ValueError):
            crop_sides(img, bad)


def test_age_expectation():
    p = np.zeros((3, 100))
    p[0, 30] = 1.0
    p[1, 20] = p[1, 40] = 0.5
    p[2] = 1.0 / 100
    assert np.allclose(age_expectation(p), [30.0, 30.0, 49.5])
    assert np.isclose(age_expectation(p[0] * 0.99), 30.0)  # renormalised
    assert age_expectation(p[0]).shape == ()


def test_age_human_readout_moves_towards_larger_neighbour():
    p = np.zeros((2, 100))
    p[0, 30], p[0, 31], p[0, 29] = 0.6, 0.3, 0.1  # towards 31: 30 + 10 * 0.3
    p[1, 50], p[1, 49] = 0.8, 0.2  # towards 49: 50 - 10 * 0.2
    assert np.allclose(age_human(p), [33.0, 48.0])
    edge = np.zeros(100)
    edge[0], edge[1] = 0.9, 0.1
    assert np.isclose(age_human(edge), 1.0)


def test_p_female_from_sigmoid_male():
    assert np.allclose(p_female(np.array([[0.9], [0.2]])), [0.1, 0.8])
    assert np.allclose(p_female(np.array([0.5, 1.0, 0.0])), [0.5, 0.0, 1.0])


def test_sample_is_seeded_ordered_and_complete_when_small():
    items = list(range(50))
    a, b = sample(items, 10, 0), sample(items, 10, 0)
    assert a == b and a == sorted(a) and len(set(a)) == 10
    assert sample(items, 10, 1) != a
    assert sample(items, 80, 0) == items


def test_cli_without_model_says_how_to_get_it(tmp_path, capsys):
    img = tmp_path / "face.png"
    cv2.imwrite(str(img), _bgr(32, 32))
    with pytest.raises(FileNotFoundError, match="no SavedModel"):
        main(["--model", str(tmp_path / "missing"), str(img)])
    with pytest.raises(SystemExit):
        main(["--model", str(tmp_path), "--label"])
