"""What a Coral Edge TPU would run of an int8 ``.tflite``, read from the file (no compiler needed).

    python -m tools.edgetpu_check MODEL.tflite [...] [--json OUT] [--strict]

Coral's model requirements (coral.ai/docs/edgetpu/models-intro, "Model requirements" and
"Supported operations", compiler 16) checked op by op on the flatbuffer:

* every op is in the Edge TPU's list (``SUPPORTED``), within the limits that can be read from
  the file (no fused activation on pooling and concatenation, padding and reductions along x/y
  only, resizes of 3-dimensional tensors);
* its tensors are 8-bit integers (int8 or uint8; int32 only for the constant biases);
* their sizes are fixed (no dynamic dimension in the shape signature), and only the three
  innermost dimensions may be larger than 1 (so no batch larger than 1);
* no DEQUANTIZE inside the graph (one at the end, giving a float output, is left to the CPU).

The compiler maps the graph once: from the first op it cannot map to the end, everything runs
on the CPU, even ops it could map. ``check`` reports each op, that first CPU op and why, and
how many ops the Edge TPU would run. Exit status: 0 when every file was read, 1 with
``--strict`` when any op of any file stays on the CPU, 2 when a file cannot be read.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

# Coral's "Supported operations" table (TFLite builtin names) for compiler 16 / runtime 14.
SUPPORTED = frozenset({
    "ADD", "AVERAGE_POOL_2D", "CONCATENATION", "CONV_2D", "DEPTHWISE_CONV_2D", "EXPAND_DIMS",
    "FULLY_CONNECTED", "L2_NORMALIZATION", "LOGISTIC", "LSTM", "MAXIMUM", "MAX_POOL_2D", "MEAN",
    "MINIMUM", "MUL", "PACK", "PAD", "PRELU", "QUANTIZE", "REDUCE_MAX", "REDUCE_MIN", "RELU",
    "RELU6", "RELU_N1_TO_1", "RESHAPE", "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR", "RSQRT",
    "SLICE", "SOFTMAX", "SPACE_TO_DEPTH", "SPLIT", "SQUARED_DIFFERENCE", "SQUEEZE",
    "STRIDED_SLICE", "SUB", "SUM", "TANH", "TRANSPOSE", "TRANSPOSE_CONV",
})
NO_FUSED_ACTIVATION = frozenset({"AVERAGE_POOL_2D", "MAX_POOL_2D", "CONCATENATION"})
XY_ONLY = frozenset({"PAD", "MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN"})
THREE_D = frozenset({"RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR"})
INT8 = ("INT8", "UINT8")


@dataclass
class OpResult:
    """One op: its position, builtin name, and why the Edge TPU cannot run it (empty: it can)."""

    index: int
    name: str
    problems: list[str] = field(default_factory=list)

    @property
    def mappable(self) -> bool:
        return not self.problems


@dataclass
class Report:
    """What a Coral would map of one model."""

    model: str
    ops: list[OpResult]

    @property
    def first_cpu(self) -> OpResult | None:
        """The first op the compiler cannot map; it and everything after it run on the CPU."""
        return next((op for op in self.ops if not op.mappable), None)

    @property
    def tpu_ops(self) -> int:
        first = self.first_cpu
        return len(self.ops) if first is None else first.index

    @property
    def passes(self) -> bool:
        return self.first_cpu is None

    def counts(self) -> dict[str, dict[str, int]]:
        """Per op name: how many would run on the Edge TPU and how many on the CPU."""
        out: dict[str, dict[str, int]] = {}
        for op in self.ops:
            where = "tpu" if op.index < self.tpu_ops else "cpu"
            out.setdefault(op.name, {"tpu": 0, "cpu": 0})[where] += 1
        return out

    def to_dict(self) -> dict:
        first = self.first_cpu
        return {"model": self.model, "ops": len(self.ops), "tpu_ops": self.tpu_ops,
                "passes": self.passes, "counts": self.counts(),
                "first_cpu_op": None if first is None else asdict(first),
                "cpu_ops": [asdict(op) for op in self.ops if not op.mappable]}


def _names(fb) -> tuple[dict, dict, dict]:
    ops = {v: k for k, v in vars(fb.BuiltinOperator).items() if not k.startswith("_")}
    types = {v: k for k, v in vars(fb.TensorType).items() if not k.startswith("_")}
    acts = {v: k for k, v in vars(fb.ActivationFunctionType).items() if not k.startswith("_")}
    return ops, types, acts


def _shape_problems(tensor) -> list[str]:
    shape = [int(d) for d in (tensor.shape if tensor.shape is not None else [])]
    sig = tensor.shapeSignature
    out = []
    if sig is not None and any(int(d) < 0 for d in sig):
        out.append(f"dynamic shape {[int(d) for d in sig]}")
    outer = shape[:-3]
    if any(d > 1 for d in outer):
        what = "batch larger than 1" if shape and shape[0] > 1 else "more than 3 dimensions >1"
        out.append(f"{what} (shape {shape})")
    return out


def check(tflite: bytes, name: str = "model") -> Report:
    """Every op of the model's first subgraph, with what stops the Edge TPU from running it."""
    from ai_edge_litert import schema_py_generated as fb

    model = fb.ModelT.InitFromPackedBuf(bytes(tflite), 0)
    op_names, type_names, act_names = _names(fb)
    graph = model.subgraphs[0]
    consumed = {int(i) for op in graph.operators for i in op.inputs if int(i) >= 0}

    def is_const(t: int) -> bool:
        data = model.buffers[graph.tensors[t].buffer].data
        return data is not None and len(data) > 0

    results = []
    for k, op in enumerate(graph.operators):
        code = model.operatorCodes[op.opcodeIndex]
        builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
        name_ = op_names.get(builtin, f"CUSTOM:{code.customCode!r}")
        problems = []
        if name_ not in SUPPORTED:
            problems.append(f"{name_} is not an Edge TPU operation")
        options = op.builtinOptions
        act = getattr(options, "fusedActivationFunction", 0) if options is not None else 0
        if name_ in NO_FUSED_ACTIVATION and act:
            problems.append(f"fused activation {act_names.get(act, act)}")
        if name_ == "DEQUANTIZE" and any(int(o) in consumed for o in op.outputs):
            problems.append("DEQUANTIZE inside the graph (its float result feeds other ops)")
        tensors = [int(i) for i in op.inputs if int(i) >= 0] + [int(o) for o in op.outputs]
        for t in tensors:
            tensor = graph.tensors[t]
            kind = type_names.get(tensor.type, str(tensor.type))
            bias = kind == "INT32" and is_const(t) and t == (int(op.inputs[2]) if len(op.inputs) > 2
                                                             else -1)
            shape_const = kind in ("INT32", "INT64") and is_const(t) and t not in op.outputs
            if kind not in INT8 and not bias and not shape_const:
                problems.append(f"{kind} tensor {_tensor_name(tensor)}")
            if not is_const(t):  # weights are laid out as they like (OHWI, 1HWC)
                problems += [f"{p} in {_tensor_name(tensor)}" for p in _shape_problems(tensor)]
        problems += _limits(name_, op, model, is_const)
        results.append(OpResult(k, name_, sorted(set(problems))))
    return Report(name, results)


def _tensor_name(tensor) -> str:
    raw = tensor.name or b""
    text = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
    return repr(text) if text else "(unnamed)"


def _limits(name: str, op, model, is_const) -> list[str]:
    """The documented per-op limits that the file shows."""
    import numpy as np

    graph = model.subgraphs[0]
    out = []
    if name in XY_ONLY and len(op.inputs) > 1 and is_const(int(op.inputs[1])):
        t = graph.tensors[int(op.inputs[1])]
        rank = len(graph.tensors[int(op.inputs[0])].shape)
        if name == "PAD" and rank == 4:
            pads = _const_values(model, t).reshape(-1, 2)
            if np.any(pads[[0, 3]] != 0):
                out.append("padding along batch or channels")
        elif name != "PAD" and rank == 4:
            axes = {int(a) % 4 for a in np.ravel(_const_values(model, t))}
            if not axes <= {1, 2}:
                out.append(f"reduction along axes {sorted(axes)}, not only x/y")
    if name in THREE_D:
        shape = [int(d) for d in graph.tensors[int(op.inputs[0])].shape]
        if len(shape) > 3 and any(d > 1 for d in shape[:-3]):
            out.append(f"resize of a tensor with more than 3 dimensions (shape {shape})")
    return out


def _const_values(model, tensor):
    import numpy as np

    data = bytes(model.buffers[tensor.buffer].data)
    return np.frombuffer(data, np.int32 if tensor.type == 2 else np.int64)  # INT32 or INT64


def format_report(report: Report) -> str:
    """A short text table: where each kind of op would run, and the first op left to the CPU."""
    lines = [f"{report.model}: {report.tpu_ops} of {len(report.ops)} ops on the Edge TPU"
             + (" (all)" if report.passes else "")]
    for name, c in sorted(report.counts().items()):
        lines.append(f"  {name:<26} tpu {c['tpu']:>3}  cpu {c['cpu']:>3}")
    first = report.first_cpu
    if first is not None:
        lines.append(f"  from op {first.index} ({first.name}) on, the CPU runs the rest: "
                     + "; ".join(first.problems))
        others = sorted({p for op in report.ops[first.index + 1:] for p in op.problems})
        if others:
            lines.append("  also outside the Edge TPU's limits later: " + "; ".join(others[:8])
                         + (f"; and {len(others) - 8} more" if len(others) > 8 else ""))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.edgetpu_check",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", type=Path, help="int8 .tflite files")
    parser.add_argument("--json", type=Path, help="write the reports here as JSON")
    parser.add_argument("--strict", action="store_true",
                        help="exit 1 when any op of any model stays on the CPU")
    args = parser.parse_args(argv)
    reports = []
    for path in args.models:
        try:
            reports.append(check(path.read_bytes(), path.name))
        except (OSError, ValueError) as exc:
            print(f"{path}: cannot read: {exc}", file=sys.stderr)
            return 2
        print(format_report(reports[-1]))
    if args.json:
        args.json.write_text(json.dumps([r.to_dict() for r in reports], indent=1) + "\n")
    return 1 if args.strict and not all(r.passes for r in reports) else 0


if __name__ == "__main__":
    sys.exit(main())
