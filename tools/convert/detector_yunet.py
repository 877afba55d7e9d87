"""``kiosk-convert detector`` for YuNet: the ONNX export -> full-integer int8 with exact heads.

Steps (``convert``), each checked:

1. ``yunet.read_onnx``: the ONNX graph as the converter's ``Graph`` (RGB pixels 0..255 in, the
   twelve head maps out as logits), compared with the ONNX model itself run by onnxruntime on
   real face frames (``rebuild_error``) before anything is quantised.
2. ``quantize.to_int8`` with per-tensor MSE activation ranges, calibrated on face frames, the
   input range fixed at 0..255 (scale 1: every pixel value exact), activation channels
   equalised first.
3. ``yunet.name_outputs`` and ``float_heads.float_heads``: each head's last layer (a 3x3
   per-channel convolution of its 1x1 convolution's int8 result, which has its own scale) is
   one exact float32 sum, scaled once, so the twelve outputs are off the int8 grid and the same
   bits on every CPU.
4. ``compact.compact``: inner tensor names blanked and the zero-point vectors shared (the same
   model in about three quarters of the bytes).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from device.detector.letterbox import letterbox_image


def calibration_samples(images: list[np.ndarray], width: int, height: int) -> list[np.ndarray]:
    """Each BGR image as the detector feeds YuNet: letterboxed RGB pixel values, float32,
    1 x height x width x 3."""
    return [letterbox_image(img, width, height)[0][None].astype(np.float32) for img in images]


def onnx_size(path: Path) -> tuple[int, int] | None:
    """The ONNX export's fixed (width, height), or None for a dynamic one."""
    import onnx

    dims = onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim
    w, h = dims[3].dim_value, dims[2].dim_value
    return (int(w), int(h)) if w and h else None


def rebuild_error(graph, onnx_path: Path, images: list[np.ndarray], width: int,
                  height: int) -> float:
    """Largest absolute difference between the rebuilt graph and the ONNX model (onnxruntime)
    over ``images``, on the ONNX outputs as they are (scores after the sigmoid, boxes and
    landmarks in strides), at the export's own input size (``width`` x ``height`` for a
    dynamic export)."""
    from tools.convert.tf_rebuild import as_function
    from tools.convert.yunet import head_maps, onnx_outputs

    w, h = onnx_size(onnx_path) or (width, height)
    fn = as_function(graph, h, w)
    worst = 0.0
    for img in images:
        rgb = letterbox_image(img, w, h)[0]
        got = head_maps({k: v.numpy() for k, v in fn(rgb[None].astype(np.float32)).items()})
        want = onnx_outputs(onnx_path, rgb)
        for name, value in want.items():
            worst = max(worst, float(np.max(np.abs(got[name] - value))))
    return worst


def convert(graph, samples: list[np.ndarray], width: int, height: int,
            equalise: bool = True) -> tuple[bytes, dict]:
    """The int8 flatbuffer of ``graph`` at ``width`` x ``height`` and what was done.

    Args:
        graph: ``yunet.read_onnx``'s graph.
        samples: calibration inputs (``calibration_samples``).
        equalise: equalise activation channels first (``tools.convert.equalise``).
    """
    from tools.convert.compact import compact
    from tools.convert.equalise import equalise as equalise_graph
    from tools.convert.float_heads import float_heads
    from tools.convert.quantize import to_int8
    from tools.convert.yunet import name_outputs

    g, equalised = graph, 0
    if equalise:  # channel ranges from every 8th calibration frame
        g, equalised = equalise_graph(graph, samples[::8], height, width, general=True)
    model = to_int8(g, samples, height, width, "int8", "mse", input_range=(0.0, 255.0))
    model = compact(float_heads(name_outputs(model, [graph.names[i] for i in graph.outputs])))
    return model, {"equalised_tensors": equalised, "input_range": [0, 255]}
