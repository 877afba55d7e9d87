"""Full-integer int8 post-training quantisation of a rebuilt graph; the rebuild's fidelity check."""

from __future__ import annotations

import logging

import numpy as np

from tools.convert.tf_rebuild import as_function
from tools.convert.tflite_graph import Graph

log = logging.getLogger(__name__)


def rebuild_error(graph: Graph, model_path, samples: list[np.ndarray]) -> float:
    """Largest absolute difference between the rebuilt TF graph and the original ``.tflite``.

    Args:
        graph: the graph read from ``model_path``.
        samples: float inputs shaped like the model's input.
    """
    from device.runtime import TFLiteModel

    fn = as_function(graph)
    ref = TFLiteModel(model_path, threads=1)
    worst = 0.0
    for x in samples:
        want = ref.run(x)
        got = fn(x)
        for w in want:  # outputs paired by their shape (names differ)
            g = next(v.numpy() for v in got.values() if tuple(v.shape) == w.shape)
            worst = max(worst, float(np.max(np.abs(g - w))))
    return worst


RANGES = ("minmax", "mse")


def to_int8(graph: Graph, samples: list[np.ndarray], height: int | None = None,
            width: int | None = None, input_type: str = "int8", ranges: str = "minmax",
            learnt: dict[int, tuple[float, float]] | None = None,
            input_range: tuple[float, float] | None = None) -> bytes:
    """Quantise ``graph`` to a full-integer TFLite model.

    Args:
        graph: the float graph.
        samples: calibration inputs, each 1 x H x W x 3 float32 in [-1, 1], pre-processed exactly
            as the detector does.
        height, width: input size if not the graph's own (wide variants).
        input_type: "int8" or "uint8" for the input tensor; outputs are int8 (the runtime
            dequantises every tensor with its own scale and zero point).
        ranges: activation ranges: "minmax" (TFLite's calibrator) or "mse" (per tensor, the
            range minimising its quantisation error over the samples; ``tools.convert.ranges``).
        learnt: with "mse": ranges learnt by quantisation-aware fine-tuning, keyed by the
            graph's tensor indices (``tools.convert.finetune``); they replace the MSE range of
            the activation they match.
        input_range: with "mse": the input tensor's (min, max) instead of the calibrated one
            (YuNet's pixel values: (0, 255) gives scale 1, zero point -128, every pixel exact).
    Returns:
        the ``.tflite`` flatbuffer.
    """
    if ranges not in RANGES:
        raise ValueError(f"ranges must be one of {RANGES}, got {ranges!r}")
    if ranges == "minmax":
        return _tflite_int8(graph, samples, height, width, input_type)
    from tools.convert import ranges as rg

    fn = as_function(graph, height, width)
    # TFLite's calibrator only provides the calibrated flatbuffer; our statistics replace its
    # min/max on every tensor, so two frames are enough for it
    calibrated = rg.calibrated_model(fn, samples[:2], input_type)
    chosen = rg.mse_ranges(calibrated, samples)
    if learnt:
        from tools.convert.finetune import map_to_calibrated

        fixed = rg.fixed_tensors(calibrated)
        mapping = map_to_calibrated(graph, calibrated, learnt, samples[0])
        used = {i: learnt[t] for t, i in mapping.items() if i in chosen and i not in fixed}
        log.info("learnt ranges for %d of %d activations", len(used), len(learnt))
        chosen.update(used)
    if input_range is not None:
        chosen[rg.input_tensor(calibrated)] = tuple(float(v) for v in input_range)
    return rg.quantise_calibrated(rg.with_ranges(calibrated, chosen), input_type)


def _tflite_int8(graph: Graph, samples, height, width, input_type: str) -> bytes:
    """TFLite's own post-training quantisation (calibrated min/max ranges)."""
    import tensorflow as tf

    fn = as_function(graph, height, width)

    def representative():
        for x in samples:
            yield [np.asarray(x, np.float32)]

    conv = tf.lite.TFLiteConverter.from_concrete_functions([fn])
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = representative
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = {"int8": tf.int8, "uint8": tf.uint8}[input_type]
    conv.inference_output_type = tf.int8
    return conv.convert()


def score_head_convs(graph: Graph) -> list:
    """The CONV_2D ops whose outputs become the score output (through reshapes / concatenation)."""
    producer = {op.outputs[0]: op for op in graph.ops}
    score_out = [i for i in graph.outputs if graph.shapes[i][-1] == 1]
    stack, convs = list(score_out), []
    while stack:
        op = producer.get(stack.pop())
        if op is None:
            continue
        if op.name == "CONV_2D":
            convs.append(op)
        elif op.name in ("RESHAPE", "CONCATENATION"):
            stack += [i for i in op.inputs if i not in graph.constants]
    return convs


def score_offset(graph: Graph, int8_model: bytes, samples: list[np.ndarray],
                 height: int, width: int, band=(-2.0, 4.0)) -> float:
    """Mean (int8 - float) score logit over anchors whose float logit lies in ``band``.

    Quantisation error is not zero-mean: the int8 model's logits sit a little lower, so faces near
    the threshold drop out more often than they appear. This measures that shift on the anchors
    that matter for thresholding (logit -2 .. 4, scores 0.12 .. 0.98).
    """
    import os
    import tempfile

    from device.runtime import TFLiteModel

    fn = as_function(graph, height, width)
    fd, path = tempfile.mkstemp(suffix=".tflite")
    try:
        os.write(fd, int8_model)
        os.close(fd)
        model = TFLiteModel(path, threads=1)
        diffs = []
        for x in samples:
            want = next(v.numpy() for v in fn(x).values() if v.shape[-1] == 1).ravel()
            got = next(o for o in model.run(x) if o.shape[-1] == 1).ravel()
            sel = (want > band[0]) & (want < band[1])
            diffs.append(got[sel] - want[sel])
    finally:
        os.unlink(path)
    d = np.concatenate(diffs) if diffs else np.zeros(0)
    return float(d.mean()) if d.size else 0.0


def shift_scores(graph: Graph, offset: float) -> None:
    """Add ``offset`` to the score head's bias, in place (bias correction before re-quantising)."""
    for op in score_head_convs(graph):
        b = op.inputs[2]
        graph.constants[b] = graph.constants[b].astype(np.float32) + np.float32(offset)
