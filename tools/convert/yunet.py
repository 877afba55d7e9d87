"""YuNet-n (libfacedetection) read from its ONNX export into the converter's ``Graph``.

The ONNX export (PyTorch, batch norm folded, NCHW, BGR pixels 0..255) becomes the same
plain-Python graph the BlazeFace rebuild uses (``tflite_graph.Graph``: NHWC, TFLite op names,
OHWI / 1HWC weights), so ``tf_rebuild`` runs it as a TensorFlow function and the rest of
``tools.convert`` (equalisation, activation ranges, int8 conversion) works on it unchanged:

* the first convolution's input channels are reversed, so the graph takes **RGB** pixels 0..255
  (the detector's letterbox gives RGB); PyTorch's symmetric padding of that stride-2
  convolution becomes an explicit ``PAD`` (TensorFlow's ``SAME`` would pad bottom/right only);
* the graph ends at the twelve head maps, named like the ONNX outputs (``cls_8``, ``obj_8``,
  ``bbox_8``, ``kps_8``, ... for strides 8, 16, 32), each ``1 x H/s x W/s x k`` **before** the
  sigmoid and the flattening: scores leave the model as logits and the device computes their
  probabilities (``device.detector.yunet``).

Each head is a 1x1 convolution (64 channels to k) followed by a 3x3 per-channel convolution;
``float_heads`` later makes the second one an exact float32 sum of the first one's int8 result.
``onnx_outputs`` runs the ONNX model itself (onnxruntime) for the rebuild check.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tools.convert.tflite_graph import Graph, Op

HEADS = ("cls", "obj", "bbox", "kps")
STRIDES = (8, 16, 32)
HEAD_CHANNELS = {"cls": 1, "obj": 1, "bbox": 4, "kps": 10}


def _attrs(node) -> dict:
    import onnx

    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


class _Builder:
    """Collects tensors (names, NHWC shapes, constants) and ops while the ONNX graph is read."""

    def __init__(self):
        self.names: list[str] = []
        self.shapes: list[tuple[int, ...]] = []
        self.constants: dict[int, np.ndarray] = {}
        self.ops: list[Op] = []
        self.index: dict[str, int] = {}

    def tensor(self, name: str, shape, value: np.ndarray | None = None) -> int:
        self.names.append(name)
        self.shapes.append(tuple(int(d) for d in shape))
        i = len(self.names) - 1
        if value is not None:
            self.constants[i] = value
        else:
            self.index[name] = i
        return i


def _conv(b: _Builder, node, inits: dict, x: int, first: bool) -> tuple[Op, tuple[int, ...]]:
    a = _attrs(node)
    w = inits[node.input[1]].astype(np.float32)  # O, I/group, kh, kw
    bias = inits[node.input[2]].astype(np.float32) if len(node.input) > 2 else None
    group = int(a.get("group", 1))
    sh, sw = a.get("strides", (1, 1))
    kh, kw = w.shape[2:]
    pads = list(a.get("pads", (0, 0, 0, 0)))  # top, left, bottom, right
    if a.get("dilations", (1, 1)) != [1, 1] and tuple(a.get("dilations", (1, 1))) != (1, 1):
        raise NotImplementedError("dilated convolutions are not supported")
    n, h, wd, c = b.shapes[x]
    same = (sh, sw) == (1, 1) and pads == [kh // 2, kw // 2, kh // 2, kw // 2]
    if not same and any(pads):
        pad = b.tensor(f"{node.output[0]}_pad_amounts", (4, 2), np.array(
            [[0, 0], [pads[0], pads[2]], [pads[1], pads[3]], [0, 0]], np.int32))
        h, wd = h + pads[0] + pads[2], wd + pads[1] + pads[3]
        padded = b.tensor(f"{node.output[0]}_padded", (n, h, wd, c))
        b.ops.append(Op("PAD", [x, pad], [padded]))
        x = padded
    padding = "SAME" if same else "VALID"
    oh = h if same else (h - kh) // sh + 1
    ow = wd if same else (wd - kw) // sw + 1
    options = {"stride_h": int(sh), "stride_w": int(sw), "padding": padding,
               "dilation_h_factor": 1, "dilation_w_factor": 1,
               "fused_activation_function": "NONE"}
    if first:
        w = w[:, ::-1]  # BGR -> RGB input channels
    if group == 1:
        weight = np.ascontiguousarray(np.transpose(w, (0, 2, 3, 1)))  # OHWI
        name = "CONV_2D"
    elif group == w.shape[0] == c and w.shape[1] == 1:
        weight = np.ascontiguousarray(np.transpose(w, (1, 2, 3, 0)))  # 1 kh kw C
        name = "DEPTHWISE_CONV_2D"
        options["depth_multiplier"] = 1
    else:
        raise NotImplementedError(f"grouped convolution with group {group}")
    wi = b.tensor(f"{node.output[0]}_weights", weight.shape, weight)
    inputs = [x, wi]
    if bias is not None:
        inputs.append(b.tensor(f"{node.output[0]}_bias", bias.shape, bias))
    return Op(name, inputs, [], options), (n, oh, ow, int(w.shape[0]))


def read_onnx(path: str | Path, height: int | None = None, width: int | None = None) -> Graph:
    """The YuNet ONNX export as a ``Graph`` taking 1 x H x W x 3 RGB pixels (0..255, float).

    Args:
        path: a YuNet ``.onnx`` (fixed or dynamic input size).
        height, width: the graph's input size (multiples of 32); default the export's own.
    Raises:
        NotImplementedError: an op this reader does not know.
        ValueError: the outputs are not YuNet's twelve head maps.
    """
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    g = model.graph
    inits = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    dims = [d.dim_value for d in g.input[0].type.tensor_type.shape.dim]
    height, width = height or dims[2] or 320, width or dims[3] or 320
    if height % 32 or width % 32:
        raise ValueError(f"YuNet needs an input whose sides are multiples of 32, "
                         f"not {width}x{height}")
    b = _Builder()
    x0 = b.tensor("input", (1, height, width, 3))
    producer_of_output: dict[str, str] = {}
    first = True
    for node in g.node:
        op_type = node.op_type
        if op_type in ("Transpose", "Reshape", "Sigmoid"):
            producer_of_output[node.output[0]] = node.input[0]
            continue
        if op_type in ("Shape", "Gather", "Unsqueeze", "Concat", "Constant"):
            continue  # the dynamic export's shape arithmetic for its reshapes
        x = b.index[node.input[0]]
        if op_type == "Conv":
            op, shape = _conv(b, node, inits, x, first)
            first = False
            out = b.tensor(node.output[0], shape)
            op.outputs = [out]
            b.ops.append(op)
        elif op_type == "Relu":
            prev = b.ops[-1]
            if prev.outputs[0] != x or prev.name not in ("CONV_2D", "DEPTHWISE_CONV_2D"):
                raise NotImplementedError("a ReLU that does not follow its convolution")
            prev.options["fused_activation_function"] = "RELU"
            b.index[node.output[0]] = x
        elif op_type == "MaxPool":
            a = _attrs(node)
            if any(a.get("pads", (0,))) or a.get("ceil_mode", 0):
                raise NotImplementedError("padded or ceil-mode max-pooling")
            kh, kw = a["kernel_shape"]
            sh, sw = a["strides"]
            n, h, w, c = b.shapes[x]
            out = b.tensor(node.output[0], (n, (h - kh) // sh + 1, (w - kw) // sw + 1, c))
            b.ops.append(Op("MAX_POOL_2D", [x], [out], {
                "filter_height": kh, "filter_width": kw, "stride_h": sh, "stride_w": sw,
                "padding": "VALID", "fused_activation_function": "NONE"}))
        elif op_type == "Resize":
            a = _attrs(node)
            if (a.get("mode") != b"nearest"
                    or a.get("coordinate_transformation_mode") != b"asymmetric"):
                raise NotImplementedError(f"Resize {a}")
            scales = next(inits[i] for i in node.input[1:] if i in inits and inits[i].size == 4)
            n, h, w, c = b.shapes[x]
            size = (int(h * scales[2]), int(w * scales[3]))
            st = b.tensor(f"{node.output[0]}_size", (2,), np.array(size, np.int32))
            out = b.tensor(node.output[0], (n, *size, c))
            b.ops.append(Op("RESIZE_NEAREST_NEIGHBOR", [x, st], [out],
                            {"align_corners": False, "half_pixel_centers": False}))
        elif op_type == "Add":
            y = b.index[node.input[1]]
            if b.shapes[x] != b.shapes[y]:
                raise ValueError(f"Add of {b.shapes[x]} and {b.shapes[y]}")
            out = b.tensor(node.output[0], b.shapes[x])
            b.ops.append(Op("ADD", [x, y], [out], {"fused_activation_function": "NONE"}))
        else:
            raise NotImplementedError(f"ONNX op {op_type} is not supported by the YuNet reader")
    outputs = []
    for o in g.output:
        src = o.name
        while src in producer_of_output:
            src = producer_of_output[src]
        t = b.index[src]
        b.names[t] = o.name  # the head map carries the ONNX output's name
        outputs.append(t)
    want = [f"{h}_{s}" for h in HEADS for s in STRIDES]
    if sorted(b.names[t] for t in outputs) != sorted(want):
        raise ValueError(f"not YuNet's outputs: {[b.names[t] for t in outputs]}")
    order = {name: k for k, name in enumerate(want)}
    outputs.sort(key=lambda t: order[b.names[t]])
    return Graph(b.names, b.shapes, b.constants, b.ops, [x0], outputs)


def head_maps(values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """ONNX-style outputs (``1 x N x k``, scores after the sigmoid) from head maps
    (``1 x H x W x k`` logits), for comparing a rebuild with the ONNX model."""
    out = {}
    for name, v in values.items():
        v = np.asarray(v, np.float64)
        flat = v.reshape(1, -1, v.shape[-1])
        out[name] = 1.0 / (1.0 + np.exp(-flat)) if name.split("_")[0] in ("cls", "obj") else flat
    return out


def onnx_outputs(path: str | Path, rgb: np.ndarray) -> dict[str, np.ndarray]:
    """The ONNX model's own outputs (onnxruntime, CPU) for one H x W x 3 uint8 RGB input."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    bgr_nchw = np.ascontiguousarray(rgb[..., ::-1].transpose(2, 0, 1)[None], np.float32)
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, {session.get_inputs()[0].name: bgr_nchw}),
                    strict=True))


def name_outputs(tflite: bytes, names: list[str]) -> bytes:
    """The flatbuffer with its output tensors named after the converted function's outputs.

    TensorFlow's converter names the outputs of a function returning a dict ``Identity``,
    ``Identity_1``, ... in the order of the dict's sorted keys, and keeps no signature, so the
    detector could not find its heads; this writes each key onto its tensor.
    """
    import re

    from tools.convert.float_heads import _model, _pack

    fb, model = _model(tflite)
    graph = model.subgraphs[0]
    ordered = sorted(names)
    for t in graph.outputs:
        tensor = graph.tensors[int(t)]
        name = tensor.name.decode() if isinstance(tensor.name, bytes) else str(tensor.name)
        if name in ordered:
            continue
        m = re.fullmatch(r"(?:.*/)?Identity(?:_(\d+))?(?::0)?", name)
        if m is None:
            raise ValueError(f"cannot tell which output tensor {name!r} is")
        tensor.name = ordered[int(m.group(1) or 0)].encode()
    return _pack(model)


def float_tflite(graph: Graph, height: int, width: int) -> bytes:
    """The float graph as a ``.tflite`` at ``width`` x ``height``, outputs named by head."""
    import tensorflow as tf

    from tools.convert.tf_rebuild import as_function

    fn = as_function(graph, height, width)
    flat = tf.lite.TFLiteConverter.from_concrete_functions([fn]).convert()
    return name_outputs(flat, [graph.names[i] for i in graph.outputs])


def is_yunet(graph: Graph) -> bool:
    """Whether ``graph``'s outputs are YuNet's twelve head maps."""
    return sorted(graph.names[i] for i in graph.outputs) == sorted(
        f"{h}_{s}" for h in HEADS for s in STRIDES)
