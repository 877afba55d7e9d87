"""Reading a float ``.tflite`` flatbuffer into plain Python: tensors, constants and ops.

TensorFlow's converter cannot take a ``.tflite`` as input, so to re-quantise MediaPipe's float
models we first read them here, then rebuild them as a TensorFlow function (``tf_rebuild``).
fp16 weights behind DEQUANTIZE ops are folded into float32 constants.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ai_edge_litert import schema_py_generated as fb

_DTYPES = {fb.TensorType.FLOAT32: np.float32, fb.TensorType.FLOAT16: np.float16,
           fb.TensorType.INT32: np.int32, fb.TensorType.INT64: np.int64,
           fb.TensorType.INT8: np.int8, fb.TensorType.UINT8: np.uint8}
_OP_NAMES = {v: k for k, v in vars(fb.BuiltinOperator).items() if not k.startswith("_")}
_ACTIVATIONS = {v: k for k, v in vars(fb.ActivationFunctionType).items() if not k.startswith("_")}


@dataclass
class Op:
    """One operator: its builtin name, input/output tensor indices and decoded options."""

    name: str
    inputs: list[int]
    outputs: list[int]
    options: dict = field(default_factory=dict)


@dataclass
class Graph:
    """A single-subgraph model: tensor shapes/names, constant values, ops in execution order."""

    names: list[str]
    shapes: list[tuple[int, ...]]
    constants: dict[int, np.ndarray]
    ops: list[Op]
    inputs: list[int]
    outputs: list[int]

    def op_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for op in self.ops:
            counts[op.name] = counts.get(op.name, 0) + 1
        return counts


def _options(op_t) -> dict:
    """Builtin options as a dict of snake_case names, activation functions as their names."""
    opts = op_t.builtinOptions
    if opts is None:
        return {}
    out = {}
    for key, value in vars(opts).items():
        snake = "".join("_" + c.lower() if c.isupper() else c for c in key)
        if snake == "fused_activation_function":
            value = _ACTIVATIONS.get(value, str(value))
        elif snake == "padding":
            value = "SAME" if value == fb.Padding.SAME else "VALID"
        out[snake] = value.tolist() if isinstance(value, np.ndarray) else value
    return out


def _op_name(model, op_t) -> str:
    code = model.operatorCodes[op_t.opcodeIndex]
    builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
    return _OP_NAMES.get(builtin, f"CUSTOM:{code.customCode!r}")


def _buffer(model, tensor) -> np.ndarray | None:
    data = model.buffers[tensor.buffer].data
    if data is None or len(data) == 0:
        return None
    dtype = _DTYPES.get(tensor.type)
    if dtype is None:
        raise ValueError(f"unsupported constant type {tensor.type} for {tensor.name!r}")
    arr = np.frombuffer(bytes(bytearray(data)), dtype=dtype)
    return arr.reshape(tuple(tensor.shape)) if tensor.shape is not None else arr


def read_graph(path: str | Path) -> Graph:
    """Parse a ``.tflite`` file; fold DEQUANTIZE of constant fp16 weights into float32 constants."""
    model = fb.ModelT.InitFromPackedBuf(Path(path).read_bytes(), 0)
    if len(model.subgraphs) != 1:
        raise ValueError(f"{path}: expected 1 subgraph, found {len(model.subgraphs)}")
    sg = model.subgraphs[0]
    names = [t.name.decode() if isinstance(t.name, bytes) else str(t.name) for t in sg.tensors]
    shapes = [tuple(int(d) for d in (t.shape if t.shape is not None else ())) for t in sg.tensors]
    constants = {}
    for i, t in enumerate(sg.tensors):
        arr = _buffer(model, t)
        if arr is not None:
            constants[i] = arr
    ops = []
    for op_t in sg.operators:
        op = Op(_op_name(model, op_t), [int(i) for i in op_t.inputs],
                [int(i) for i in op_t.outputs], _options(op_t))
        if op.name == "DEQUANTIZE" and op.inputs[0] in constants:
            constants[op.outputs[0]] = constants[op.inputs[0]].astype(np.float32)
            continue
        ops.append(op)
    return Graph(names, shapes, constants, ops, [int(i) for i in sg.inputs],
                 [int(i) for i in sg.outputs])
