"""A tiny end-to-end training: generated faces, one epoch, checkpoints, resume, validation."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow  # noqa: E402,F401  the [train] extra; the test command installs it (a missing one fails)

from tools.prepare import FIELDS, _empty


def write_tiny_cache(path, n: int = 48, seed: int = 0):
    """A cache like ``tools.prepare`` writes: 3/8 'UTKFace', 1/8 'All-Age-Faces', half 'FER'
    faces, 1/4 val."""
    rng = np.random.default_rng(seed)
    data = _empty(n, 64)
    data["x"][:] = rng.integers(0, 256, (n, 64, 64), dtype=np.uint8)
    utk = np.arange(n) < n // 2
    data["source"][~utk] = 1
    data["age"][utk] = rng.integers(1, 90, utk.sum())
    data["gender"][utk] = rng.integers(0, 2, utk.sum())
    data["race"][utk] = rng.integers(0, 5, utk.sum())
    data["emotion"][~utk] = rng.integers(0, 7, (~utk).sum())
    data["votes"][~utk] = rng.integers(0, 5, ((~utk).sum(), 7))
    data["majority"][~utk] = np.argmax(data["votes"][~utk], axis=1)
    data["split"][np.arange(n) % 4 == 0] = 1
    aaf = np.arange(n) < n // 8
    data["source"][aaf], data["race"][aaf] = 2, -1
    assert set(data) == set(FIELDS)
    np.savez_compressed(path, meta=json.dumps({"size": 64}), **data)
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(cache path, checkpoint folder) after one smoke epoch."""
    from tools.train import main

    root = tmp_path_factory.mktemp("smoke")
    cache = write_tiny_cache(root / "faces.npz")
    out = root / "ckpt"
    assert main(["--data", str(cache), "--out", str(out), "--epochs", "1", "--batch", "16",
                 "--width", "0.25", "--threads", "1", "--orig-vote", "1", "--emotion-tau", "1",
                 "--eye-jitter", "0.03", "--keep-epochs", "--balance-faces", "0.5",
                 "--balance-emotion", "1", "--mixup", "0.3"]) == 0
    return cache, out


@pytest.mark.slow
def test_one_epoch_writes_checkpoints_and_report(trained):
    _, out = trained
    assert (out / "last.keras").is_file() and (out / "best.keras").is_file()
    assert (out / "epoch1.keras").is_file()  # --keep-epochs
    state = json.loads((out / "state.json").read_text())
    assert state["epoch"] == 1 and state["best_epoch"] == 1
    line = json.loads((out / "history.jsonl").read_text().splitlines()[-1])
    for key in ("utk_age_mae", "utk_age_reg_mae", "utk_gender_acc", "fer_emotion_acc_orig",
                "fer_emotion_acc_ferplus", "fer_emotion_orig_acc_orig", "aaf_age_mae",
                "aaf_gender_acc", "utk_gender_acc_worst_race", "fer_emotion_min_recall_ferplus",
                "fer_emotion_recall_ferplus_happy"):
        assert np.isfinite(line[key]), key
    assert line["utk_gender_acc_worst_race"] == min(
        line[f"utk_gender_acc_{r}"] for r in ("white", "black", "asian", "indian", "other")
        if f"utk_gender_acc_{r}" in line)
    from tools.train import MIRROR_KEYS

    for key in MIRROR_KEYS:  # the mirror-averaged numbers, as the appliance runs the model
        assert 0 <= line[f"mirror_{key}"] < 100, key


@pytest.mark.slow
def test_resume_continues_from_the_last_epoch(trained, capsys):
    from tools.train import main

    cache, out = trained
    assert main(["--data", str(cache), "--out", str(out), "--epochs", "2", "--batch", "16",
                 "--threads", "1", "--resume", "--lr", "1e-4", "--emotion-tau", "0"]) == 0
    printed = capsys.readouterr().out
    assert "resumed after epoch 1 of 2" in printed
    # the options the run began with win over the command line's
    assert "logit adjustment tau 1.0" in printed
    assert "balanced sampling: faces alpha 0.5, emotion alpha 1" in printed
    state = json.loads((out / "state.json").read_text())
    assert state["epoch"] == 2 and state["options"]["lr"] == 2e-3
    assert len((out / "history.jsonl").read_text().splitlines()) == 2


def test_masked_losses_ignore_unlabelled_rows():
    from tools.training.losses import gender_loss, soft_label_loss, sparse_label_loss

    p = np.array([[0.9], [0.2]], np.float32)
    both = float(gender_loss(np.array([[1.0], [-1.0]], np.float32), p))
    one = float(gender_loss(np.array([[1.0]], np.float32), p[:1]))
    assert both == pytest.approx(one, rel=1e-5)
    probs = np.full((2, 7), 1 / 7, np.float32)
    assert float(soft_label_loss(np.zeros((2, 7), np.float32), probs)) == 0.0
    assert float(sparse_label_loss(np.array([[-1], [-1]]), probs)) == 0.0
    assert float(sparse_label_loss(np.array([[2], [-1]]), probs)) == pytest.approx(np.log(7), 1e-4)


def test_original_label_counts_as_extra_votes_only_where_there_are_votes():
    from tools.training.data import vote_targets

    votes = np.array([[0, 0, 0, 8, 2, 0, 0], [0] * 7, [1, 0, 0, 0, 0, 0, 9]], np.float32)
    out = vote_targets(votes, np.array([4, 2, -1]), orig_vote=1.5)
    assert out[0].tolist() == [0, 0, 0, 8, 3.5, 0, 0]
    assert not out[1].any()  # no FER+ votes: stays unlabelled
    assert out[2].tolist() == votes[2].tolist()  # no original label
    assert (vote_targets(votes, np.array([4, 2, -1])) == votes).all()


def test_logit_adjustment_charges_frequent_classes_and_spares_rare_ones():
    from tools.training.losses import AdjustedSoftLabelLoss, class_prior, soft_label_loss

    votes = np.array([[9, 1, 1, 1, 1, 1, 0], [8, 2, 0, 0, 0, 0, 0]], np.float32)
    prior = class_prior(votes)
    assert prior.sum() == pytest.approx(1) and prior[0] > prior[1] > prior[2] > prior[6]
    assert prior[6] == pytest.approx(1e-3, rel=0.01)  # floored, never log(0)
    probs = np.array([[0.5, 0.1, 0.1, 0.1, 0.1, 0.05, 0.05]] * 2, np.float32)
    common, rare = np.eye(7, dtype=np.float32)[[0]], np.eye(7, dtype=np.float32)[[2]]

    def loss(tau, y):
        return float(np.mean(AdjustedSoftLabelLoss(prior, tau)(y, probs[:1])))

    assert loss(0.0, rare) == pytest.approx(float(soft_label_loss(rare, probs[:1])), rel=1e-5)
    assert loss(1.0, common) < loss(0.0, common)  # the frequent class must win by a margin
    assert loss(1.0, rare) > loss(0.0, rare)
    assert np.mean(AdjustedSoftLabelLoss(prior, 1.0)(np.zeros((1, 7), np.float32),
                                                     probs[:1])) == 0.0  # unlabelled
    again = AdjustedSoftLabelLoss.from_config(AdjustedSoftLabelLoss(prior, 0.7).get_config())
    assert again.tau == 0.7 and again.prior == pytest.approx(prior.tolist())


def test_eye_jitter_reframes_the_crop_as_the_devices_alignment_would():
    import cv2
    import tensorflow as tf

    from device.align import EYE_CENTER, EYE_DISTANCE, alignment_matrix
    from tools.training.augment import eye_jitter_transform

    size = 64
    noise = np.array([[1.0, -0.5, 0.3, 0.8], [0, 0, 0, 0]], np.float32)
    rows = eye_jitter_transform(tf.constant(noise), float(size)).numpy()
    half, cx, cy = EYE_DISTANCE * size / 2, EYE_CENTER[0] * size, EYE_CENTER[1] * size
    right, left = np.array([cx - half + 1.0, cy - 0.5]), np.array([cx + half + 0.3, cy + 0.8])
    expect = cv2.invertAffineTransform(alignment_matrix(right, left, size))
    assert np.allclose(rows[0].reshape(2, 3), expect, atol=1e-4)
    assert np.allclose(rows[1].reshape(2, 3), [[1, 0, 0], [0, 1, 0]], atol=1e-6)


def test_class_recall_per_class_and_nan_for_absent_classes():
    from tools.training.metrics import class_recall

    r = class_recall([0, 0, 1, 1, 1, 2], [0, 1, 1, 1, 0, 2], 4)
    assert r[:3].tolist() == [0.5, pytest.approx(2 / 3), 1.0] and np.isnan(r[3])


def test_augmentation_keeps_shape_and_range():
    import tensorflow as tf

    from tools.training.augment import augment

    x = tf.random.uniform((4, 64, 64, 1))
    for jitter in (0.0, 0.05):
        y = augment(x, eye_jitter=jitter).numpy()
        assert y.shape == (4, 64, 64, 1) and y.min() >= 0 and y.max() <= 1


@pytest.mark.slow
def test_init_starts_from_saved_weights_with_a_fresh_schedule(trained, tmp_path):
    from tools.train import main

    cache, out = trained
    new = tmp_path / "again"
    assert main(["--data", str(cache), "--out", str(new), "--epochs", "1", "--batch", "16",
                 "--threads", "1", "--init", str(out / "best.keras"), "--erase", "0.5",
                 "--loss-weights", "emotion_orig=2,age_reg=0.5"]) == 0
    assert json.loads((new / "state.json").read_text())["epoch"] == 1


def test_random_erase_fills_one_square_with_the_image_mean():
    import tensorflow as tf

    from tools.training.augment import random_erase

    ramp = tf.tile(tf.reshape(tf.linspace(0.0, 1.0, 64), (1, 1, 64, 1)), (8, 64, 1, 1))
    out = random_erase(ramp, prob=1.0).numpy()
    changed = np.abs(out - ramp.numpy()) > 1e-6
    for img, mask in zip(out, changed, strict=True):
        area = mask.mean()
        assert 0 < area <= 0.35 ** 2 + 0.01
        ys, xs = np.nonzero(mask[..., 0])
        box = img[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
        assert np.allclose(box, 0.5, atol=1e-5)  # the ramp's mean
    assert not np.abs(random_erase(ramp, prob=0.0).numpy() - ramp.numpy()).any()


def test_loss_weights_argument_names_the_bad_head():
    import argparse

    from tools.train import loss_weights_arg

    assert loss_weights_arg("emotion_orig=2, gender=0.5") == {"emotion_orig": 2.0, "gender": 0.5}
    with pytest.raises(argparse.ArgumentTypeError, match="emotions"):
        loss_weights_arg("emotions=2")
    with pytest.raises(argparse.ArgumentTypeError, match="not a number"):
        loss_weights_arg("gender=much")


def test_the_full_resolution_branch_starts_as_a_no_op_on_transferred_weights():
    import keras

    from tools.model_def import build_model, transfer_weights

    keras.utils.set_random_seed(5)
    plain = build_model(width=0.25, head_units=8)
    for layer in plain.layers:  # trained-looking batch-norm statistics, not the defaults
        if isinstance(layer, keras.layers.BatchNormalization):
            g, b, m, v = layer.get_weights()
            layer.set_weights([g * 1.3, b + 0.1, m + 0.05, v * 2])
    wide = build_model(width=0.25, head_units=8, hires=4)
    fresh = transfer_weights(plain, wide)
    assert fresh == ["hires_conv", "hires_bn", "hires_down", "hires_down_bn"]
    assert wide.count_params() > plain.count_params()
    x = np.random.default_rng(0).random((4, 64, 64, 1)).astype(np.float32)
    a, b = plain.predict(x, verbose=0), wide.predict(x, verbose=0)
    for k in a:
        assert np.allclose(a[k], b[k], atol=1e-6), k

    def stem(model):
        return keras.Model(model.input, model.get_layer("stem_relu").output).predict(x, verbose=0)

    assert np.allclose(stem(plain), stem(wide), atol=1e-6)
    # once the branch has a scale it changes the features: it is wired in, not dead
    bn = wide.get_layer("hires_down_bn")
    bn.set_weights([np.ones_like(w) if i == 0 else w for i, w in enumerate(bn.get_weights())])
    assert not np.allclose(stem(plain), stem(wide), atol=1e-3)


@pytest.mark.slow
def test_init_with_a_new_branch_keeps_the_trained_layers(trained, tmp_path, capsys):
    from tools.train import main

    cache, out = trained
    new = tmp_path / "hires"
    assert main(["--data", str(cache), "--out", str(new), "--epochs", "1", "--batch", "16",
                 "--threads", "1", "--width", "0.25", "--init", str(out / "best.keras"),
                 "--hires", "4"]) == 0
    assert "new layers: hires_conv, hires_bn, hires_down, hires_down_bn" in capsys.readouterr().out
    assert json.loads((new / "state.json").read_text())["epoch"] == 1


def test_average_weights_is_the_elementwise_mean_and_refuses_other_shapes():
    from tools.average_checkpoints import average_weights

    a = [np.array([[1.0, 2.0]], np.float32), np.array([0.0], np.float32)]
    b = [np.array([[3.0, 6.0]], np.float32), np.array([1.0], np.float32)]
    got = average_weights([a, b])
    np.testing.assert_array_equal(got[0], [[2.0, 4.0]])
    assert got[0].dtype == np.float32 and got[1].tolist() == [0.5]
    with pytest.raises(ValueError, match="different architectures"):
        average_weights([a, [b[0]]])
    with pytest.raises(ValueError, match="no checkpoints"):
        average_weights([])


@pytest.mark.slow
def test_averaged_checkpoints_are_a_validated_model(trained, tmp_path, capsys):
    import keras

    from tools.average_checkpoints import main

    cache, out = trained
    avg, report = tmp_path / "avg.keras", tmp_path / "avg.json"
    assert main([str(out / "epoch1.keras"), str(out / "best.keras"), "--data", str(cache),
                 "--out", str(avg), "--threads", "1", "--json", str(report)]) == 0
    line = json.loads(report.read_text())
    assert np.isfinite(line["utk_age_mae"]) and np.isfinite(line["mirror_fer_emotion_acc_ferplus"])
    # one checkpoint averaged with itself: the same weights (batch-norm statistics re-measured)
    model, ref = keras.models.load_model(avg, compile=False), keras.models.load_model(
        out / "best.keras", compile=False)
    for layer in ref.layers:
        if not isinstance(layer, keras.layers.BatchNormalization):
            for w, r in zip(model.get_layer(layer.name).get_weights(), layer.get_weights()):
                np.testing.assert_allclose(w, r, rtol=1e-6, atol=1e-7)
    with pytest.raises(SystemExit):
        main([str(tmp_path / "missing.keras"), "--data", str(cache), "--out", str(avg)])
    assert "no such checkpoint" in capsys.readouterr().err


def test_the_named_trunks_and_an_unknown_one():
    from tools.model_def import build_model

    small, medium = build_model(arch="s"), build_model(arch="m")
    assert small.count_params() == 531_957  # the trunk of models up to 1.7
    assert 1.9 * small.count_params() < medium.count_params() < 1_200_000
    with pytest.raises(ValueError, match="arch must be one of s, m"):
        build_model(arch="xl")


def test_fit_report_measures_train_and_validation_faces_alike(trained, tmp_path, capsys):
    from tools.training.fit import main

    cache, out = trained
    assert main([str(out / "last.keras"), "--data", str(cache), "--sample", "10",
                 "--json", str(tmp_path / "fit.json")]) == 0
    result = json.loads((tmp_path / "fit.json").read_text())
    assert set(result) == {"train", "val"}
    assert set(result["train"]) == set(result["val"]) >= {"utk_age_mae", "fer_emotion_acc_ferplus"}
    assert "utk_age_mae" in capsys.readouterr().out


def test_the_report_gives_each_race_groups_adults_and_the_lowest_coverage():
    """A group with many children is told less often overall, though its adults are told as
    often as anyone's: the report shows both."""
    from tools.training.validation import report

    data = {"source": np.zeros(8, np.int8), "race": np.array([0, 0, 0, 0, 2, 2, 2, 2], np.int8),
            "age": np.array([30, 30, 30, 30, 30, 30, 4, 5], np.float32),
            "gender": np.array([0, 1, 0, 1, 0, 1, 0, 1], np.int8)}
    told = np.array([0, 1, 0, 1, 0, 1, -1, -1])  # the children are not told
    res = report({"gender": told, "age": data["age"]}, data, np.arange(8))
    assert res["utk_gender_coverage_asian"] == 0.5 and res["utk_gender_coverage_white"] == 1.0
    assert res["utk_gender_coverage_adult_asian"] == res["utk_gender_coverage_adult_white"] == 1.0
    assert res["utk_gender_coverage_worst_race"] == 0.5
    assert res["utk_gender_coverage_adult_worst_race"] == 1.0
