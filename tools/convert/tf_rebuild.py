"""Rebuilding a float TFLite graph (read by ``tflite_graph``) as a TensorFlow function.

Only the ops BlazeFace and YuNet use are supported; anything else stops with a clear error. The
input may be given a different height/width than the original (the network is fully
convolutional up to its final reshapes), which is how a wide-input variant is made from the
same weights.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tools.convert.tflite_graph import Graph, Op

_ACT = {"NONE": lambda x: x, "RELU": tf.nn.relu, "RELU6": tf.nn.relu6,
        "RELU_N1_TO_1": lambda x: tf.clip_by_value(x, -1.0, 1.0)}


def _act(op: Op, x):
    name = op.options.get("fused_activation_function", "NONE")
    if name not in _ACT:
        raise NotImplementedError(f"fused activation {name} is not supported")
    return _ACT[name](x)


def _conv(op: Op, x, w, b, weights=None):
    o = op.options
    # OHWI -> HWIO; a trained tf.Variable (quantisation-aware fine-tuning) goes through tf
    w = (np.transpose if isinstance(w, np.ndarray) else tf.transpose)(w, (1, 2, 3, 0))
    if weights is not None:
        w = weights(w)
    y = tf.nn.conv2d(x, w, strides=(1, o["stride_h"], o["stride_w"], 1), padding=o["padding"],
                     dilations=(o["dilation_h_factor"], o["dilation_w_factor"]))
    return _act(op, y + b if b is not None else y)


def _depthwise(op: Op, x, w, b, weights=None):
    o = op.options
    if weights is not None:  # on (1, kh, kw, C): channels last
        w = weights(w)
    _, kh, kw, out_c = w.shape
    mult = o.get("depth_multiplier", 1) or 1
    filt = (np.reshape if isinstance(w, np.ndarray) else tf.reshape)(
        w, (kh, kw, out_c // mult, mult))
    y = tf.nn.depthwise_conv2d(x, filt, strides=(1, o["stride_h"], o["stride_w"], 1),
                               padding=o["padding"],
                               dilations=(o["dilation_h_factor"], o["dilation_w_factor"]))
    return _act(op, y + b if b is not None else y)


def _max_pool(op: Op, x):
    o = op.options
    y = tf.nn.max_pool2d(x, (o["filter_height"], o["filter_width"]),
                         (o["stride_h"], o["stride_w"]), o["padding"])
    return _act(op, y)


def _resize(op: Op, x, size, graph: Graph):
    # keep the original up-sampling factor so a resized input still lines up with the skip path
    in_h, in_w = graph.shapes[op.inputs[0]][1:3]
    fh, fw = size[0] / in_h, size[1] / in_w
    h, w = x.shape[1], x.shape[2]
    return tf.compat.v1.image.resize_bilinear(
        x, (round(h * fh), round(w * fw)), align_corners=op.options.get("align_corners", False),
        half_pixel_centers=op.options.get("half_pixel_centers", False))


def _resize_nearest(op: Op, x, size, graph: Graph):
    # the same whole-number factor at any input size (YuNet's 2x top-down path)
    in_h, in_w = graph.shapes[op.inputs[0]][1:3]
    fh, fw = size[0] // in_h, size[1] // in_w
    if (fh * in_h, fw * in_w) != tuple(size) or op.options.get("align_corners") \
            or op.options.get("half_pixel_centers"):
        raise NotImplementedError("only whole-number nearest up-sampling is supported")
    return tf.raw_ops.ResizeNearestNeighbor(images=x, size=(x.shape[1] * fh, x.shape[2] * fw),
                                            align_corners=False, half_pixel_centers=False)


def _reshape(op: Op, x, shape_const, graph: Graph):
    new_shape = op.options.get("new_shape") or (shape_const.tolist() if shape_const is not None
                                                else list(graph.shapes[op.outputs[0]]))
    new_shape = list(new_shape)
    if new_shape.count(-1) == 0 and len(new_shape) == 3:
        new_shape[1] = -1  # the anchor count follows the input size
    return tf.reshape(x, new_shape)


def _apply(op: Op, args: list, graph: Graph, weights=None):
    """One op on its input values (tf tensors or numpy constants).

    ``weights``, when given, transforms every conv kernel (channels on the last axis) before
    use: the fake quantisation of ``finetune``.
    """
    n = op.name
    if n == "CONV_2D":
        return _conv(op, args[0], args[1], args[2] if len(args) > 2 else None, weights)
    if n == "DEPTHWISE_CONV_2D":
        return _depthwise(op, args[0], args[1], args[2] if len(args) > 2 else None, weights)
    if n == "ADD":
        return _act(op, args[0] + args[1])
    if n == "RELU":
        return tf.nn.relu(args[0])
    if n == "RELU6":
        return tf.nn.relu6(args[0])
    if n == "PAD":
        return tf.pad(args[0], np.asarray(args[1], np.int32))
    if n == "MAX_POOL_2D":
        return _max_pool(op, args[0])
    if n == "RESIZE_BILINEAR":
        return _resize(op, args[0], np.asarray(args[1]).tolist(), graph)
    if n == "RESIZE_NEAREST_NEIGHBOR":
        return _resize_nearest(op, args[0], np.asarray(args[1]).tolist(), graph)
    if n == "RESHAPE":
        return _reshape(op, args[0], args[1] if len(args) > 1 else None, graph)
    if n == "CONCATENATION":
        return _act(op, tf.concat(args, axis=op.options["axis"]))
    raise NotImplementedError(f"TFLite op {n} is not supported by the rebuild")


def run_graph(graph: Graph, x, keep=None):
    """Evaluate the graph on input ``x``.

    Returns:
        the outputs in the model's output order; or, when ``keep`` names tensor indices, a dict
        of those intermediate values.
    """
    values = {graph.inputs[0]: x}
    for op in graph.ops:
        args = [values[i] if i in values else graph.constants.get(i) for i in op.inputs if i >= 0]
        values[op.outputs[0]] = _apply(op, args, graph)
    if keep is not None:
        return {i: values[i] for i in keep}
    return [values[i] for i in graph.outputs]


def input_shape(graph: Graph, height: int | None = None, width: int | None = None) -> tuple:
    """The (1, H, W, C) input shape, with H and W optionally replaced."""
    _, h, w, c = graph.shapes[graph.inputs[0]]
    return (1, height or h, width or w, c)


def as_function(graph: Graph, height: int | None = None, width: int | None = None):
    """A concrete ``tf.function`` computing the graph for a fixed (1, H, W, C) float input.

    The outputs are named ``regressors`` and ``classificators`` when the model has exactly
    those two BlazeFace heads (16 and 1 values per anchor), by their tensor names when those are
    YuNet's head names (``cls_8`` ...), otherwise ``output_<i>``.
    """
    shape = input_shape(graph, height, width)
    last = [graph.shapes[i][-1] for i in graph.outputs]
    own = [graph.names[i] for i in graph.outputs]
    if sorted(last) == [1, 16]:
        names = ["regressors" if d == 16 else "classificators" for d in last]
    elif all(n.split("_")[0] in ("cls", "obj", "bbox", "kps") for n in own) \
            and len(set(own)) == len(own):
        names = own
    else:
        names = [f"output_{i}" for i in range(len(last))]

    @tf.function(input_signature=[tf.TensorSpec(shape, tf.float32, name="input")])
    def model(x):
        outs = run_graph(graph, x)
        return {name: tf.identity(o, name=name) for name, o in zip(names, outs, strict=True)}

    return model.get_concrete_function()
