"""``kiosk run`` with a source that can be unplugged from outside (for ``tools.soak``).

    python -m tools.soak_kiosk --plug FILE -- RUN-ARGS...

The configured source is opened as usual, behind a plug: while ``FILE`` is missing, opening the
source fails and an open one fails its next read, with the error an unplugged camera gives
(``SourceError``); the appliance backs off and reopens it once ``FILE`` is back.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from device.app import run_main
from device.cli import build_parser
from device.errors import SourceError
from device.sources import open_source


class Plugged:
    """A frame source that fails, as an unplugged camera does, while ``plug`` is missing."""

    def __init__(self, inner, plug: Path):
        self.inner, self.plug = inner, plug

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def read(self):
        if not self.plug.exists():
            raise SourceError(f"{self.inner.name} unplugged")
        return self.inner.read()

    def close(self) -> None:
        self.inner.close()


def plugged_opener(plug: Path):
    """An ``open_source`` whose sources go through ``plug``."""

    def opener(spec, **kw):
        if not plug.exists():
            raise SourceError(f"source {spec} is unplugged")
        return Plugged(open_source(spec, **kw), plug)

    return opener


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--plug", required=True, type=Path)
    ap.add_argument("run", nargs=argparse.REMAINDER)
    opts = ap.parse_args(argv)
    run_args = opts.run[1:] if opts.run[:1] == ["--"] else opts.run
    args = build_parser().parse_args(["run", *run_args])
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return run_main(args, open_source=plugged_opener(opts.plug))


if __name__ == "__main__":
    sys.exit(main())
