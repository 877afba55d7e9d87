"""``kiosk doctor``: check an installation part by part and print one table.

For the person installing a kiosk: it opens the configured camera and display, loads the models,
talks to the broker, and looks at the clock and the disk, exactly as the appliance would, then
says what works and what is missing. The checks themselves are in :mod:`device.doctor_checks`;
every piece of hardware is reached through :class:`Seams`, so tests run all of it without any.

Which parts must pass (also printed by ``kiosk doctor --help``)::

    Required (a "fail" in any of them makes the exit status 1):
      config       the configuration loads and is valid (if not, the checks that need it
                   are skipped)
      camera       the configured source opens and delivers frames (size and rate shown);
                   'auto' that finds no camera fails (it would run the demo clip), an
                   explicit file or 'demo' passes
      display      unless [display] sink = none: it opens and shows one test card ('auto'
                   that finds no screen is only a warning)
      models       the models the appliance would start with load and pass their self-test
      broker       when [mqtt] host is set: it connects with the configured credentials and
                   TLS, and one QoS 1 message to <prefix>doctor (not retained) is
                   acknowledged within 10 s
      spool        its folder is writable (or can be created) with room for a full spool
    Informative (a warning at most, never the exit status):
      accelerator  whether the Edge TPU delegate loads, and why not
      clock        whether NTP synchronisation can be confirmed (windows carry wall-clock
                   times)
    Exit status: 0 when every required check passes (warnings allowed), 1 otherwise.

Nothing is written but the display's own output (a ``png:`` sink gets the test card, which holds
no camera image) and the one MQTT message; frames are read only to be counted and measured.
Run it while the appliance is stopped: a camera serves one process at a time.
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass

from device.doctor_checks import (
    BROKER_TIMEOUT_S,
    FAIL,
    OK,
    SKIP,
    WARN,
    Check,
    build_pipeline,
    check_accelerator,
    check_broker,
    check_camera,
    check_clock,
    check_display,
    check_models,
    check_spool,
    models_folder,
    read_clock_sync,
)

_rule_at = slice(__doc__.index("    Required"), __doc__.index("\nNothing is written"))
RULE = textwrap.dedent(__doc__[_rule_at])  # the required/informative rule, for --help
HELP = ("Check every part of an installation, as the appliance would use it, and print a "
        "table.\nRun it while the appliance is stopped (a camera serves one process at a "
        "time).\n\n" + RULE.rstrip())

__all__ = ["Check", "Seams", "RULE", "HELP", "OK", "WARN", "FAIL", "SKIP", "run_checks",
           "format_table", "exit_status", "doctor_main", "open_display", "preview_for"]


def _open_source(spec, loop, pace, preview=None):
    from device.sources import open_source

    return open_source(spec, loop=loop, pace=pace, preview=preview)


def preview_for(display_cfg) -> str | None:
    """The preview the Pi camera must start for the configured display (as the appliance does)."""
    from device.wiring import preview_for

    return preview_for(display_cfg)


def open_display(display_cfg, source):
    """The appliance's display for ``[display]`` over the open source; raises DisplayError."""
    from device.wiring import open_display

    return open_display(display_cfg, source)


def _edgetpu_status():
    from device.runtime import edgetpu_status

    hook = sys.unraisablehook  # LiteRT's Delegate complains from __del__ when its library is absent
    sys.unraisablehook = lambda unraisable: None
    try:
        return edgetpu_status()
    finally:
        sys.unraisablehook = hook


@dataclass
class Seams:
    """Everything the doctor reaches outside itself; None picks the real one.

    Attributes:
        open_source: ``(spec, loop, pace, preview) -> FrameSource``; preview is ``"drm"`` when
            the display draws over the Pi camera's preview (:func:`preview_for`), else None.
        open_display: ``(display_cfg, source) -> DisplaySink``, raising DisplayError.
        make_pipeline: ``(models_cfg, folder) -> pipeline`` with ``self_test()`` and
            ``model_version``.
        edgetpu_status: ``() -> (loaded, reason)``.
        mqtt_client: the paho client factory (``paho.mqtt.client.Client``'s signature).
        clock_sync: ``() -> (True | False | None, how we know)``.
        disk_usage: ``shutil.disk_usage``'s signature.
        clock, wall: monotonic and wall-clock seconds.
        broker_timeout: seconds for the broker's connection and again for its acknowledgement.
    """

    open_source: Callable | None = None
    open_display: Callable | None = None
    make_pipeline: Callable | None = None
    edgetpu_status: Callable | None = None
    mqtt_client: Callable | None = None
    clock_sync: Callable | None = None
    disk_usage: Callable = shutil.disk_usage
    clock: Callable = time.monotonic
    wall: Callable = time.time
    broker_timeout: float = BROKER_TIMEOUT_S


def _config_row(cfg) -> Check:
    where = f"{cfg.path}: valid" if cfg.path else "no --config: the built-in defaults"
    return Check("config", OK, f"{where} (device {cfg.device.id})", True)


def _guarded(name: str, required: bool, fn, *args) -> Check:
    """``fn(*args)``, with an unexpected exception reported as a failed row, not a traceback."""
    try:
        return fn(*args)
    except Exception as exc:  # a doctor must finish its table whatever one part does
        logging.getLogger(__name__).debug("%s check crashed", name, exc_info=True)
        return Check(name, FAIL if required else WARN,
                     f"unexpected error: {type(exc).__name__}: {exc}", required)


def _camera_and_display(cfg, s: Seams) -> list[Check]:
    """The camera check, then the display check with the source it opened; then it is closed."""
    source = None
    try:
        try:
            row, source = check_camera(cfg.source, s.open_source or _open_source, s.clock,
                                       preview=preview_for(cfg.display))
        except Exception as exc:  # as _guarded, but a source that opened must still be closed
            row = Check("camera", FAIL, f"unexpected error: {type(exc).__name__}: {exc}", True)
        return [row, _guarded("display", cfg.display.sink != "none", check_display, cfg.display,
                              source, s.open_display or open_display)]
    finally:
        if source is not None:
            source.close()


def run_checks(load_config, seams: Seams | None = None) -> list[Check]:
    """Run every check in order and return the rows.

    Args:
        load_config: ``() -> Config``, raising ConfigError (its message becomes the config row;
            the checks that need a configuration are then skipped).
        seams: the hardware seams (None: the real hardware).
    """
    from device.errors import ConfigError

    s = seams or Seams()
    try:
        cfg = load_config()
    except ConfigError as exc:
        cfg, rows = None, [Check("config", FAIL, str(exc), True)]
    else:
        rows = [_config_row(cfg)]

    def needs_cfg(name, required, fn, *args):
        if cfg is None:
            return Check(name, SKIP, "needs the configuration", required)
        return _guarded(name, required, fn, *args)

    if cfg is None:
        rows += [needs_cfg("camera", True, None), needs_cfg("display", True, None)]
        folder = origin = None
    else:
        rows += _camera_and_display(cfg, s)
        folder, origin = models_folder(cfg)
    rows.append(_guarded("accelerator", False, check_accelerator, folder,
                         s.edgetpu_status or _edgetpu_status))
    rows.append(needs_cfg("models", True, check_models, cfg and cfg.models, folder, origin,
                          s.make_pipeline or build_pipeline))
    rows.append(needs_cfg("broker", bool(cfg and cfg.mqtt.host), check_broker,
                          cfg and cfg.mqtt, s.mqtt_client, s.broker_timeout, s.wall))
    rows.append(_guarded("clock", False, check_clock, s.clock_sync or read_clock_sync, s.wall))
    rows.append(needs_cfg("spool", True, check_spool, cfg, s.disk_usage))
    return rows


def exit_status(rows: list[Check]) -> int:
    """0 when no required check failed, else 1."""
    return 1 if any(r.failed for r in rows) else 0


def format_table(rows: list[Check]) -> str:
    """The rows as an aligned table, then one line with the verdict."""
    header = ("CHECK", "STATUS", "REQUIRED", "DETAIL")
    cells = [header] + [(r.name, r.status, "yes" if r.required else "no", r.detail) for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(3)]
    lines = ["  ".join(c[i].ljust(widths[i]) for i in range(3)) + "  " + c[3] for c in cells]
    failed = [r.name for r in rows if r.failed]
    warned = [r.name for r in rows if r.status == WARN]
    if failed:
        verdict = f"NOT READY: required check(s) failed: {', '.join(failed)}"
    else:
        verdict = "ready: every required check passed"
    if warned:
        verdict += f" (warnings: {', '.join(warned)})"
    return "\n".join(lines + ["", f"kiosk doctor: {verdict}"])


def doctor_main(args, seams: Seams | None = None, out=None) -> int:
    """``kiosk doctor``: print the table (or JSON lines with ``--json``); return the exit status."""
    from device.config import load_config
    from device.wiring import overrides_from_args

    out = out or sys.stdout
    overrides = overrides_from_args(args)
    root = logging.getLogger()
    level = root.level
    if not getattr(args, "verbose", False):  # the table says it all; -v shows the logs too
        root.setLevel(logging.CRITICAL)
    try:
        rows = run_checks(lambda: load_config(args.config, overrides), seams)
    finally:
        root.setLevel(level)
    if getattr(args, "json", False):
        for r in rows:
            print(json.dumps({"check": r.name, "status": r.status, "required": r.required,
                              "detail": r.detail}), file=out)
    else:
        print(format_table(rows), file=out)
    return exit_status(rows)
