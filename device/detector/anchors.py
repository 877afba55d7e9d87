"""SSD anchor generation, as MediaPipe's ``SsdAnchorsCalculator`` does it for BlazeFace.

Only the options BlazeFace uses are modelled. Anchors are (x_center, y_center, w, h) in
[0, 1] model-input coordinates; with ``fixed_anchor_size`` every w and h is 1.0, so the
regressor's offsets are in input pixels divided by the input size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class AnchorOptions:
    """The subset of MediaPipe's ``SsdAnchorsCalculatorOptions`` BlazeFace needs."""

    input_width: int  # model input, pixels
    input_height: int
    strides: tuple[int, ...]
    min_scale: float = 0.1484375
    max_scale: float = 0.75
    anchor_offset: float = 0.5
    aspect_ratios: tuple[float, ...] = (1.0,)
    interpolated_scale_aspect_ratio: float = 1.0
    fixed_anchor_size: bool = True


def _scale(min_scale: float, max_scale: float, index: int, count: int) -> float:
    if count == 1:
        return (min_scale + max_scale) * 0.5
    return min_scale + (max_scale - min_scale) * index / (count - 1)


def _layer_shapes(opts: AnchorOptions, first: int, last: int) -> list[tuple[float, float]]:
    """(width, height) of each anchor per cell for layers ``first..last-1`` (one shared stride)."""
    shapes = []
    n = len(opts.strides)
    for layer in range(first, last):
        scale = _scale(opts.min_scale, opts.max_scale, layer, n)
        for ratio in opts.aspect_ratios:
            r = math.sqrt(ratio)
            shapes.append((scale * r, scale / r))
        if opts.interpolated_scale_aspect_ratio > 0.0:
            nxt = 1.0 if layer == n - 1 else _scale(opts.min_scale, opts.max_scale, layer + 1, n)
            s = math.sqrt(scale * nxt)
            r = math.sqrt(opts.interpolated_scale_aspect_ratio)
            shapes.append((s * r, s / r))
    return shapes


def generate_anchors(opts: AnchorOptions) -> np.ndarray:
    """All anchors in the order the model's outputs list them.

    Returns:
        float32 N x 4 array of (x_center, y_center, w, h), normalised to the input size.
    """
    out = []
    layer = 0
    while layer < len(opts.strides):
        last = layer
        while last < len(opts.strides) and opts.strides[last] == opts.strides[layer]:
            last += 1
        shapes = _layer_shapes(opts, layer, last)
        cols = math.ceil(opts.input_width / opts.strides[layer])
        rows = math.ceil(opts.input_height / opts.strides[layer])
        for y in range(rows):
            for x in range(cols):
                cx = (x + opts.anchor_offset) / cols
                cy = (y + opts.anchor_offset) / rows
                for w, h in shapes:
                    out.append((cx, cy, 1.0, 1.0) if opts.fixed_anchor_size else (cx, cy, w, h))
        layer = last
    return np.asarray(out, dtype=np.float32)
