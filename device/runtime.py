"""TFLite runtime seam: one place that picks the interpreter package and the Edge TPU delegate.

``ai_edge_litert`` (LiteRT, the successor) is preferred, ``tflite_runtime`` is the fallback, and
TensorFlow's own ``tf.lite`` is the last resort (offline tools only). Models named
``*_edgetpu.tflite`` get the Edge TPU delegate when ``libedgetpu.so.1`` loads; otherwise the CPU
model beside them (same name without ``_edgetpu``) is used and a warning is logged.

Quantisation parameters are always read from each tensor, never assumed.

Which CPU kernels run the int8 ops is a runtime choice (``KERNELS``, ``set_kernels``, the
``KIOSK_TFLITE_KERNELS`` environment variable), independent of any configuration file:
``"auto"`` is the runtime's default (XNNPACK where it can start, TFLite's own kernels
otherwise), ``"builtin"`` TFLite's optimised kernels without XNNPACK, ``"reference"`` TFLite's
reference kernels (slow; the arithmetic the others approximate). int8 kernels round
intermediate results differently, so the same model gives answers a few quantisation steps apart
under each. XNNPACK's are the same bits on x86 and on ARM, so a kiosk whose XNNPACK starts
answers exactly as the build machine did; the known-answer tolerances in ``device.kat``
hold whichever set a kiosk ends up with (see ``models/README.md``, "Answers across CPUs").
"""

from __future__ import annotations

import logging
import os
import platform
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from device.errors import ModelError

log = logging.getLogger(__name__)

EDGETPU_LIB = {"Linux": "libedgetpu.so.1", "Darwin": "libedgetpu.1.dylib", "Windows": "edgetpu.dll"}

# kernel set -> the runtime's OpResolverType member name
KERNELS = {"auto": "AUTO", "builtin": "BUILTIN_WITHOUT_DEFAULT_DELEGATES",
           "reference": "BUILTIN_REF"}
KERNELS_ENV = "KIOSK_TFLITE_KERNELS"
_kernels: str | None = None  # set_kernels(); None: the environment variable, else "auto"


def _interpreter_api():
    """Return (Interpreter class, load_delegate function, package name)."""
    try:
        from ai_edge_litert.interpreter import Interpreter, load_delegate

        return Interpreter, load_delegate, "ai_edge_litert"
    except ImportError:
        pass
    try:
        from tflite_runtime.interpreter import Interpreter, load_delegate

        return Interpreter, load_delegate, "tflite_runtime"
    except ImportError:
        pass
    try:  # offline tools with TensorFlow installed
        import tensorflow as tf

        return tf.lite.Interpreter, tf.lite.experimental.load_delegate, "tensorflow"
    except ImportError as exc:
        raise ModelError(
            "no TFLite runtime installed: pip install ai-edge-litert (or tflite-runtime)"
        ) from exc


def _check_kernels(name: str) -> str:
    name = str(name).strip().lower()
    if name not in KERNELS:
        raise ValueError(f"unknown TFLite kernel set {name!r}; choose from {', '.join(KERNELS)}")
    return name


def set_kernels(name: str | None) -> None:
    """Choose the CPU kernels for every model loaded from now on (None: back to the default).

    Raises:
        ValueError: ``name`` is not one of ``KERNELS``.
    """
    global _kernels
    _kernels = None if name is None else _check_kernels(name)


@contextmanager
def use_kernels(name: str | None) -> Iterator[None]:
    """``set_kernels(name)`` for the models loaded inside a ``with`` block, then back."""
    global _kernels
    before = _kernels
    set_kernels(name)
    try:
        yield
    finally:
        _kernels = before


def active_kernels() -> str:
    """The kernel set models are loaded with: ``set_kernels``'s, else ``$KIOSK_TFLITE_KERNELS``,
    else ``"auto"``."""
    if _kernels is not None:
        return _kernels
    env = os.environ.get(KERNELS_ENV, "").strip()
    if not env:
        return "auto"
    try:
        return _check_kernels(env)
    except ValueError as exc:
        raise ModelError(f"{KERNELS_ENV}: {exc}") from None


def _op_resolver_type(package: str):
    """The runtime's ``OpResolverType`` enum (None when it has none)."""
    try:
        if package == "tensorflow":
            import tensorflow as tf

            return getattr(tf.lite.experimental, "OpResolverType", None)
        module = __import__(f"{package}.interpreter", fromlist=["OpResolverType"])
        return getattr(module, "OpResolverType", None)
    except ImportError:
        return None


def _resolver_option(package: str, name: str) -> dict:
    """The Interpreter keyword that selects kernel set ``name`` ({} for the default)."""
    if name == "auto":
        return {}
    resolver = _op_resolver_type(package)
    if resolver is None or not hasattr(resolver, KERNELS[name]):
        raise ModelError(f"this TFLite runtime cannot choose its kernels ({name!r} asked for)")
    return {"experimental_op_resolver_type": getattr(resolver, KERNELS[name])}


_warned: set[str] = set()


def _warn_no_xnnpack(name: str) -> None:
    """Say once per model file that XNNPACK did not start (the build machine's answers are
    XNNPACK's, so this kiosk's will be a few steps away from them)."""
    if name in _warned:
        return
    _warned.add(name)
    log.warning("XNNPACK did not start for %s (the runtime could not read this CPU's description, "
                "/sys/devices/system/cpu or /proc/cpuinfo); TFLite's own kernels run it. Their "
                "int8 answers differ from XNNPACK's, which are the same on x86 and ARM, by a few "
                "quantisation steps", name)


def available_kernels() -> list[str]:
    """The kernel sets this runtime can be asked for (``"auto"`` always)."""
    resolver = _op_resolver_type(_interpreter_api()[2])
    return [k for k, member in KERNELS.items() if k == "auto" or hasattr(resolver, member)]


def runtime_name() -> str:
    """Name of the interpreter package that will be used."""
    return _interpreter_api()[2]


def load_edgetpu_delegate(load_delegate=None):
    """Load the Edge TPU delegate, or return None (with the reason logged) when it cannot load."""
    if load_delegate is None:
        load_delegate = _interpreter_api()[1]
    lib = EDGETPU_LIB.get(platform.system(), "libedgetpu.so.1")
    try:
        return load_delegate(lib)
    except (ValueError, OSError, RuntimeError) as exc:
        log.warning("Edge TPU delegate %s did not load (%s); using the CPU model", lib, exc)
        return None


def cpu_twin(path: Path) -> Path:
    """The CPU model that stands beside an Edge TPU model (``x_edgetpu.tflite`` -> ``x.tflite``)."""
    return path.with_name(path.name.replace("_edgetpu.tflite", ".tflite"))


@dataclass(frozen=True)
class TensorSpec:
    """Name, shape, dtype and quantisation of one model input or output."""

    index: int
    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    scale: float
    zero_point: int

    @property
    def quantized(self) -> bool:
        return self.dtype in (np.int8, np.uint8, np.int16) and self.scale > 0


def _spec(d: dict) -> TensorSpec:
    scale, zero = d.get("quantization", (0.0, 0))
    return TensorSpec(d["index"], d["name"], tuple(int(s) for s in d["shape"]),
                      np.dtype(d["dtype"]), float(scale), int(zero))


def quantize(x: np.ndarray, spec: TensorSpec) -> np.ndarray:
    """Float array to the tensor's integer type using its own scale and zero point."""
    if not spec.quantized:
        return np.asarray(x, dtype=spec.dtype)
    info = np.iinfo(spec.dtype)
    q = np.round(np.asarray(x, dtype=np.float32) / spec.scale) + spec.zero_point
    return np.clip(q, info.min, info.max).astype(spec.dtype)


def dequantize(q: np.ndarray, spec: TensorSpec) -> np.ndarray:
    """Integer tensor values back to float with the tensor's scale and zero point."""
    if not spec.quantized:
        return np.asarray(q, dtype=np.float32)
    return (q.astype(np.float32) - spec.zero_point) * spec.scale


def pixel_lut(spec: TensorSpec, to_float) -> np.ndarray:
    """A 256-entry table from a uint8 pixel to the input tensor's value (quantised when it is).

    ``to_float`` maps pixel values (0..255 as float32) to the model's float input range; indexing
    the table with a uint8 image then gives the tensor in one pass, exactly as ``quantize`` would.
    """
    return quantize(to_float(np.arange(256, dtype=np.float32)), spec)


class TFLiteModel:
    """A loaded TFLite model: float in, float out, whatever its tensors' types are.

    Args:
        path: the ``.tflite`` file. ``*_edgetpu.tflite`` asks for the Edge TPU.
        threads: CPU threads for the interpreter (None: the runtime's default).
        kernels: CPU kernel set, one of ``KERNELS`` (None: ``active_kernels()``).
    """

    def __init__(self, path: str | os.PathLike, threads: int | None = 1,
                 kernels: str | None = None):
        path = Path(path)
        Interpreter, load_delegate, self.runtime = _interpreter_api()
        self.kernels = _check_kernels(kernels) if kernels is not None else active_kernels()
        options = _resolver_option(self.runtime, self.kernels)
        self.accelerator = "cpu"
        delegates = []
        if path.name.endswith("_edgetpu.tflite"):
            delegate = load_edgetpu_delegate(load_delegate)
            if delegate is not None:
                delegates, self.accelerator = [delegate], "edgetpu"
            else:
                path = cpu_twin(path)
        if not path.is_file():
            raise ModelError(f"model file not found: {path}")
        self.path = path
        try:
            self.interpreter = Interpreter(model_path=str(path), num_threads=threads,
                                           experimental_delegates=delegates or None, **options)
            self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"cannot load model {path}: {exc}") from exc
        self.inputs = [_spec(d) for d in self.interpreter.get_input_details()]
        self.outputs = [_spec(d) for d in self.interpreter.get_output_details()]
        self.signature_names = self._signature_output_names()
        self.cpu_kernels = self._cpu_kernels()
        if self.kernels == "auto" and self.cpu_kernels == "builtin":
            _warn_no_xnnpack(path.name)

    def _cpu_kernels(self) -> str:
        """The kernels that really run this model's CPU ops: ``"xnnpack"`` when XNNPACK took
        them, else ``"builtin"`` / ``"reference"`` (``"unknown"`` if the runtime does not say;
        ``"edgetpu"`` for a model on the Edge TPU)."""
        if self.accelerator != "cpu":
            return self.accelerator
        if self.kernels in ("builtin", "reference"):
            return self.kernels
        try:
            ops = self.interpreter._get_ops_details()
        except (AttributeError, RuntimeError, ValueError):
            return "unknown"
        return "xnnpack" if any(op.get("op_name") == "DELEGATE" for op in ops) else "builtin"

    def _signature_output_names(self) -> dict[int, str]:
        """Tensor index -> output name from the model's signature (Keras head names survive
        there)."""
        try:
            sigs = self.interpreter._get_full_signature_list()
        except AttributeError:
            return {}
        names = {}
        for sig in (sigs or {}).values():
            for name, index in sig.get("outputs", {}).items():
                names[int(index)] = name
        return names

    def resize_batch(self, n: int) -> None:
        """Change the first input's batch size (for models with a dynamic batch)."""
        spec = self.inputs[0]
        if spec.shape[0] == n:
            return
        self.interpreter.resize_tensor_input(spec.index, (n, *spec.shape[1:]))
        self.interpreter.allocate_tensors()
        self.inputs = [_spec(d) for d in self.interpreter.get_input_details()]
        self.outputs = [_spec(d) for d in self.interpreter.get_output_details()]

    def run(self, *inputs: np.ndarray) -> list[np.ndarray]:
        """Quantise float inputs as each tensor wants, invoke, return dequantised float outputs."""
        for spec, x in zip(self.inputs, inputs, strict=True):
            self.interpreter.set_tensor(spec.index, quantize(x, spec))
        self.interpreter.invoke()
        return [dequantize(self.interpreter.get_tensor(s.index), s) for s in self.outputs]

    def run_raw(self, *inputs: np.ndarray, dequantize_outputs: bool = True) -> list[np.ndarray]:
        """Like ``run`` for inputs already in each tensor's own type (see ``pixel_lut``).

        With ``dequantize_outputs=False`` the outputs come back in their own integer type, for
        callers that dequantise only the part they need (``dequantize`` with ``self.outputs``).
        """
        for spec, x in zip(self.inputs, inputs, strict=True):
            self.interpreter.set_tensor(spec.index, x)
        self.interpreter.invoke()
        if not dequantize_outputs:
            return [self.interpreter.get_tensor(s.index) for s in self.outputs]
        return [dequantize(self.interpreter.get_tensor(s.index), s) for s in self.outputs]

    def output(self, name_part: str) -> TensorSpec:
        """The output whose name contains ``name_part`` (heads are found by name, not position)."""
        for spec in self.outputs:  # the signature's names first: they are the Keras layer names
            if self.signature_names.get(spec.index) == name_part:
                return spec
        for spec in self.outputs:
            if name_part in spec.name or name_part in self.signature_names.get(spec.index, ""):
                return spec
        names = [self.signature_names.get(s.index, s.name) for s in self.outputs]
        raise ModelError(f"{self.path.name}: no output named like {name_part!r} (has {names})")


def edgetpu_status(load_delegate=None) -> tuple[bool, str]:
    """Whether the Edge TPU delegate loads on this machine, and why not when it does not.

    Args:
        load_delegate: the runtime's ``load_delegate`` (a seam for tests; None: the installed
            runtime's).
    Returns:
        (True, what loaded) or (False, the reason), e.g. ``did not load: libedgetpu.so.1:
        cannot open shared object file``. Nothing is logged.
    """
    lib = EDGETPU_LIB.get(platform.system(), "libedgetpu.so.1")
    try:
        if load_delegate is None:
            load_delegate = _interpreter_api()[1]
        load_delegate(lib)  # dropped at once: this only asks whether it loads
    except ModelError as exc:  # no TFLite runtime at all
        return False, str(exc)
    except (ValueError, OSError, RuntimeError) as exc:
        reason = str(exc) if lib in str(exc) else f"{lib}: {exc}"
        return False, f"did not load: {reason}"
    return True, f"{lib} loaded"
