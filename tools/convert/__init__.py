"""Model conversion tools: ``kiosk-convert detector``, ``float-heads`` and ``analyzer``.

Each subcommand lives in its own module exposing ``add_arguments(parser)`` and
``run(args) -> int``; modules are imported only when their subcommand is chosen, so a missing
or broken one does not stop the others.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

SUBCOMMANDS = {
    "detector": ("tools.convert.detector", "MediaPipe float face detector -> int8 TFLite"),
    "float-heads": ("tools.convert.float_heads",
                    "int8 face detector -> the same with its output convolutions in float"),
    "analyzer": ("tools.convert.analyzer", "multi-head attribute model -> int8 TFLite"),
}


def _load(name: str):
    module = SUBCOMMANDS[name][0]
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name != module:
            raise  # a dependency inside the module is missing: show the real error
        return None


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``kiosk-convert`` / ``python -m tools.convert``."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(prog="kiosk-convert", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    chosen = argv[0] if argv and argv[0] in SUBCOMMANDS else None
    for name, (module, help_text) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            mod = _load(name)
            if mod is None:
                print(f"kiosk-convert {name}: {module} is not installed in this checkout",
                      file=sys.stderr)
                return 2
            mod.add_arguments(p)
            p.set_defaults(_run=mod.run)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return int(args._run(args))
