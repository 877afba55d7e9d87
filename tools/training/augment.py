"""Batched augmentation inside tf.data: one random affine per face, then brightness/contrast.

A single projective transform per image (flip, rotation, scale, shift composed) costs one
resampling instead of one per effect, which matters on a two-core trainer.
"""

from __future__ import annotations

import math

import tensorflow as tf


def random_affine(batch: tf.Tensor, max_deg: float = 10.0, scale=(0.9, 1.1),
                  max_shift: float = 0.06, seed=None) -> tf.Tensor:
    """Randomly flip, rotate, scale and shift a (B, H, W, C) float batch (edges replicated)."""
    b = tf.shape(batch)[0]
    h = tf.cast(tf.shape(batch)[1], tf.float32)
    w = tf.cast(tf.shape(batch)[2], tf.float32)
    rng = tf.random.uniform((b, 5), seed=seed)
    theta = (rng[:, 0] * 2 - 1) * max_deg * math.pi / 180
    s = scale[0] + rng[:, 1] * (scale[1] - scale[0])
    tx = (rng[:, 2] * 2 - 1) * max_shift * w
    ty = (rng[:, 3] * 2 - 1) * max_shift * h
    flip = tf.cast(rng[:, 4] < 0.5, tf.float32)
    cx, cy = (w - 1) / 2, (h - 1) / 2
    cos, sin = tf.cos(theta) / s, tf.sin(theta) / s
    # output pixel -> input pixel: centre + R(-theta)/s * (p - centre - shift), x mirrored if flip
    sign = 1 - 2 * flip
    a0, a1 = sign * cos, sign * sin
    a2 = sign * (cx - cos * (cx + tx) - sin * (cy + ty)) + flip * (w - 1)
    b0, b1 = -sin, cos
    b2 = cy + sin * (cx + tx) - cos * (cy + ty)
    zeros = tf.zeros_like(a0)
    transforms = tf.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=batch, transforms=transforms, output_shape=tf.shape(batch)[1:3],
        interpolation="BILINEAR", fill_mode="NEAREST", fill_value=0.0)


def random_photometric(batch: tf.Tensor, contrast=(0.7, 1.3), brightness: float = 0.1,
                       seed=None) -> tf.Tensor:
    """Per-image contrast about the image mean and a brightness offset, clipped to [0, 1]."""
    b = tf.shape(batch)[0]
    rng = tf.random.uniform((b, 2), seed=seed)
    c = tf.reshape(contrast[0] + rng[:, 0] * (contrast[1] - contrast[0]), (-1, 1, 1, 1))
    off = tf.reshape((rng[:, 1] * 2 - 1) * brightness, (-1, 1, 1, 1))
    mean = tf.reduce_mean(batch, axis=(1, 2, 3), keepdims=True)
    return tf.clip_by_value((batch - mean) * c + mean + off, 0.0, 1.0)


def random_erase(batch: tf.Tensor, prob: float = 0.5, size=(0.15, 0.35), seed=None) -> tf.Tensor:
    """Cutout: with probability ``prob`` fill one random square (side ``size`` of the face's
    width) with the image mean, so no single region (mouth, eyes) can carry a decision alone."""
    if prob <= 0:
        return batch
    shape = tf.shape(batch)
    b, h, w = shape[0], shape[1], shape[2]
    rng = tf.random.uniform((b, 4), seed=seed)
    side = (size[0] + rng[:, 0] * (size[1] - size[0])) * tf.cast(w, tf.float32)
    cx = rng[:, 1] * tf.cast(w, tf.float32)
    cy = rng[:, 2] * tf.cast(h, tf.float32)
    on = tf.cast(rng[:, 3] < prob, tf.float32)
    xs = tf.cast(tf.range(w), tf.float32)[None, None, :]
    ys = tf.cast(tf.range(h), tf.float32)[None, :, None]
    half = (side / 2)[:, None, None]
    inside = ((tf.abs(xs - cx[:, None, None]) <= half) & (tf.abs(ys - cy[:, None, None]) <= half))
    mask = (tf.cast(inside, tf.float32) * on[:, None, None])[..., None]
    mean = tf.reduce_mean(batch, axis=(1, 2, 3), keepdims=True)
    return batch * (1 - mask) + mean * mask


def augment(batch: tf.Tensor, seed=None, erase: float = 0.0) -> tf.Tensor:
    out = random_photometric(random_affine(batch, seed=seed), seed=seed)
    return random_erase(out, erase, seed=seed) if erase > 0 else out
