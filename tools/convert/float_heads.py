"""The detector's two output convolutions computed off the int8 grid, exactly, on every CPU.

In a full-integer BlazeFace the last 1x1 convolutions (48 channels -> 16 regressor values, and
-> 1 score logit per anchor) round their results onto an int8 grid. The regressor shares one
grid for box offsets, box sizes and keypoints, so its step is large: 1.17 input pixels in the
320x192 model, 1.6-2.3 pixels of a 640x360 frame. Keypoints on that grid are 40 % further from
the float model's than they need to be, and where two int8 kernel sets (XNNPACK, TFLite's own)
round the layers before differently, an eye keypoint jumps by a whole step, the aligned face
changes its scale by several per cent and the attribute model's answer swings with it.

``float_heads`` rewrites the flatbuffer so that the head convolutions keep their int8 weights
and int32 biases but add up in float32 and scale once at the end:

    CAST (int8 feature map q -> float32, exact)
    CONV_2D with weights w_q and bias b_q - zero_point * sum(w_q), as float32 integers
    MUL by in_scale * w_scale per output channel (float32; one rounding)

Every product and partial sum is an integer below 2**24 in magnitude (checked here), so float32
represents it exactly: the sum is the same whatever order or fused multiply-add a CPU's kernel
uses, and XNNPACK on x86 and on ARM gives the same bits, as it does for int8. The result is the
int8 convolution's own accumulator times its scale, without the output rounding: float32
outputs, no grid. It costs a cast of the 80 x 48 x 48 feature map and ~3 M float multiply-adds
per 320x192 frame, and about 4 kB of file size.

``python -m tools.convert float-heads --in INT8 --out OUT`` applies it to an existing int8 file
(``tools.convert detector`` does it by default, ``--heads int8`` to skip); with ``--float
FLOAT --eval PATH...`` it also measures both files' agreement with the float model the way
``tools.convert detector --eval`` does, and how far their eye keypoints are from the float
model's.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def _model(tflite: bytes):
    from ai_edge_litert import schema_py_generated as fb

    return fb, fb.ModelT.InitFromPackedBuf(bytes(tflite), 0)


def _pack(model) -> bytes:
    import flatbuffers

    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _opcode(fb, model, code: int, version: int) -> int:
    """Index of the operator code ``code`` in the model, added when missing."""
    for i, oc in enumerate(model.operatorCodes):
        if max(oc.builtinCode, oc.deprecatedBuiltinCode) == code:
            return i
    oc = fb.OperatorCodeT()
    oc.builtinCode, oc.deprecatedBuiltinCode, oc.version = code, min(code, 127), version
    model.operatorCodes.append(oc)
    return len(model.operatorCodes) - 1


def head_path(model, fb) -> tuple[list[int], list[int]]:
    """The output convolutions and what lies between them and the graph outputs.

    Returns:
        (operator indices of the CONV_2Ds or DEPTHWISE_CONV_2Ds whose results reach an output,
        tensor indices from those convolutions' outputs to the graph outputs through RESHAPE and
        CONCATENATION ops).
    Raises:
        ValueError: an output is made by anything else.
    """
    graph = model.subgraphs[0]
    producer = {int(op.outputs[0]): i for i, op in enumerate(graph.operators)}
    code = [max(oc.builtinCode, oc.deprecatedBuiltinCode) for oc in model.operatorCodes]
    # RESHAPE and CONCATENATION pass every input on; MUL (a converted file's scale) its first
    passing = (fb.BuiltinOperator.RESHAPE, fb.BuiltinOperator.CONCATENATION,
               fb.BuiltinOperator.MUL)
    convs, tensors, stack = [], [], [int(t) for t in graph.outputs]
    while stack:
        t = stack.pop()
        i = producer.get(t)
        if i is None:
            raise ValueError(f"tensor {t} on the way to an output is not computed by an op")
        tensors.append(t)
        op = graph.operators[i]
        if code[op.opcodeIndex] in (fb.BuiltinOperator.CONV_2D,
                                    fb.BuiltinOperator.DEPTHWISE_CONV_2D):
            convs.append(i)
        elif code[op.opcodeIndex] in passing:
            n = len(op.inputs) if code[op.opcodeIndex] == fb.BuiltinOperator.CONCATENATION else 1
            stack += [int(x) for x in op.inputs[:n]]
        else:
            raise ValueError(f"an output is made by operator code {code[op.opcodeIndex]}, "
                             "not by CONV_2D, DEPTHWISE_CONV_2D, RESHAPE or CONCATENATION")
    return sorted(set(convs)), sorted(set(tensors))


def _float_tensor(tensor, fb) -> None:
    tensor.type = fb.TensorType.FLOAT32
    tensor.quantization = None


EXACT = 2**24  # float32 represents every integer below this exactly


def _const(model, fb, graph, values: np.ndarray, name: bytes) -> int:
    """A new float32 constant tensor; returns its index."""
    buf = fb.BufferT()
    buf.data = np.frombuffer(np.ascontiguousarray(values, np.float32).tobytes(), np.uint8)
    model.buffers.append(buf)
    t = fb.TensorT()
    t.shape = np.array(values.shape, np.int32)
    t.type = fb.TensorType.FLOAT32
    t.buffer = len(model.buffers) - 1
    t.name = name
    graph.tensors.append(t)
    return len(graph.tensors) - 1


def _is_pointwise(model, op) -> bool:
    """Whether a CONV_2D / DEPTHWISE_CONV_2D has a 1x1 kernel (no padding can reach it)."""
    w_t = model.subgraphs[0].tensors[int(op.inputs[1])]
    return tuple(int(d) for d in w_t.shape[1:3]) == (1, 1)


def _exact_conv(model, fb, op, zero: int, in_scale: float, centred: bool = False) -> np.ndarray:
    """Rewrite an int8 CONV_2D's or DEPTHWISE_CONV_2D's weights and bias as float32 integers
    (in place); returns the per-output-channel scale that turns its sums into the int8
    convolution's real values.

    ``centred``: the convolution will read ``q - zero`` (its padding then adds real zeros, as
    in the int8 model); otherwise it reads ``q`` and the zero point goes into the bias, which is
    only right for a 1x1 kernel."""
    graph = model.subgraphs[0]
    w_t, b_t = graph.tensors[int(op.inputs[1])], graph.tensors[int(op.inputs[2])]
    wq = np.frombuffer(bytes(model.buffers[w_t.buffer].data), np.int8).reshape(w_t.shape)
    code = model.operatorCodes[op.opcodeIndex]
    depthwise = max(code.builtinCode, code.deprecatedBuiltinCode) == \
        fb.BuiltinOperator.DEPTHWISE_CONV_2D
    # one row of weights per output channel: OHWI for a conv, 1HWC (channel last) for depthwise
    w = (wq.reshape(-1, wq.shape[-1]).T if depthwise else wq.reshape(len(wq), -1)).astype(np.int64)
    w_scale = np.asarray(w_t.quantization.scale, np.float64)
    if len(w_scale) == 1:
        w_scale = np.full(len(w), w_scale[0])
    if np.any(np.asarray(w_t.quantization.zeroPoint) != 0):
        raise ValueError("asymmetric convolution weights are not supported")
    bias = np.frombuffer(bytes(model.buffers[b_t.buffer].data), np.int32).astype(np.int64)
    if centred:  # inputs q - zero lie in 0..255 (and -255..255 at worst)
        largest = np.abs(bias) + 255 * np.abs(w).sum(axis=1)
    else:
        # sum((q - zero) * w) + b == sum(q * w) + (b - zero * sum(w)): the zero point goes into
        # the bias
        bias = bias - zero * w.sum(axis=1)
        largest = np.abs(bias) + 128 * np.abs(w).sum(axis=1)
    if largest.max() >= EXACT:
        raise ValueError(f"a head convolution's sums reach {largest.max()}, beyond float32's "
                         "exact integers")
    model.buffers[w_t.buffer].data = np.frombuffer(wq.astype(np.float32).tobytes(), np.uint8)
    model.buffers[b_t.buffer].data = np.frombuffer(bias.astype(np.float32).tobytes(), np.uint8)
    _float_tensor(w_t, fb)
    _float_tensor(b_t, fb)
    return (in_scale * w_scale).astype(np.float32)


def float_heads(tflite: bytes) -> bytes:
    """The int8 detector with its output convolutions exact in float32 (module docstring).

    Every int8 feature map the output convolutions read gets one CAST; each convolution is
    followed by a MUL with its scale; the RESHAPE / CONCATENATION ops after them work in
    float32. Already converted files are returned unchanged.

    Raises:
        ValueError: the outputs are not made that way, a convolution is not int8, or its sums
            would not be exact in float32.
    """
    fb, model = _model(tflite)
    graph = model.subgraphs[0]
    convs, path = head_path(model, fb)
    sources = sorted({int(graph.operators[i].inputs[0]) for i in convs})
    kinds = {graph.tensors[t].type for t in sources}
    if kinds == {fb.TensorType.FLOAT32}:
        return bytes(tflite)
    if kinds != {fb.TensorType.INT8} or any(graph.tensors[t].quantization is None
                                            for t in sources):
        raise ValueError("the output convolutions' inputs are not int8 tensors")
    code = [max(oc.builtinCode, oc.deprecatedBuiltinCode) for oc in model.operatorCodes]
    if any(code[op.opcodeIndex] == fb.BuiltinOperator.MUL for op in graph.operators
           if int(op.outputs[0]) in path):
        raise ValueError("an int8 MUL between the output convolutions and the outputs")
    cast = _opcode(fb, model, fb.BuiltinOperator.CAST, 1)
    mul = _opcode(fb, model, fb.BuiltinOperator.MUL, 1)
    inserts = []  # (position, operator): CASTs before the first conv reading them, MULs after
    for src in sources:
        feature = graph.tensors[src]
        copy = fb.TensorT()
        copy.shape = np.array(feature.shape, np.int32)
        copy.type = fb.TensorType.FLOAT32
        copy.name = (feature.name or b"") + b"_float"
        copy.buffer = 0  # the empty buffer: a computed tensor
        graph.tensors.append(copy)
        index = len(graph.tensors) - 1
        readers = [i for i in convs if int(graph.operators[i].inputs[0]) == src]
        zero = int(feature.quantization.zeroPoint[0])
        in_scale = float(feature.quantization.scale[0])
        # a kernel wider than 1x1 pads: it must read q - zero (real zeros in its padding)
        centred = not all(_is_pointwise(model, graph.operators[i]) for i in readers)
        cast_out = index
        if centred:
            index = _centre(model, fb, graph, index, zero, inserts, min(readers))
        for i in readers:
            op = graph.operators[i]
            scale = _exact_conv(model, fb, op, zero, in_scale, centred)
            op.inputs = np.array([index, *op.inputs[1:]], np.int32)
            out = graph.tensors[int(op.outputs[0])]
            sums = fb.TensorT()
            sums.shape = np.array(out.shape, np.int32)
            sums.type = fb.TensorType.FLOAT32
            sums.name = (out.name or b"") + b"_sums"
            sums.buffer = 0
            graph.tensors.append(sums)
            sums_index = len(graph.tensors) - 1
            m = fb.OperatorT()
            m.opcodeIndex = mul
            m.inputs = np.array([sums_index, _const(model, fb, graph, scale, b"head_scale")],
                                np.int32)
            m.outputs = np.array([int(op.outputs[0])], np.int32)
            m.builtinOptionsType = fb.BuiltinOptions.MulOptions
            m.builtinOptions = fb.MulOptionsT()
            op.outputs = np.array([sums_index], np.int32)
            inserts.append((i + 1, m))
        c = fb.OperatorT()
        c.opcodeIndex = cast
        c.inputs = np.array([src], np.int32)
        c.outputs = np.array([cast_out], np.int32)
        inserts.append((min(readers), c))
    for t in path:
        _float_tensor(graph.tensors[t], fb)
    # from the back, so earlier positions stay valid; at one place a MUL, a CAST, then the ADD
    # that centres the CAST's result
    order = {mul: 0, cast: 1}
    for position, op in sorted(inserts, key=lambda x: (x[0], order.get(x[1].opcodeIndex, 2)),
                               reverse=True):
        graph.operators.insert(position, op)
    _float_ops_last(fb, graph)
    return _pack(model)


def _centre(model, fb, graph, cast_out: int, zero: int, inserts: list, position: int) -> int:
    """An ADD of ``-zero`` to the CAST result ``cast_out`` (exact: small integers in float32),
    queued in ``inserts``; returns the tensor it writes."""
    src = graph.tensors[cast_out]
    centred = fb.TensorT()
    centred.shape = np.array(src.shape, np.int32)
    centred.type = fb.TensorType.FLOAT32
    centred.name = (src.name or b"") + b"_centred"
    centred.buffer = 0
    graph.tensors.append(centred)
    out = len(graph.tensors) - 1
    a = fb.OperatorT()
    a.opcodeIndex = _opcode(fb, model, fb.BuiltinOperator.ADD, 1)
    a.inputs = np.array([cast_out, _const(model, fb, graph, np.array([-zero], np.float32),
                                          b"minus_zero_point")], np.int32)
    a.outputs = np.array([out], np.int32)
    a.builtinOptionsType = fb.BuiltinOptions.AddOptions
    a.builtinOptions = fb.AddOptionsT()
    inserts.append((position, a))
    return out


def _float_ops_last(fb, graph) -> None:
    """Move every op that computes a float32 tensor (the CASTs and everything after them)
    behind all integer ops, each group keeping its order: the int8 body is then one piece
    before the float tail, which is what an accelerator that maps a model's leading supported
    ops (the Edge TPU compiler) can use. Integer ops never read the float tensors, so the order
    stays valid."""
    def is_float(op) -> bool:
        return graph.tensors[int(op.outputs[0])].type == fb.TensorType.FLOAT32

    graph.operators = ([op for op in graph.operators if not is_float(op)]
                       + [op for op in graph.operators if is_float(op)])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``float-heads`` subcommand's options."""
    parser.add_argument("--in", dest="source", required=True, type=Path,
                        help="int8 BlazeFace .tflite (full-integer, from tools.convert detector)")
    parser.add_argument("--out", required=True, type=Path, help=".tflite to write")
    parser.add_argument("--float", dest="float_model", type=Path,
                        help="the MediaPipe float model it was converted from (for --eval)")
    parser.add_argument("--eval", nargs="*", default=[], metavar="PATH",
                        help="footage to measure float/int8 agreement on (needs --float)")
    parser.add_argument("--video-every", type=int, default=10,
                        help="use every N-th frame of evaluation videos")
    parser.add_argument("--report", type=Path, help="write the measurements here as JSON")


def run(args: argparse.Namespace) -> int:
    """Rewrite, check that it loads, optionally measure agreement; returns the exit code."""
    from device.detector.face_detector import FaceDetector
    from device.errors import ModelError

    if args.eval and not args.float_model:
        print("--eval needs --float (the float model to compare with)")
        return 2
    data = args.source.read_bytes()
    try:
        out = float_heads(data)
    except ValueError as exc:
        print(f"{args.source}: {exc}")
        return 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(out)
    try:
        det = FaceDetector(args.out)
    except ModelError as exc:
        print(f"the rewritten model does not load as a detector: {exc}")
        return 1
    print(f"wrote {args.out} ({len(out)} bytes, from {len(data)}); outputs "
          + ", ".join(f"{s.name} {s.dtype}" for s in det.model.outputs))
    report = {"in": str(args.source), "out": str(args.out), "in_bytes": len(data),
              "out_bytes": len(out)}
    if args.eval:
        from tools.convert.detector import _agreement
        from tools.convert.tflite_graph import read_graph

        graph = read_graph(args.float_model)
        width, height = det.size
        both = _agreement(args, graph, width, height, models=[args.source, args.out])
        report["agreement_in"], report["agreement"] = both[str(args.source)], both[str(args.out)]
    if args.report:
        args.report.write_text(json.dumps(report, indent=2) + "\n")
    return 0
