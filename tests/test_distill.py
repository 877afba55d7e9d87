"""Distillation into the original-label emotion head: target maths, teacher checks, training."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow  # noqa: F401  the [train] extra; the test command installs it

from tests.test_train_smoke import write_tiny_cache
from tools.training.teacher import distilled_targets, load_teacher, soften, teacher_input


def _teacher(path, size=32, outputs=7):
    import keras

    inp = keras.Input((size, size, 1))
    x = keras.layers.Conv2D(4, 3, strides=2)(inp)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inp, keras.layers.Dense(outputs, activation="softmax")(x))
    model.save(path)
    return path


def test_soften_keeps_the_ranking_and_flattens_with_temperature():
    p = np.array([[0.7, 0.2, 0.05, 0.02, 0.01, 0.01, 0.01]], np.float32)
    assert np.allclose(soften(p, 1.0), p, atol=1e-6)
    hot = soften(p, 4.0)
    assert np.allclose(hot.sum(), 1.0, atol=1e-6)
    assert (np.diff(hot[0][:5]) < 0).all()  # same order as the teacher's
    assert hot[0, 0] < p[0, 0] and hot[0, -1] > p[0, -1]
    with pytest.raises(ValueError, match="temperature"):
        soften(p, 0.0)


def test_distilled_targets_mix_label_and_teacher_and_leave_unlabelled_rows_empty():
    teacher = np.full((3, 7), 1 / 7, np.float32)
    teacher[1] = [0, 0, 0, 1, 0, 0, 0]
    out = distilled_targets(np.array([2, 5, -1]), teacher, alpha=0.25, temperature=1.0)
    assert np.allclose(out.sum(axis=1), [1, 1, 0], atol=1e-5)
    assert out[0, 2] == pytest.approx(0.75 + 0.25 / 7, abs=1e-5)
    assert out[1, 5] == pytest.approx(0.75, abs=1e-5) and out[1, 3] == pytest.approx(0.25, abs=1e-5)
    assert not out[2].any()
    assert np.allclose(distilled_targets(np.array([4]), teacher[:1], 0.0, 2.0)[0],
                       np.eye(7)[4])
    with pytest.raises(ValueError, match="alpha"):
        distilled_targets(np.array([1]), teacher[:1], 1.5, 1.0)


def test_teacher_input_is_resized_and_scaled_like_fer():
    x = np.array([np.full((64, 64), 0, np.uint8), np.full((64, 64), 255, np.uint8)])
    out = teacher_input(x, 48)
    assert out.shape == (2, 48, 48, 1)
    assert np.allclose(out[0], -1.0) and np.allclose(out[1], 1.0)


def test_a_wrong_teacher_is_refused_with_the_reason(tmp_path):
    with pytest.raises(FileNotFoundError, match="teacher model not found"):
        load_teacher(tmp_path / "missing.keras")
    with pytest.raises(ValueError, match="7 emotion outputs"):
        load_teacher(_teacher(tmp_path / "five.keras", outputs=5))


@pytest.mark.slow
def test_training_with_a_teacher_runs_and_resumes_only_with_it(tmp_path, capsys):
    from tools.train import main

    cache = write_tiny_cache(tmp_path / "faces.npz")
    teacher = _teacher(tmp_path / "teacher.keras")
    out = tmp_path / "kd"
    common = ["--data", str(cache), "--out", str(out), "--batch", "16", "--width", "0.25",
              "--threads", "1"]
    assert main(common + ["--epochs", "1", "--teacher", str(teacher),
                          "--teacher-alpha", "0.7", "--teacher-temperature", "3"]) == 0
    assert "teacher teacher.keras (offline): alpha 0.7, T 3.0" in capsys.readouterr().out
    state = json.loads((out / "state.json").read_text())
    assert state["teacher"] == [str(teacher)] and state["epoch"] == 1
    with pytest.raises(SystemExit, match="with --teacher"):
        main(common + ["--epochs", "2", "--resume"])
    assert main(common + ["--epochs", "2", "--resume", "--teacher", str(teacher)]) == 0
    assert json.loads((out / "state.json").read_text())["epoch"] == 2


def test_online_targets_equal_the_offline_ones_on_the_same_view(tmp_path):
    import tensorflow as tf

    from tools.training.teacher import online_targets, teacher_targets

    teacher = load_teacher(_teacher(tmp_path / "t.keras", size=64))
    rng = np.random.default_rng(1)
    data = {"x": rng.integers(0, 256, (6, 64, 64), dtype=np.uint8),
            "emotion": np.array([0, 3, -1, 6, -1, 2], np.int8)}
    offline = teacher_targets(teacher, data, np.arange(6), alpha=0.8, temperature=2.0)
    images = tf.constant(data["x"][..., None].astype(np.float32) / 255.0)
    online = online_targets(teacher, images, tf.constant(data["emotion"][:, None]), 0.8, 2.0)
    assert np.allclose(online.numpy(), offline, atol=1e-5)
    assert not online.numpy()[[2, 4]].any()


def test_an_ensemble_teacher_averages_members_and_mirror_views(tmp_path):
    import keras
    import tensorflow as tf

    from tools.model_def import build_model
    from tools.training.teacher import online_targets, teacher_targets

    keras.utils.set_random_seed(2)
    fer_like = _teacher(tmp_path / "fer.keras", size=48)
    ours = tmp_path / "ours.keras"
    build_model(width=0.25, head_units=8).save(ours)
    teacher = load_teacher([fer_like, ours], flip=True)
    assert teacher.names == ["fer.keras", "ours.keras"]
    assert [(out, scale) for _, out, scale in teacher.members] == [(None, "fer"),
                                                                  ("emotion_orig", "unit")]
    x = np.random.default_rng(4).integers(0, 256, (5, 64, 64), dtype=np.uint8)
    m_fer, m_ours = keras.models.load_model(fer_like), keras.models.load_model(ours)
    expect = []
    for view in (x, x[:, :, ::-1]):
        expect.append(m_fer.predict(teacher_input(np.ascontiguousarray(view), 48), verbose=0))
        expect.append(m_ours.predict(np.ascontiguousarray(view)[..., None] / 255.0,
                                     verbose=0)["emotion_orig"])
    assert np.allclose(teacher.predict(x), np.mean(expect, axis=0), atol=1e-5)
    # online and offline agree for the ensemble too
    data = {"x": x, "emotion": np.array([0, 1, -1, 3, 6], np.int8)}
    offline = teacher_targets(teacher, data, np.arange(5), alpha=0.6, temperature=1.5)
    images = tf.constant(x[..., None].astype(np.float32) / 255.0)
    online = online_targets(teacher, images, tf.constant(data["emotion"][:, None]), 0.6, 1.5)
    assert np.allclose(online.numpy(), offline, atol=1e-4)


def test_a_multi_output_teacher_without_an_emotion_head_is_refused(tmp_path):
    import keras

    inp = keras.Input((32, 32, 1))
    flat = keras.layers.Flatten()(inp)
    keras.Model(inp, [keras.layers.Dense(7)(flat), keras.layers.Dense(2)(flat)]).save(
        tmp_path / "two.keras")
    with pytest.raises(ValueError, match="none is emotion_orig"):
        load_teacher(tmp_path / "two.keras")
    with pytest.raises(ValueError, match="no teacher"):
        load_teacher([])


def test_unlabelled_faces_get_the_softened_teacher_at_their_weight(tmp_path):
    from tools.training.teacher import teacher_targets

    teacher = load_teacher(_teacher(tmp_path / "t.keras", size=64))
    rng = np.random.default_rng(3)
    data = {"x": rng.integers(0, 256, (5, 64, 64), dtype=np.uint8),
            "emotion": np.array([0, -1, 4, -1, -1], np.int8)}
    idx = np.arange(4)  # row 4 is not a training row: it stays empty
    plain = teacher_targets(teacher, data, idx, alpha=0.8, temperature=2.0)
    out = teacher_targets(teacher, data, idx, alpha=0.8, temperature=2.0, unlabelled=0.5)
    assert np.allclose(out[[0, 2]], plain[[0, 2]])  # labelled rows: unchanged
    assert not plain[[1, 3]].any()  # the default leaves unlabelled rows out
    expect = 0.5 * soften(teacher.predict(data["x"][[1, 3]]), 2.0)
    assert np.allclose(out[[1, 3]], expect, atol=1e-6)
    assert np.allclose(out[[1, 3]].sum(axis=1), 0.5, atol=1e-5)
    assert not out[4].any()
    with pytest.raises(ValueError, match="unlabelled faces"):
        teacher_targets(teacher, data, idx, 0.8, 2.0, unlabelled=1.5)


def test_soft_label_loss_weighs_a_row_by_its_target_sum_up_to_one():
    from tools.training.losses import soft_label_loss

    probs = np.array([[0.5, 0.5, 0, 0, 0, 0, 0], [0.25, 0.75, 0, 0, 0, 0, 0],
                      [0.5, 0.5, 0, 0, 0, 0, 0]], np.float32)
    full = np.array([[1, 0, 0, 0, 0, 0, 0]], np.float32)
    ce_a, ce_b = -np.log(0.5), -np.log(0.75)
    votes = np.array([[10, 0, 0, 0, 0, 0, 0], [0, 8, 0, 0, 0, 0, 0], [0] * 7], np.float32)
    # vote counts (sums >= 1) count fully, an all-zero row not at all
    assert float(soft_label_loss(votes, probs)) == pytest.approx((ce_a + -np.log(0.75)) / 2,
                                                                rel=1e-5)
    mixed = np.concatenate([full, 0.5 * np.array([[0, 1, 0, 0, 0, 0, 0]], np.float32),
                            np.zeros((1, 7), np.float32)])
    assert float(soft_label_loss(mixed, probs)) == pytest.approx((ce_a + 0.5 * ce_b) / 2,
                                                                rel=1e-5)


def test_teacher_unlabelled_needs_an_offline_teacher():
    from tools.train import parse_args

    with pytest.raises(SystemExit):
        parse_args(["--data", "x.npz", "--out", "o", "--teacher-unlabelled", "0.5"])
    with pytest.raises(SystemExit):
        parse_args(["--data", "x.npz", "--out", "o", "--teacher", "t.keras",
                    "--teacher-mode", "online", "--teacher-unlabelled", "0.5"])
    with pytest.raises(SystemExit):
        parse_args(["--data", "x.npz", "--out", "o", "--teacher", "t.keras",
                    "--teacher-unlabelled", "2"])
    args = parse_args(["--data", "x.npz", "--out", "o", "--teacher", "t.keras",
                       "--teacher-unlabelled", "0.5"])
    assert args.teacher_unlabelled == 0.5
