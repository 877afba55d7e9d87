"""Co-compiling the detector and the analyzer for the Coral Edge TPU, when its compiler is here.

Both models are compiled in one ``edgetpu_compiler`` call so they share the TPU's parameter cache
(Coral's "co-compilation"); the compiler's own log says how many ops map to the TPU.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
from pathlib import Path

log = logging.getLogger(__name__)

COMPILER = "edgetpu_compiler"
_OPS = re.compile(r"Input model:\s*(\S+).*?Number of operations that will run on Edge TPU:\s*(\d+)"
                  r".*?Number of operations that will run on CPU:\s*(\d+)", re.S)


def compiler_command(models: list[Path], out_dir: Path, compiler: str = COMPILER) -> list[str]:
    """The ``edgetpu_compiler`` command line for co-compiling ``models`` into ``out_dir``."""
    return [compiler, "--show_operations", "--out_dir", str(out_dir), *map(str, models)]


def parse_op_counts(log_text: str) -> dict[str, dict[str, int]]:
    """{model: {"tpu": n, "cpu": m}} from the compiler's log."""
    return {Path(m).name: {"tpu": int(t), "cpu": int(c)} for m, t, c in _OPS.findall(log_text)}


def compile_for_edgetpu(models: list[Path], out_dir: Path, which=shutil.which,
                        runner=subprocess.run) -> dict | None:
    """Compile ``models`` together; None (and a log line) when the compiler is not on PATH.

    Returns:
        op counts per model, as ``parse_op_counts`` gives them.
    Raises:
        RuntimeError: the compiler ran and failed.
    """
    compiler = which(COMPILER)
    if compiler is None:
        log.info("%s is not on PATH: Edge TPU compilation skipped", COMPILER)
        return None
    cmd = compiler_command(models, out_dir, compiler)
    res = runner(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({res.returncode}): {res.stderr or res.stdout}")
    counts = parse_op_counts(res.stdout)
    for name, c in counts.items():
        log.info("%s: %d ops on the Edge TPU, %d on the CPU", name, c["tpu"], c["cpu"])
    return counts
