"""A tiny end-to-end training: generated faces, one epoch, checkpoints, resume, validation."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow  # noqa: E402,F401  the [train] extra; the test command installs it (a missing one fails)

from tools.prepare import FIELDS, _empty


def write_tiny_cache(path, n: int = 48, seed: int = 0):
    """A cache like ``tools.prepare`` writes: half 'UTKFace' faces, half 'FER' faces, 1/4 val."""
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
                 "--width", "0.25", "--threads", "1"]) == 0
    return cache, out


@pytest.mark.slow
def test_one_epoch_writes_checkpoints_and_report(trained):
    _, out = trained
    assert (out / "last.keras").is_file() and (out / "best.keras").is_file()
    state = json.loads((out / "state.json").read_text())
    assert state["epoch"] == 1 and state["best_epoch"] == 1
    line = json.loads((out / "history.jsonl").read_text().splitlines()[-1])
    for key in ("utk_age_mae", "utk_age_reg_mae", "utk_gender_acc", "fer_emotion_acc_orig",
                "fer_emotion_acc_ferplus", "fer_emotion_orig_acc_orig"):
        assert np.isfinite(line[key]), key
    from tools.train import MIRROR_KEYS

    for key in MIRROR_KEYS:  # the mirror-averaged numbers, as the appliance runs the model
        assert 0 <= line[f"mirror_{key}"] < 100, key


@pytest.mark.slow
def test_resume_continues_from_the_last_epoch(trained, capsys):
    from tools.train import main

    cache, out = trained
    assert main(["--data", str(cache), "--out", str(out), "--epochs", "2", "--batch", "16",
                 "--threads", "1", "--resume", "--lr", "1e-4"]) == 0
    assert "resumed after epoch 1 of 2" in capsys.readouterr().out
    assert json.loads((out / "state.json").read_text())["epoch"] == 2
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


def test_augmentation_keeps_shape_and_range():
    import tensorflow as tf

    from tools.training.augment import augment

    x = tf.random.uniform((4, 64, 64, 1))
    y = augment(x).numpy()
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
