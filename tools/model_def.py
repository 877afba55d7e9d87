"""The multi-head attribute network: one depthwise-separable trunk, heads for age, gender, emotion.

Training also carries two comparison heads: ``age_reg`` (plain regression, beside the ``age``
distribution over years) and ``emotion_orig`` (trained on the original FER2013 labels, beside
``emotion`` trained on FER+ soft votes). One run thus measures both choices on the same trunk;
``export_model`` builds the three outputs the appliance reads, under the names it looks for (the
shipped emotion output may be the mean of both emotion heads).
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers

from device.types import EMOTIONS

INPUT_SIZE = 64
AGE_BINS = 101  # years 0..100; UTKFace ages above 100 are clipped
TRUNK = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (384, 2), (384, 1))  # (filters, stride)
# Trunks by name (``build_model(arch=)``, ``tools.train --arch``). "s" is the trunk of models up
# to 1.7; "m" adds capacity where it costs the fewest operations per face: a third block at 8x8
# and a 512-wide 4x4 stage of three blocks (about 2x the parameters, 1.55x the multiply-adds of
# "s": 1.05 M and 31 M against 0.53 M and 20 M).
ARCHS = {
    "s": TRUNK,
    "m": ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (256, 1), (512, 2), (512, 1),
          (512, 1)),
}


def _ds_block(x, filters: int, stride: int, name: str):
    x = layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False,
                               name=f"{name}_dw")(x)
    x = layers.BatchNormalization(name=f"{name}_dw_bn")(x)
    x = layers.ReLU(name=f"{name}_dw_relu")(x)
    x = layers.Conv2D(filters, 1, use_bias=False, name=f"{name}_pw")(x)
    x = layers.BatchNormalization(name=f"{name}_pw_bn")(x)
    return layers.ReLU(name=f"{name}_pw_relu")(x)


def _head_features(x, units: int, name: str, dropout: float):
    x = layers.Dense(units, name=f"{name}_fc")(x)
    x = layers.ReLU(name=f"{name}_relu")(x)
    return layers.Dropout(dropout, name=f"{name}_drop")(x)


def build_model(width: float = 1.0, head_units: int = 128, dropout: float = 0.3,
                hires: int = 0, arch: str = "s") -> keras.Model:
    """The training model: input 64x64x1 in [0, 1]; outputs (all probabilities or years)::

        age (101 softmax over years), age_reg (1, years), gender (1 sigmoid, P(female)),
        emotion (7 softmax, FER+ votes), emotion_orig (7 softmax, original FER2013 labels)

    ``hires``: channels of an extra branch at full input resolution (a 3x3 conv at 64x64, then
    a strided 3x3 conv), added to the stride-2 stem's output before its ReLU. The stem alone
    looks at the face once, at half resolution, before anything is learnt at full resolution;
    the branch gives fine detail (eyes, mouth corners) its own filters. Its last batch norm
    starts at zero scale, so a model with the branch computes exactly what the same weights
    compute without it until training moves it (``transfer_weights``).

    ``arch``: the trunk, a key of ``ARCHS``.
    """
    if arch not in ARCHS:
        raise ValueError(f"arch must be one of {', '.join(ARCHS)}, got {arch!r}")
    inp = keras.Input((INPUT_SIZE, INPUT_SIZE, 1), name="face")
    x = layers.Conv2D(int(32 * width), 3, strides=2, padding="same", use_bias=False,
                      name="stem")(inp)
    x = layers.BatchNormalization(name="stem_bn")(x)
    if hires:
        h = layers.Conv2D(hires, 3, padding="same", use_bias=False, name="hires_conv")(inp)
        h = layers.BatchNormalization(name="hires_bn")(h)
        h = layers.ReLU(name="hires_relu")(h)
        h = layers.Conv2D(int(32 * width), 3, strides=2, padding="same", use_bias=False,
                          name="hires_down")(h)
        h = layers.BatchNormalization(gamma_initializer="zeros", name="hires_down_bn")(h)
        x = layers.Add(name="stem_add")([x, h])
    x = layers.ReLU(name="stem_relu")(x)
    for i, (filters, stride) in enumerate(ARCHS[arch]):
        x = _ds_block(x, int(filters * width), stride, f"block{i}")
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    feat_age = _head_features(x, head_units, "age_head", dropout)
    feat_gender = _head_features(x, head_units // 2, "gender_head", dropout)
    feat_emo = _head_features(x, head_units, "emotion_head", dropout)
    outputs = {
        "age": layers.Dense(AGE_BINS, activation="softmax", name="age")(feat_age),
        "age_reg": layers.Dense(1, bias_initializer=keras.initializers.Constant(33.0),
                                name="age_reg")(feat_age),
        "gender": layers.Dense(1, activation="sigmoid", name="gender")(feat_gender),
        "emotion": layers.Dense(len(EMOTIONS), activation="softmax", name="emotion")(feat_emo),
        "emotion_orig": layers.Dense(len(EMOTIONS), activation="softmax",
                                     name="emotion_orig")(feat_emo),
    }
    return keras.Model(inp, outputs, name="multihead")


def transfer_weights(src: keras.Model, dst: keras.Model) -> list[str]:
    """Copy every layer's weights from ``src`` into the same-named layer of ``dst`` whose shapes
    match; returns the names of ``dst``'s weighted layers left as initialised (new ones)."""
    fresh = []
    for layer in dst.layers:
        if not layer.weights:
            continue
        try:
            other = src.get_layer(layer.name)
        except ValueError:
            fresh.append(layer.name)
            continue
        weights = other.get_weights()
        if [w.shape for w in weights] != [tuple(w.shape) for w in layer.weights]:
            fresh.append(layer.name)
            continue
        layer.set_weights(weights)
    return fresh


def export_model(model: keras.Model, age: str = "age", emotion: str = "emotion") -> keras.Model:
    """The shipped model: three outputs named ``age`` (years), ``gender``, ``emotion``.

    Args:
        age: which trained age head to ship: ``age`` (the distribution, shipped as its expected
            years) or ``age_reg``.
        emotion: which trained emotion head to ship: ``emotion`` (FER+ votes), ``emotion_orig``
            (original labels) or ``emotion_mix`` (the mean of their probabilities).
    """
    outs = model.output if isinstance(model.output, dict) else dict(zip(model.output_names,
                                                                         model.outputs))
    age_out = outs[age] if age != "age" else expected_years(outs["age"])
    # Identity layers give the chosen tensors the names the appliance finds heads by.
    return keras.Model(model.input, {
        "age": layers.Identity(name="age_out")(age_out),
        "gender": outs["gender"],
        "emotion": _emotion_output(outs, emotion),
    }, name="multihead_export")


def _emotion_output(outs: dict, emotion: str):
    if emotion == "emotion_mix":  # the mean of the two emotion heads' probabilities
        return layers.Average(name="emotion_mix")([outs["emotion"], outs["emotion_orig"]])
    if emotion == "emotion":
        return outs["emotion"]
    return layers.Identity(name="emotion_out")(outs[emotion])


def expected_years(probs):
    """Years as the expectation of the softmax over 0..100, as a fixed (untrained) dense layer.

    Shipping the expectation rather than the 101 probabilities keeps the int8 output one number:
    101 int8 probabilities (steps of 1/256) no longer sum to 1 closely enough for the runtime to
    take them for probabilities.
    """
    dense = layers.Dense(1, use_bias=False, trainable=False, name="age_years")
    out = dense(probs)
    dense.set_weights([np.arange(AGE_BINS, dtype=np.float32).reshape(AGE_BINS, 1)])
    return out


def check_branch_input(model: keras.Model, size: int) -> None:
    """ValueError unless an emotion branch reads the analyzer's ``size`` x ``size`` gray face."""
    if tuple(model.input_shape[1:]) != (size, size, 1):
        raise ValueError(f"emotion branch {model.name}: input {model.input_shape[1:]}, the "
                         f"analyzer's is {(size, size, 1)}")


def deploy_model(exported: keras.Model, branch=None, mirror: bool = False) -> keras.Model:
    """The shipped graph around an exported model (``export_model``): optionally mirror
    averaging inside the model and a second emotion classifier averaged into ``emotion``.

    Args:
        exported: outputs ``age`` (years), ``gender`` (P(female)), ``emotion`` (7 probabilities),
            input 64x64x1 in [0, 1].
        branch: None, or ``(model, output, scale)`` as ``tools.training.teacher`` loads it: a
            7-emotion classifier with a square gray input of the same size; ``output`` names its
            head when it has several; ``scale`` ``"fer"`` means it reads [-1, 1] (the
            mini-Xception's), ``"unit"`` [0, 1]. Its probabilities on the face (one pass) and
            ours are averaged: ``emotion = (ours + branch) / 2``.
        mirror: run ``exported`` on the face and its mirror image, as one batch of two views
            inside the graph, and average each head over both. The branch is not mirrored: it
            would cost a second pass of the branch per face. The manifest then says
            ``"test_time": "in_model"`` so the appliance does not mirror again.
    Raises:
        ValueError: the branch's input is not the exported model's size, or its output is not
            7 emotions.
    """
    from keras import ops

    size = int(exported.input_shape[1])
    inp = keras.Input(exported.input_shape[1:], name="face")
    if mirror:
        views = layers.Lambda(lambda x: ops.reshape(ops.stack([x, ops.flip(x, axis=2)], axis=1),
                                                    (-1, size, size, 1)), name="mirror_views")(inp)
        raw = exported(views)

        def pair_mean(t, name):  # rows 2i and 2i+1 are face i and its mirror image
            k = int(t.shape[-1])
            return layers.Lambda(lambda y: ops.mean(ops.reshape(y, (-1, 2, k)), axis=1),
                                 name=name)(t)

        outs = {k: pair_mean(raw[k], f"{k}_mirror_mean") for k in ("age", "gender", "emotion")}
    else:
        raw = exported(inp)
        outs = {k: layers.Identity(name=f"{k}_ours")(raw[k]) for k in ("age", "gender", "emotion")}
    if branch is not None:
        model, output, scale = branch
        check_branch_input(model, size)
        x = layers.Rescaling(2.0, -1.0, name="branch_scale")(inp) if scale == "fer" else inp
        b = model(x)
        b = b[output] if output else (b[0] if isinstance(b, (list, tuple)) else b)
        if int(b.shape[-1]) != len(EMOTIONS):
            raise ValueError(f"emotion branch {model.name}: {b.shape[-1]} outputs, expected "
                             f"{len(EMOTIONS)} emotions")
        outs["emotion"] = layers.Average(name="emotion_branch_mean")([outs["emotion"], b])
    return keras.Model(inp, outs, name="multihead_deploy")
