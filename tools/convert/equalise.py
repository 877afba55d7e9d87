"""Activation equalisation: a float-exact rewrite of the rebuilt graph that quantises better.

An int8 activation has one scale for all its channels, so a channel whose values are 4x smaller
than the largest one gets 4x coarser steps relative to its values. Where a channel can be
rescaled without changing the network's function, each channel is scaled up to the range of the
largest one (at most ``max_scale``) and the next layer scales it back down:

* ``CONV_2D -> RELU -> DEPTHWISE_CONV_2D``: ReLU commutes with a positive scale; the conv's
  output channel and bias are multiplied, the depthwise channel divided. Both are quantised
  per channel, so the weights' int8 values do not change at all.
* ``DEPTHWISE_CONV_2D -> CONV_2D 1x1`` (no activation between): the depthwise channel and bias
  are multiplied, the pointwise conv's input channel divided.

Only tensors read by exactly that one next op are rescaled (not the residual stream).

``general=True`` (YuNet) also takes every convolution or depthwise convolution whose
activation is none or ReLU (both commute with a positive scale) and whose result is read, maybe
through one max-pool (which commutes too), only by convolutions or depthwise convolutions, each
of which is scaled back on its input channels (``general_pairs``).
"""

from __future__ import annotations

import copy

import numpy as np

from tools.convert.tflite_graph import Graph


def _copy(graph: Graph) -> Graph:
    g = copy.copy(graph)
    g.constants = dict(graph.constants)
    return g


def _consumers(graph: Graph) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for k, op in enumerate(graph.ops):
        for i in op.inputs:
            out.setdefault(i, []).append(k)
    for i in graph.outputs:
        out.setdefault(i, []).append(-1)
    return out


def equalisable(graph: Graph) -> list[tuple[str, int, int, int]]:
    """(kind, tensor, op that scales the channels, op that unscales them) for every tensor that
    can be rescaled per channel; kind is ``relu_dw`` or ``dw_pw``."""
    cons = _consumers(graph)
    prod = {op.outputs[0]: k for k, op in enumerate(graph.ops)}
    found = []
    for k, op in enumerate(graph.ops):
        t = op.outputs[0]
        if len(cons.get(t, [])) != 1 or cons[t][0] < 0:
            continue
        nxt = graph.ops[cons[t][0]]
        if nxt.inputs[0] != t:
            continue
        if nxt.name == "DEPTHWISE_CONV_2D" and (nxt.options.get("depth_multiplier") or 1) != 1:
            continue
        if op.name == "RELU" and nxt.name == "DEPTHWISE_CONV_2D" and op.inputs[0] in prod:
            p = prod[op.inputs[0]]
            conv = graph.ops[p]
            if (conv.name == "CONV_2D" and len(conv.inputs) > 2
                    and conv.options.get("fused_activation_function") == "NONE"
                    and len(cons[conv.outputs[0]]) == 1):
                found.append(("relu_dw", t, p, cons[t][0]))
        elif (op.name == "DEPTHWISE_CONV_2D" and len(op.inputs) > 2 and nxt.name == "CONV_2D"
              and op.options.get("fused_activation_function") == "NONE"
              and graph.constants[nxt.inputs[1]].shape[1:3] == (1, 1)):
            found.append(("dw_pw", t, k, cons[t][0]))
    return found


def general_pairs(graph: Graph) -> list[tuple[str, int, int, list[int]]]:
    """("general", tensor, op that scales its channels, ops that unscale them) for every conv
    or depthwise result (activation none or ReLU) read, directly or through one MAX_POOL_2D,
    only by CONV_2D or DEPTHWISE_CONV_2D ops (depth multiplier 1) as their first input."""
    cons = _consumers(graph)
    found = []
    for k, op in enumerate(graph.ops):
        if (op.name not in ("CONV_2D", "DEPTHWISE_CONV_2D") or len(op.inputs) < 3
                or op.options.get("fused_activation_function") not in ("NONE", "RELU")):
            continue
        t = op.outputs[0]
        readers = cons.get(t, [])
        if len(readers) == 1 and readers[0] >= 0 and graph.ops[readers[0]].name == "MAX_POOL_2D":
            readers = cons.get(graph.ops[readers[0]].outputs[0], [])
            t_in = graph.ops[cons[t][0]].outputs[0]
        else:
            t_in = t
        if not readers or any(r < 0 for r in readers):
            continue
        ok = all(graph.ops[r].name in ("CONV_2D", "DEPTHWISE_CONV_2D")
                 and graph.ops[r].inputs[0] == t_in
                 and (graph.ops[r].options.get("depth_multiplier") or 1) == 1
                 for r in readers)
        if ok:
            found.append(("general", t, k, list(readers)))
    return found


def channel_ranges(graph: Graph, tensors: list[int], samples, height: int, width: int,
                   percentile: float = 99.99) -> dict[int, np.ndarray]:
    """Per channel, the largest over ``samples`` of each frame's ``percentile`` of |value|."""
    import tensorflow as tf

    from tools.convert.tf_rebuild import input_shape, run_graph

    @tf.function(input_signature=[tf.TensorSpec(input_shape(graph, height, width), tf.float32)])
    def values(x):
        kept = run_graph(graph, x, keep=tensors)
        return [kept[t] for t in tensors]

    acc: dict[int, np.ndarray] = {}
    for x in samples:
        for t, v in zip(tensors, values(np.asarray(x, np.float32)), strict=True):
            a = np.abs(v.numpy()).reshape(-1, v.shape[-1])
            r = np.percentile(a, percentile, axis=0)
            acc[t] = r if t not in acc else np.maximum(acc[t], r)
    return acc


def equalise(graph: Graph, samples, height: int, width: int,
             max_scale: float = 16.0, general: bool = False) -> tuple[Graph, int]:
    """A float-equivalent copy of ``graph`` with equalised activation channels, and how many
    tensors were equalised. Channel ranges are measured on ``samples`` (calibration inputs);
    ``general`` chooses ``general_pairs`` instead of ``equalisable``."""
    pairs = general_pairs(graph) if general else equalisable(graph)
    if not pairs:
        return graph, 0
    ranges = channel_ranges(graph, [p[1] for p in pairs], samples, height, width)
    g = _copy(graph)
    for kind, t, scaler, unscaler in pairs:
        r = ranges[t]
        top = float(r.max())
        if top <= 0:
            continue
        s = (top / np.maximum(r, top / max_scale)).astype(np.float32)
        w, b = g.ops[scaler].inputs[1], g.ops[scaler].inputs[2]
        conv_out = kind == "relu_dw" or (kind == "general" and g.ops[scaler].name == "CONV_2D")
        out_axis = (slice(None), None, None, None) if conv_out else (None, None, None)
        g.constants[w] = g.constants[w].astype(np.float32) * s[out_axis]  # OHWI / 1HWC
        g.constants[b] = g.constants[b].astype(np.float32) * s
        for op in unscaler if isinstance(unscaler, list) else [unscaler]:
            nw = g.ops[op].inputs[1]  # depthwise 1HWC or conv OHWI: the input channel is last
            g.constants[nw] = g.constants[nw].astype(np.float32) / s[None, None, None, :]
    return g, len(pairs)
