"""Batched augmentation inside tf.data: one random affine per face, then brightness/contrast.

A single projective transform per image (flip, rotation, scale, shift composed) costs one
resampling instead of one per effect, which matters on a two-core trainer.
"""

from __future__ import annotations

import math

import tensorflow as tf


def eye_jitter_transform(noise: tf.Tensor, size: float) -> tf.Tensor:
    """(B, 6) output->input affine rows of the crop the appliance would cut had it seen the two
    eyes moved by ``noise`` (B, 4: right dx, dy, left dx, dy, in crop pixels): the similarity
    that maps the template eyes (``device.align``) onto the moved eyes."""
    from device.align import EYE_CENTER, EYE_DISTANCE

    half = EYE_DISTANCE * size / 2
    cx, cy = EYE_CENTER[0] * size, EYE_CENTER[1] * size
    rx, ry = cx - half + noise[:, 0], cy + noise[:, 1]
    lx, ly = cx + half + noise[:, 2], cy + noise[:, 3]
    # (a + ib) = (moved left - moved right) / (template left - template right), as complex
    a, b = (lx - rx) / (2 * half), (ly - ry) / (2 * half)
    # input = A @ output + t, with A = [[a, -b], [b, a]] and A @ template_right + t = moved right
    tx = rx - (a * (cx - half) - b * cy)
    ty = ry - (b * (cx - half) + a * cy)
    return tf.stack([a, -b, tx, b, a, ty], axis=1)


def _compose(outer: tf.Tensor, inner: tf.Tensor) -> tf.Tensor:
    """(B, 6) affine rows of ``outer(inner(p))``."""
    a0, a1, a2, b0, b1, b2 = tf.unstack(outer, axis=1)
    c0, c1, c2, d0, d1, d2 = tf.unstack(inner, axis=1)
    return tf.stack([a0 * c0 + a1 * d0, a0 * c1 + a1 * d1, a0 * c2 + a1 * d2 + a2,
                     b0 * c0 + b1 * d0, b0 * c1 + b1 * d1, b0 * c2 + b1 * d2 + b2], axis=1)


def random_affine(batch: tf.Tensor, max_deg: float = 10.0, scale=(0.9, 1.1),
                  max_shift: float = 0.06, seed=None, eye_jitter: float = 0.0) -> tf.Tensor:
    """Randomly flip, rotate, scale and shift a (B, H, W, C) float batch (edges replicated).

    ``eye_jitter`` > 0 also re-frames each face as the appliance would had the detector put each
    eye keypoint elsewhere by Gaussian noise of that standard deviation per axis, as a fraction
    of the eye distance (the keypoint noise of the device's detector, measured by
    ``tools.keypoint_noise``)."""
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
    rows = tf.stack([a0, a1, a2, b0, b1, b2], axis=1)
    if eye_jitter > 0:  # output -> augmented crop (rows) -> jittered framing of the source face
        from device.align import EYE_DISTANCE

        sd = eye_jitter * EYE_DISTANCE * w
        rows = _compose(eye_jitter_transform(tf.random.normal((b, 4), stddev=sd, seed=seed), w),
                        rows)
    transforms = tf.concat([rows, tf.stack([zeros, zeros], axis=1)], axis=1)
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


def augment(batch: tf.Tensor, seed=None, erase: float = 0.0,
            eye_jitter: float = 0.0) -> tf.Tensor:
    out = random_photometric(random_affine(batch, seed=seed, eye_jitter=eye_jitter), seed=seed)
    return random_erase(out, erase, seed=seed) if erase > 0 else out
