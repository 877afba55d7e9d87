"""The checks behind ``kiosk doctor``: one small function per part, each returning a :class:`Check`.

Hardware and the outside world are reached only through the callables each function is given
(source opener, display opener, pipeline factory, delegate loader, MQTT client factory, clock-sync
reader, disk usage), so tests drive every branch without a camera, a screen or a Coral.

Privacy: frames are read only to count them and measure their size; none is kept, written or
sent. The display is shown a synthetic test card, never a camera image.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from device.errors import ConfigError, DisplayError, KioskError, ModelError

OK, WARN, FAIL, SKIP = "ok", "warn", "fail", "skip"

CAMERA_FRAMES = 30  # the camera check reads this many frames ...
CAMERA_SECONDS = 2.0  # ... or for this long, whichever comes first
CAMERA_KINDS = ("camera", "picamera")  # sources whose measured rate is a real camera's
BROKER_TIMEOUT_S = 10.0
TIMESYNC_FLAG = Path("/run/systemd/timesync/synchronized")
SPOOL_BYTES_PER_WINDOW = 2048  # one window's JSON (about 1 kB) plus SQLite's overhead
SPOOL_MARGIN_BYTES = 64 << 20  # logs, updates and the unforeseen


@dataclass(frozen=True)
class Check:
    """One row of the doctor's table.

    Attributes:
        name: the part checked ("camera", "broker", ...).
        status: ``ok``, ``warn`` (works, but look at it), ``fail`` or ``skip`` (not checked).
        detail: what was found, or why it failed, in the installer's words.
        required: whether a ``fail`` here makes ``kiosk doctor`` exit non-zero.
    """

    name: str
    status: str
    detail: str
    required: bool

    @property
    def failed(self) -> bool:
        """True for a required part that did not pass."""
        return self.required and self.status == FAIL


# -- camera ----------------------------------------------------------------------------------------
def _read_frames(source, clock, frames: int, seconds: float):
    """Arrival times and the (width, height) of up to ``frames`` frames read within ``seconds``."""
    times, size, start = [], None, clock()
    while len(times) < frames and clock() - start < seconds:
        frame = source.read()
        if frame is None:
            break
        times.append(clock())
        size = (frame.image.shape[1], frame.image.shape[0])
    return times, size


def _rate(source, times) -> str:
    if source.kind in CAMERA_KINDS:
        span = times[-1] - times[0] if len(times) > 1 else 0.0
        if span <= 0:
            return f"{len(times)} frame(s), rate unknown"
        return f"{len(times)} frames in {span:.1f} s = {(len(times) - 1) / span:.1f} fps"
    declared = f", {source.fps:g} fps" if source.fps else ""
    return f"{len(times)} frames read{declared} (a {source.kind} source, not a camera)"


def check_camera(source_cfg, open_source, clock=time.monotonic, frames: int = CAMERA_FRAMES,
                 seconds: float = CAMERA_SECONDS, preview: str | None = None):
    """Open the configured source, read a few frames, measure their size and rate.

    ``auto`` that finds no camera fails (it would run the demo clip); an explicit file or
    ``demo`` passes. The source is left open for the display check, which needs it (the DRM
    display draws over the camera's own preview).

    Args:
        source_cfg: the ``[source]`` section.
        open_source: ``(spec, loop, pace, preview) -> FrameSource``.
        clock: monotonic seconds, for the measured rate.
        preview: ``"drm"`` when the display is drm (the Pi camera starts its preview first).
    Returns:
        (row, source): source is None when it did not open; otherwise the caller closes it.
    """
    spec = source_cfg.spec
    try:
        source = open_source(spec, False, source_cfg.pace, preview)
    except (KioskError, OSError, ValueError) as exc:
        return Check("camera", FAIL, f"{spec}: {exc}", True), None
    if spec == "auto" and source.kind == "demo":
        return Check("camera", FAIL, "no camera found (no Pi camera, OpenCV camera 0 does not "
                     "open): 'auto' would run the built-in demo clip instead", True), source
    try:
        times, size = _read_frames(source, clock, frames, seconds)
    except (KioskError, OSError) as exc:
        return Check("camera", FAIL, f"{source.name}: opened, but {exc}", True), source
    if not times:
        return Check("camera", FAIL, f"{source.name}: opened, but delivered no frame", True), source
    detail = f"{source.name}: {size[0]}x{size[1]}, {_rate(source, times)}"
    return Check("camera", OK, detail, True), source


# -- display ---------------------------------------------------------------------------------------
def make_test_card(size: tuple[int, int] = (640, 360)):
    """The kiosk screen rendered around a grey ramp with a caption: no camera image in it."""
    import cv2
    import numpy as np

    from device.display import render

    w, h = size
    ramp = np.linspace(30, 200, w).astype(np.uint8)
    image = np.ascontiguousarray(np.broadcast_to(ramp[None, :, None], (h, w, 3)))
    cv2.putText(image, "kiosk doctor: display test", (20, h // 2), cv2.FONT_HERSHEY_SIMPLEX,
                0.9, (255, 255, 255), 2, cv2.LINE_AA)
    return render(image, status={"doctor": "display test"})


def check_display(display_cfg, source, open_display):
    """Open the configured sink (with the open source), show one test card, close it.

    ``none`` is skipped; ``auto`` that finds no screen is a warning (the kiosk runs without one).

    Args:
        display_cfg: the ``[display]`` section.
        source: the source the camera check opened (None when it did not open).
        open_display: ``(display_cfg, source) -> DisplaySink``; raises DisplayError.
    """
    spec = display_cfg.sink
    if spec == "none":
        return Check("display", SKIP, "[display] sink = none: no screen configured", False)
    if spec == "drm" and source is None:
        return Check("display", FAIL, "drm draws over the Pi camera's preview, and the camera "
                     "did not open", True)
    try:
        sink = open_display(display_cfg, source)
    except (DisplayError, OSError, ValueError) as exc:
        return Check("display", FAIL, f"{spec}: {exc}", True)
    kind = getattr(sink, "type_key", spec)
    if spec == "auto" and kind == "none":
        sink.close()
        return Check("display", WARN, "auto found no screen (no Pi camera preview, no "
                     "framebuffer): the kiosk will run without one", False)
    name = f"auto ({kind})" if spec == "auto" else spec
    try:
        card = make_test_card()
        sink.show(card)
    except (DisplayError, OSError, ValueError) as exc:
        return Check("display", FAIL, f"{name}: opened, but showing a frame failed: {exc}", True)
    finally:
        sink.close()
    return Check("display", OK, f"{name}: showed a {card.shape[1]}x{card.shape[0]} test card",
                 True)


# -- models and accelerator ------------------------------------------------------------------------
def models_folder(cfg) -> tuple[Path, str]:
    """The models the appliance would start with: the active slot, else the installed ones."""
    from device.slots import MODELS_SUBDIR, SlotStore

    store = SlotStore(Path(cfg.state.dir) / MODELS_SUBDIR, Path(cfg.models.dir))
    try:
        name = store.active()
        if name and store.installed(name):
            return store.slot_dir(name), f"slot {name}"
    except OSError:  # e.g. a state dir this user cannot read: say what the software ships
        pass
    return Path(cfg.models.dir), "installed with the software"


def build_pipeline(models_cfg, folder: Path):
    """A pipeline on ``folder`` with the ``[models]`` settings, built as the appliance does."""
    from device.pipeline import pipeline_for

    return pipeline_for(models_cfg, folder)


def check_models(models_cfg, folder: Path, origin: str, make_pipeline=build_pipeline):
    """Load the models and run their self-test on the shipped test picture."""
    try:
        pipeline = make_pipeline(models_cfg, folder)
        result = pipeline.self_test()
    except (KioskError, OSError, ValueError, RuntimeError) as exc:
        return Check("models", FAIL, f"{folder} ({origin}): {exc}", True)
    what = f"models {pipeline.model_version} ({origin})"
    faces = result.get("faces")
    if "attributes" not in result:
        return Check("models", WARN, f"{what}: detector self-test passed ({faces} face(s)); no "
                     "attribute model: age, gender and emotion are not estimated", True)
    return Check("models", OK, f"{what}: self-test passed ({faces} face(s), attributes in range)",
                 True)


def _edgetpu_models(folder: Path | None) -> list[str]:
    from device.manifest import load_manifest

    try:
        manifest = load_manifest(folder) if folder else {}
    except ModelError:
        return []
    entries = [manifest.get(role) or {} for role in ("detector", "analyzer")]
    return [e["file"] for e in entries if str(e.get("file", "")).endswith("_edgetpu.tflite")]


def check_accelerator(folder: Path | None, edgetpu_status):
    """Informative: does the Edge TPU delegate load, and do the installed models ask for it?

    Args:
        folder: the models folder (None when the configuration did not load).
        edgetpu_status: ``() -> (loaded, reason)``, see ``device.runtime.edgetpu_status``.
    """
    loaded, reason = edgetpu_status()
    wanted = _edgetpu_models(folder)
    if loaded:
        uses = (f"used by {', '.join(wanted)}" if wanted
                else "the installed models are CPU models and do not use it")
        return Check("accelerator", OK, f"Edge TPU: {reason}; {uses}", False)
    if wanted:
        return Check("accelerator", WARN, f"Edge TPU {reason}; {', '.join(wanted)} will run as "
                     "their CPU models (slower)", False)
    return Check("accelerator", OK, f"CPU (Edge TPU {reason})", False)


# -- broker ----------------------------------------------------------------------------------------
def _broker_name(mqtt_cfg) -> str:
    tls = " over TLS" if mqtt_cfg.tls is not None and mqtt_cfg.tls.enabled else ""
    user = f" as {mqtt_cfg.username}" if mqtt_cfg.username else ""
    return f"{mqtt_cfg.host}:{mqtt_cfg.port}{tls}{user}"


def check_broker(mqtt_cfg, client_factory=None, timeout: float = BROKER_TIMEOUT_S,
                 wall=time.time):
    """Connect with the appliance's options and have one QoS 1 message acknowledged.

    The message goes to ``<prefix>doctor``, not retained. Skipped when no ``[mqtt] host`` is set.

    Args:
        mqtt_cfg: the completed ``[mqtt]`` section.
        client_factory: builds the paho client (None: paho's own).
        timeout: seconds for the connection and again for the acknowledgement.
    """
    if not mqtt_cfg.host:
        return Check("broker", SKIP, "no [mqtt] host: windows are spooled and logged, nothing is "
                     "published", False)
    import json

    from device.mqtt.messages import iso_utc
    from device.mqtt.probe import BrokerProbe, ProbeError

    where, topic = _broker_name(mqtt_cfg), mqtt_cfg.prefix + "doctor"
    try:
        probe = BrokerProbe(mqtt_cfg, **({"client_factory": client_factory}
                                         if client_factory else {}))
    except ConfigError as exc:
        return Check("broker", FAIL, f"{where}: {exc}", True)
    try:
        probe.connect(timeout)
        probe.publish_acked(topic, json.dumps({"doctor": True, "time": iso_utc(wall())}), timeout)
    except ProbeError as exc:
        return Check("broker", FAIL, f"{where}: {exc}", True)
    finally:
        probe.stop()
    return Check("broker", OK, f"{where}: connected; a QoS 1 message to {topic} was "
                 "acknowledged", True)


# -- clock -----------------------------------------------------------------------------------------
def read_clock_sync(run=subprocess.run, flag: Path = TIMESYNC_FLAG) -> tuple[bool | None, str]:
    """Whether the system clock is NTP-synchronised: (True/False, how we know) or (None, why not).

    Asks ``timedatectl show -p NTPSynchronized --value`` (any NTP client), then looks for
    systemd-timesyncd's ``/run/systemd/timesync/synchronized``.
    """
    try:
        out = run(["timedatectl", "show", "-p", "NTPSynchronized", "--value"],
                  capture_output=True, text=True, timeout=5)
    except FileNotFoundError:
        reason = "timedatectl not found"
    except (OSError, subprocess.SubprocessError) as exc:
        reason = f"timedatectl did not answer ({exc})"
    else:
        value = (out.stdout or "").strip()
        if out.returncode == 0 and value in ("yes", "no"):
            return value == "yes", f"timedatectl: NTPSynchronized={value}"
        said = (out.stderr or out.stdout or "").strip().splitlines()
        said = said[0].rstrip(".") if said else f"exit status {out.returncode}"
        reason = f"timedatectl failed: {said}"
    if flag.exists():
        return True, f"{flag} exists"
    return None, f"{reason}; no {flag}"


def check_clock(read_sync=read_clock_sync, wall=time.time):
    """Informative: windows carry wall-clock times, so the clock should be NTP-synchronised."""
    from device.mqtt.messages import iso_utc

    synced, how = read_sync()
    now = f"now {iso_utc(wall())}"
    if synced:
        return Check("clock", OK, f"synchronised ({how}); {now}", False)
    if synced is False:
        return Check("clock", WARN, f"not synchronised ({how}): window times may be wrong; "
                     f"enable NTP (timedatectl set-ntp true); {now}", False)
    return Check("clock", WARN, f"unknown: {how}; {now}: check that it is right", False)


# -- spool -----------------------------------------------------------------------------------------
def spool_need_bytes(cfg) -> int:
    """Room for a full spool (``max_age_s`` of windows, at most ``max_bytes`` of payloads), two
    model slots and a margin."""
    windows = cfg.spool.max_age_s / cfg.aggregate.window_s
    try:
        models = sum(p.stat().st_size for p in Path(cfg.models.dir).glob("*.tflite"))
    except OSError:
        models = 0
    spool = min(windows * SPOOL_BYTES_PER_WINDOW, 2 * cfg.spool.max_bytes)  # SQLite's overhead
    return int(spool + 2 * models + SPOOL_MARGIN_BYTES)


def _mb(n: float) -> str:
    return f"{n / 2**20:,.0f} MB"


def check_spool(cfg, disk_usage=shutil.disk_usage, access=os.access):
    """The spool's folder: writable (or creatable) by this user, with room for a full spool."""
    folder = Path(cfg.spool.path).parent
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    need = spool_need_bytes(cfg)
    try:
        free = disk_usage(existing).free
    except OSError as exc:
        return Check("spool", FAIL, f"{existing}: cannot read the free space: {exc}", True)
    room = f"{_mb(free)} free, a full spool needs about {_mb(need)}"
    if free < need:
        return Check("spool", FAIL, f"{folder}: only {room}", True)
    writable = access(existing, os.W_OK | os.X_OK)
    if existing == folder:
        if not writable:
            return Check("spool", FAIL, f"{folder}: not writable by this user", True)
        return Check("spool", OK, f"{folder}: writable; {room}", True)
    if not writable:
        return Check("spool", WARN, f"{folder} does not exist yet and this user cannot create it "
                     f"(systemd's StateDirectory= creates it when the service starts); {room}",
                     True)
    return Check("spool", OK, f"{folder}: not there yet, made at the first start; {room}", True)
