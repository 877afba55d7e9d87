"""The shipped graph: mirror averaging inside the model and an emotion branch averaged in."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow  # noqa: F401  the [train] extra; the test command installs it

from device.types import EMOTIONS


def _exported(seed=0):
    """A tiny model with the exported outputs (years, P(female), 7 probabilities)."""
    import keras

    keras.utils.set_random_seed(seed)
    inp = keras.Input((64, 64, 1))
    x = keras.layers.Conv2D(4, 5, strides=4)(inp)
    x = keras.layers.Flatten()(x)
    init = keras.initializers.RandomNormal(stddev=0.05)
    return keras.Model(inp, {
        "age": keras.layers.Dense(1, kernel_initializer=init)(x),
        "gender": keras.layers.Dense(1, activation="sigmoid", kernel_initializer=init)(x),
        "emotion": keras.layers.Dense(7, activation="softmax", kernel_initializer=init)(x)})


def _branch(size=64, outputs=7, seed=1):
    import keras

    keras.utils.set_random_seed(seed)
    inp = keras.Input((size, size, 1))
    x = keras.layers.Conv2D(4, 3, strides=2)(inp)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inp, keras.layers.Dense(outputs, activation="softmax")(x))


def _faces(n=3):
    return np.random.default_rng(5).random((n, 64, 64, 1)).astype(np.float32)


def test_mirror_in_the_model_is_the_mean_of_the_face_and_its_mirror():
    from tools.model_def import deploy_model

    ours = _exported()
    deployed = deploy_model(ours, mirror=True)
    x = _faces()
    got = deployed.predict(x, verbose=0)
    plain = ours.predict(x, verbose=0)
    mirror = ours.predict(np.ascontiguousarray(x[:, :, ::-1]), verbose=0)
    for k in ("age", "gender", "emotion"):
        assert not np.allclose(plain[k], mirror[k], atol=1e-4)  # the views differ
        assert np.allclose(got[k], (plain[k] + mirror[k]) / 2, atol=1e-5)
    # rows stay the faces they came from: a batch of one gives the same answer
    one = deployed.predict(x[1:2], verbose=0)
    assert np.allclose(one["age"], got["age"][1:2], atol=1e-5)


def test_the_branch_runs_once_on_its_own_scale_and_is_averaged_into_emotion():
    from tools.model_def import deploy_model

    ours, branch = _exported(), _branch()
    x = _faces()
    mirror = ours.predict(np.ascontiguousarray(x[:, :, ::-1]), verbose=0)
    plain = ours.predict(x, verbose=0)
    b = branch.predict(x * 2 - 1, verbose=0)  # the mini-Xception's [-1, 1] input
    got = deploy_model(ours, branch=(branch, None, "fer"), mirror=True).predict(x, verbose=0)
    expect = ((plain["emotion"] + mirror["emotion"]) / 2 + b) / 2
    assert np.allclose(got["emotion"], expect, atol=1e-5)
    assert np.allclose(got["age"], (plain["age"] + mirror["age"]) / 2, atol=1e-5)  # untouched
    unit = deploy_model(ours, branch=(branch, None, "unit")).predict(x, verbose=0)
    assert np.allclose(unit["emotion"], (plain["emotion"] + branch.predict(x, verbose=0)) / 2,
                       atol=1e-5)
    assert np.allclose(unit["emotion"].sum(axis=1), 1, atol=1e-5)


def test_a_branch_of_another_size_or_label_set_is_refused():
    from tools.model_def import deploy_model

    with pytest.raises(ValueError, match=r"input \(48, 48, 1\), the analyzer's is \(64, 64, 1\)"):
        deploy_model(_exported(), branch=(_branch(size=48), None, "fer"))
    with pytest.raises(ValueError, match=f"8 outputs, expected {len(EMOTIONS)} emotions"):
        deploy_model(_exported(), branch=(_branch(outputs=8), None, "fer"))
