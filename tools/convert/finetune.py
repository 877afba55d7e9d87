"""Quantisation-aware fine-tuning of a rebuilt detector graph against its own float outputs.

Post-training quantisation leaves BlazeFace's score logits ~0.19 (std) off the float model's,
enough to flip faces whose float score lies near the threshold. Rounding noise per layer is
ordinary; it is the sum over ~50 layers that hurts. Here the graph runs in TensorFlow with the
int8 arithmetic simulated (``fake_quant``: per-channel symmetric int8 weights, each activation on
its own 8-bit grid, the input on the [-1, 1] grid) and its conv weights and biases are trained,
with straight-through gradients, so that the simulated int8 outputs match the *float* model's
outputs on calibration frames. The float model is the teacher; there are no labels, so any
face-like frames serve (UTKFace chips and scenes made from them, never the sample footage).

The result is a graph of the same ops with slightly different float weights; the normal
post-training conversion (``quantize.to_int8``) then turns it into the int8 model.

Loss, per frame: squared error of the score logits, weighted towards the anchors whose float logit
lies near the decision threshold (those decide which faces are kept), plus a small box-regressor
term on anchors that could become detections.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from tools.convert import ranges as rg
from tools.convert.tf_rebuild import _apply, run_graph
from tools.convert.tflite_graph import Graph, Op

_KEEPS_GRID = {"PAD", "MAX_POOL_2D", "RESHAPE"}  # output on the input's grid
_RELUS = {"RELU", "RELU6"}


@dataclass
class FinetuneReport:
    steps: int
    band_std_before: float
    band_std_after: float
    band_mean_before: float
    band_mean_after: float
    loss_first: float
    loss_last: float

    def to_dict(self) -> dict:
        return {k: (round(v, 5) if isinstance(v, float) else v) for k, v in vars(self).items()}


def trainable_constants(graph: Graph) -> list[int]:
    """Weight and bias tensors of every conv / depthwise conv."""
    out = []
    for op in graph.ops:
        if op.name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            out += [i for i in op.inputs[1:3] if i >= 0 and i in graph.constants]
    return out


def quantised_tensors(graph: Graph) -> dict[int, int]:
    """Op-output tensor -> index of the op, for every activation int8 gives its own grid.

    A conv or add followed only by a ReLU is fused with it (the ReLU's output is quantised); ops
    that keep their input's grid (pad, max-pool, reshape) add none. The graph outputs keep the
    converter's min/max and are left to it.
    """
    consumers: dict[int, list[Op]] = {}
    for op in graph.ops:
        for i in op.inputs:
            consumers.setdefault(i, []).append(op)
    out = {}
    for k, op in enumerate(graph.ops):
        t = op.outputs[0]
        if op.name in _KEEPS_GRID:
            continue
        users = consumers.get(t, [])
        if op.name not in _RELUS and users and all(u.name in _RELUS for u in users):
            continue  # fused: the ReLU's output carries the grid
        out[t] = k
    return out


def activation_ranges(graph: Graph, samples, tensors, fixed=()) -> dict[int, tuple[float, float]]:
    """MSE-optimal int8 range of each tensor (min/max for ``fixed`` ones) over ``samples``, with
    the same criterion the converter uses (``ranges.mse_range``)."""
    lo = dict.fromkeys(tensors, np.inf)
    hi = dict.fromkeys(tensors, -np.inf)
    vals = []
    for x in samples:
        v = {i: t.numpy() for i, t in run_graph(graph, tf.constant(x), keep=tensors).items()}
        for i, a in v.items():
            lo[i], hi[i] = min(lo[i], float(a.min())), max(hi[i], float(a.max()))
        vals.append(v)
    out = {}
    for i in tensors:
        if i in fixed:
            out[i] = (lo[i], hi[i])
            continue
        hist = sum(rg.bin_counts(v[i], lo[i], hi[i]) for v in vals)
        out[i] = rg.mse_range(lo[i], hi[i], hist)
    return out


def _fq(x, lo: float, hi: float):
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    if hi - lo < 1e-9:
        return x
    return tf.quantization.fake_quant_with_min_max_args(x, min=lo, max=hi, num_bits=8)


def _fq_weights(w):
    """Per-channel symmetric int8 (narrow range, scale max|w|/127), channels on the last axis."""
    m = tf.stop_gradient(tf.maximum(
        tf.reduce_max(tf.abs(w), axis=list(range(len(w.shape) - 1))), 1e-8))
    return tf.quantization.fake_quant_with_min_max_vars_per_channel(
        w, -m, m, num_bits=8, narrow_range=True)


class QuantSim:
    """The graph as a differentiable TF computation with int8 arithmetic simulated."""

    def __init__(self, graph: Graph, act_ranges: dict[int, tuple[float, float]],
                 input_range=(-1.0, 1.0), fixed=()):
        self.graph = graph
        self.ranges = act_ranges
        self.input_range = input_range
        self.vars = {i: tf.Variable(graph.constants[i].astype(np.float32), name=f"t{i}")
                     for i in trainable_constants(graph)}
        # learnable ranges: each end as its starting value times exp(log-factor); the outputs'
        # ranges (``fixed``, kept at min/max by the converter) are not learnt
        self.log_range = {i: tf.Variable([0.0, 0.0], name=f"r{i}") for i in act_ranges
                          if i not in fixed}

    @property
    def variables(self) -> list[tf.Variable]:
        return list(self.vars.values())

    @property
    def range_variables(self) -> list[tf.Variable]:
        return list(self.log_range.values())

    def range_of(self, t: int):
        lo, hi = self.ranges[t]
        lo, hi = min(lo, 0.0), max(hi, 0.0)
        if t not in self.log_range:
            return tf.constant(lo), tf.constant(hi)
        f = tf.exp(self.log_range[t])
        return lo * f[0], hi * f[1]

    def learnt_ranges(self) -> dict[int, tuple[float, float]]:
        """Every activation's current range (learnt where learnable)."""
        return {t: tuple(float(v) for v in self.range_of(t)) for t in self.ranges}

    def __call__(self, x, quantise: bool = True):
        g = self.graph
        values = {g.inputs[0]: _fq(x, *self.input_range) if quantise else x}
        for op in g.ops:
            args = [values[i] if i in values else
                    (self.vars[i] if i in self.vars else g.constants.get(i))
                    for i in op.inputs if i >= 0]
            y = _apply(op, args, g, weights=_fq_weights if quantise else None)
            t = op.outputs[0]
            if quantise and t in self.ranges:
                lo, hi = self.range_of(t)
                y = tf.quantization.fake_quant_with_min_max_vars(y, lo, hi, num_bits=8)
            values[t] = y
        return [values[i] for i in g.outputs]

    def to_graph(self) -> Graph:
        """A copy of the graph with the trained weights as its constants."""
        g = copy.copy(self.graph)
        g.constants = dict(self.graph.constants)
        for i, v in self.vars.items():
            g.constants[i] = v.numpy().astype(np.float32)
        return g


def _split(outputs, graph: Graph):
    """(scores (B, N), boxes (B, N, 16)) from the graph's outputs."""
    score = next(o for o, i in zip(outputs, graph.outputs) if graph.shapes[i][-1] == 1)
    box = next(o for o, i in zip(outputs, graph.outputs) if graph.shapes[i][-1] != 1)
    return tf.reshape(score, (tf.shape(score)[0], -1)), box


def loss_fn(q_score, f_score, q_box, f_box, band=(-4.0, 5.0), box_weight: float = 1e-3):
    """Weighted squared logit error (1 inside ``band``, 0.05 outside, logits clipped to +-20 so
    confident background does not dominate) + ``box_weight`` x squared box error (pixels) on
    anchors with float logit above the band's lower end."""
    f = tf.clip_by_value(f_score, -20.0, 20.0)
    q = tf.clip_by_value(q_score, -20.0, 20.0)
    inside = tf.cast((f > band[0]) & (f < band[1]), tf.float32)
    w = inside + 0.05 * (1 - inside)
    score_l = tf.reduce_sum(w * tf.square(q - f)) / tf.maximum(tf.reduce_sum(inside), 1.0)
    near = tf.cast(f > band[0], tf.float32)[..., None]
    box_l = tf.reduce_sum(near * tf.square(q_box - f_box)) / tf.maximum(
        tf.reduce_sum(near) * 16, 1.0)
    return score_l + box_weight * box_l


def band_error(sim: QuantSim, teacher: Callable, samples, band=(-1.5, 3.0)) -> tuple[float, float]:
    """(mean, std) of simulated-int8 minus float score logits on anchors with float logit in
    ``band`` (the ones near the threshold)."""
    diffs = []
    for x in samples:
        f, _ = teacher(x)
        q, _ = _split(sim(tf.constant(x)), sim.graph)
        f, q = f.numpy().ravel(), q.numpy().ravel()
        sel = (f > band[0]) & (f < band[1])
        diffs.append(q[sel] - f[sel])
    d = np.concatenate(diffs) if diffs else np.zeros(1)
    return float(d.mean()), float(d.std())


def finetune(graph: Graph, train, held_out: list[np.ndarray],
             epochs: int = 3, batch: int = 8, lr: float = 5e-5, seed: int = 0,
             range_samples: int = 48, range_lr: float = 0.0,
             log: Callable[[str], None] = print
             ) -> tuple[Graph, dict[int, tuple[float, float]], FinetuneReport]:
    """Fine-tune ``graph``'s conv weights so its simulated int8 outputs match its float outputs.

    Args:
        graph: the float graph to start from (already equalised, if that is wanted).
        train: pre-processed input frames (1 x H x W x 3 float in [-1, 1]), or a function of the
            epoch number returning them (fresh frames every epoch: nothing to over-fit).
        held_out: frames only used to report the score-logit error before and after.
    """
    frames = train if callable(train) else (lambda epoch: train)
    first = frames(0)
    tensors = quantised_tensors(graph)
    fixed = _head_tensors(graph)
    ranges = activation_ranges(graph, first[::max(1, len(first) // range_samples)],
                               sorted(set(tensors) | fixed), fixed=fixed)
    sim = QuantSim(graph, ranges, fixed=fixed)

    @tf.function(reduce_retracing=True)
    def teacher_batch(x):  # the float graph as read: the starting weights, never trained
        return _split(run_graph(graph, x), graph)

    def teacher(x):
        return teacher_batch(tf.constant(x))

    mean0, std0 = band_error(sim, teacher, held_out)
    log(f"simulated int8 score-logit error on {len(held_out)} held-out frames: "
        f"mean {mean0:+.3f}, std {std0:.3f}")
    steps_per_epoch = math.ceil(len(first) / batch)
    total = epochs * steps_per_epoch
    schedule = tf.keras.optimizers.schedules.CosineDecay(lr, total, alpha=0.05)
    opt = tf.keras.optimizers.Adam(schedule)
    range_opt = tf.keras.optimizers.Adam(
        tf.keras.optimizers.schedules.CosineDecay(range_lr, total, alpha=0.05))
    train_vars = (sim.variables if lr > 0 else []) + (sim.range_variables if range_lr > 0 else [])
    n_w = len(sim.variables) if lr > 0 else 0

    @tf.function(reduce_retracing=True)
    def step(x):
        f_score, f_box = teacher_batch(x)
        with tf.GradientTape() as tape:
            q_score, q_box = _split(sim(x), graph)
            loss = loss_fn(q_score, f_score, q_box, f_box)
        grads = tape.gradient(loss, train_vars)
        if n_w:
            opt.apply_gradients(zip(grads[:n_w], train_vars[:n_w]))
        if len(train_vars) > n_w:
            range_opt.apply_gradients(zip(grads[n_w:], train_vars[n_w:]))
        return loss

    rng = np.random.default_rng(seed)
    losses = []
    for epoch in range(epochs):
        x_all = np.concatenate(first if epoch == 0 else frames(epoch), axis=0).astype(np.float32)
        order = rng.permutation(len(x_all))
        ep = []
        for s in range(math.ceil(len(x_all) / batch)):
            idx = order[s * batch:(s + 1) * batch]
            ep.append(float(step(tf.constant(x_all[idx]))))
        losses += ep
        mean, std = band_error(sim, teacher, held_out)
        log(f"epoch {epoch + 1}/{epochs}: train loss {np.mean(ep):.4f}; held-out score-logit "
            f"error mean {mean:+.3f}, std {std:.3f}")
    mean1, std1 = band_error(sim, teacher, held_out)
    report = FinetuneReport(total, std0, std1, mean0, mean1, losses[0] if losses else 0.0,
                            float(np.mean(losses[-steps_per_epoch:])) if losses else 0.0)
    return sim.to_graph(), sim.learnt_ranges(), report


def _head_tensors(graph: Graph) -> set[int]:
    """The tensors that become the outputs (through reshapes): the converter keeps min/max."""
    producer = {op.outputs[0]: op for op in graph.ops}
    out, stack = set(), list(graph.outputs)
    while stack:
        t = stack.pop()
        op = producer.get(t)
        if op is None:
            continue
        out.add(t)
        if op.name in ("RESHAPE", "CONCATENATION"):
            stack += [i for i in op.inputs if i not in graph.constants and i >= 0]
    return out


def map_to_calibrated(graph: Graph, calibrated: bytes, tensors, sample) -> dict[int, int]:
    """Graph tensor -> tensor of TFLite's calibrated flatbuffer holding the same activation.

    The converter renames and fuses ops, so tensors are matched by value: both models run on
    ``sample`` and each graph tensor is paired with the calibrated tensor of the same shape whose
    values agree (max difference below 1e-3 of its magnitude). Unmatched tensors are left out.
    """
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=calibrated, experimental_preserve_all_tensors=True,
                     num_threads=1)
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], np.asarray(sample, np.float32))
    it.invoke()
    candidates = {}
    for i in rg.ranged_tensors(calibrated):
        try:
            v = it.get_tensor(i)
        except ValueError:
            continue
        candidates.setdefault(tuple(v.shape), []).append((i, v))
    mine = run_graph(graph, tf.constant(sample), keep=list(tensors))
    out = {}
    for t, v in mine.items():
        v = v.numpy()
        tol = 1e-3 * max(float(np.abs(v).max()), 1e-6)
        for i, c in candidates.get(tuple(v.shape), []):
            if float(np.abs(c - v).max()) <= tol:
                out[t] = i
                break
    return out
