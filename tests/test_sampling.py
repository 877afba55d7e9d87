"""Balanced sampling of training faces (tools.training.sampling)."""

from __future__ import annotations

import numpy as np
import pytest

from tools.prepare import _empty
from tools.training.sampling import epoch_order, group_keys, group_shares, sampling_weights


def _data():
    """30 UTKFace faces (20 white adult men, 6 black adult women, 4 Asian girls), 6 All-Age-Faces
    adult women, 12 FER faces (9 happy, 3 disgust), 2 faces with no label at all."""
    n = 30 + 6 + 12 + 2
    d = _empty(n, 8)
    d["source"][30:36], d["source"][36:] = 2, 1
    d["age"][:20], d["gender"][:20], d["race"][:20] = 30, 0, 0
    d["age"][20:26], d["gender"][20:26], d["race"][20:26] = 40, 1, 1
    d["age"][26:30], d["gender"][26:30], d["race"][26:30] = 5, 1, 2
    d["age"][30:36], d["gender"][30:36] = 30, 1
    d["votes"][36:45, 3], d["majority"][36:45] = 8, 3
    d["votes"][45:48, 1], d["majority"][45:48] = 8, 1
    return d


def test_groups_are_race_or_all_age_faces_age_group_and_gender():
    d = _data()
    kind, keys = group_keys(d, np.arange(len(d["x"])))
    assert list(kind[[0, 30, 36, 48]]) == [0, 0, 1, 2]
    assert keys[0] == "0/25-37/0" and keys[20] == "1/38-47/1" and keys[26] == "2/3-7/1"
    assert keys[30] == "aaf/25-37/1"  # All-Age-Faces is a group of its own, not a race
    assert keys[36] == "3" and keys[45] == "1"


def test_no_balancing_draws_every_face_alike():
    d = _data()
    assert np.array_equal(sampling_weights(d, np.arange(50)), np.ones(50))


def test_full_balancing_gives_every_group_the_same_share_and_keeps_each_kinds_total():
    d = _data()
    idx = np.arange(50)
    w = sampling_weights(d, idx, 1.0, 1.0)
    faces = group_shares(d, idx, w, 0)
    assert len(faces) == 4 and all(v == pytest.approx(0.25) for v in faces.values())
    fer = group_shares(d, idx, w, 1)
    assert fer == pytest.approx({"1": 0.5, "3": 0.5})
    assert w[:36].sum() == pytest.approx(36) and w[36:48].sum() == pytest.approx(12)
    assert np.array_equal(w[48:], [1, 1])  # unlabelled faces are left as they are


def test_half_balancing_lies_between():
    d = _data()
    idx = np.arange(50)
    share = group_shares(d, idx, sampling_weights(d, idx, 0.5, 0.0), 0)["0/25-37/0"]
    assert 0.25 < share < 20 / 36  # fully balanced 1/4, as the data is 20 of 36


def test_an_alpha_outside_0_1_is_refused_by_name():
    with pytest.raises(ValueError, match="emotion_alpha"):
        sampling_weights(_data(), np.arange(50), 0.5, 1.5)


def test_epoch_order_depends_only_on_seed_and_epoch_and_follows_the_weights():
    idx = np.arange(100, 110)
    assert np.array_equal(epoch_order(idx, None, 0, 3), epoch_order(idx, None, 0, 3))
    assert sorted(epoch_order(idx, None, 0, 3)) == list(idx)
    w = np.ones(10)
    w[0] = 9.0  # row 100 is drawn as often as the nine others together
    draws = np.concatenate([epoch_order(idx, w, 0, e) for e in range(400)])
    assert len(draws) == 4000 and set(draws) <= set(idx)
    assert np.mean(draws == 100) == pytest.approx(0.5, abs=0.03)
    assert not np.array_equal(epoch_order(idx, w, 0, 1), epoch_order(idx, w, 0, 2))


def test_train_refuses_an_alpha_outside_0_1(capsys):
    from tools.train import parse_args

    with pytest.raises(SystemExit):
        parse_args(["--data", "d.npz", "--out", "o", "--balance-faces", "1.5"])
    assert "--balance-faces" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse_args(["--data", "d.npz", "--out", "o", "--arch", "xl"])
    assert "--arch must be one of s, m" in capsys.readouterr().err
