"""The appliance's configuration: strict TOML into frozen dataclasses.

Every section is a dataclass below; its fields are the only keys allowed. Unknown keys, wrong
types and bad values stop the appliance with a :class:`ConfigError` that names the key, in the
spirit of Frigate's ``--validate-config``::

    ConfigError: [mqtt] prot: unknown key (did you mean 'port'?)

Relative paths in a file are taken relative to that file's folder. Values that depend on others
(``mqtt.prefix``, ``mqtt.client_id``, ``spool.path``, ``privacy.snapshot_dir``) are filled in by
:func:`load_config` once the file and the command-line overrides are merged.
"""

from __future__ import annotations

import re
import socket
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path

from device.errors import ConfigError
from device.models import MODELS_DIR
from device.sources.spec import parse_spec
from device.strict import StrictLoader

DEVICE_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


def _check(fn, message):
    return {"check": fn, "message": message}


POSITIVE = _check(lambda v: v > 0, "must be greater than 0")
NON_NEGATIVE = _check(lambda v: v >= 0, "must be 0 or more")
# seconds between analyses of one tracked face ([models] reanalyze_s; python -m tools.reanalyze)
REANALYZE_S = 0.1
PROBABILITY = _check(lambda v: 0 <= v <= 1, "must be between 0 and 1")
PORT = _check(lambda v: 0 < v < 65536, "must be a TCP port (1-65535)")
GPIO = _check(lambda v: v is None or 0 <= v <= 27, "must be a BCM GPIO number (0-27)")


@dataclass(frozen=True)
class DeviceConfig:
    id: str = field(default="", metadata=_check(
        lambda v: v == "" or DEVICE_ID_RE.match(v), "must be letters, digits, '-' or '_'"))
    name: str = ""  # shown in Home Assistant; defaults to the id


def _source_spec(value: str) -> bool:
    parse_spec(value)  # ValueError names what is wrong
    return True


@dataclass(frozen=True)
class SourceConfig:
    # auto | picamera[:N] | camera:N | camera:/dev/videoN | demo | a video, image or folder path
    spec: str = field(default="auto", metadata={"check": _source_spec})
    loop: bool = False
    pace: bool = False
    retry_max_s: float = field(default=30.0, metadata=POSITIVE)  # camera-lost backoff cap


def _detector_variant(value: str) -> bool:
    """'' or a detector variant whose int8 file is installed (ValueError saying which are)."""
    if value == "":
        return True
    from device.detector import DETECTOR_VARIANTS, default_detector_path

    if value not in DETECTOR_VARIANTS:
        raise ValueError(f"unknown detector variant {value!r}; choose from "
                         f"{', '.join(sorted(DETECTOR_VARIANTS))} (or leave it empty)")
    path = default_detector_path(value)
    if not path.is_file():
        installed = [n for n in sorted(DETECTOR_VARIANTS) if default_detector_path(n).is_file()]
        raise ValueError(f"the {value!r} detector is not installed ({path.name} is missing); "
                         f"installed: {', '.join(installed) or 'none'}")
    return True


@dataclass(frozen=True)
class ModelsConfig:
    dir: str = ""  # "" = the models/ folder installed with the package
    threads: int = field(default=1, metadata=POSITIVE)
    # "" = the installed models' own detector (manifest); else a variant whose file is installed
    detector_variant: str = field(default="", metadata={"check": _detector_variant})
    # tiles per side on large frames: "auto" (none below 720 px, 2x2 to 1200 px, then 3x3) or 1-4
    detector_tiles: str = field(default="auto", metadata=_check(
        lambda v: v == "auto" or v in ("1", "2", "3", "4"), "must be 'auto' or 1, 2, 3, 4"))
    analyze_every: int = field(default=1, metadata=POSITIVE)
    # a tracked face is analysed again only this many seconds after its last analysis (new
    # faces at once); 0 = every face on every frame
    reanalyze_s: float = field(default=REANALYZE_S, metadata=NON_NEGATIVE)
    # average each face with its mirror image: "auto" = as the installed models' manifest says
    # (how their accuracy was measured); "off" halves the attribute model's time per face
    mirror_average: str = field(default="auto", metadata=_check(
        lambda v: v in ("auto", "on", "off"), "must be 'auto', 'on' or 'off'"))

    @property
    def analyzer_flip(self) -> bool | None:
        return {"auto": None, "on": True, "off": False}[self.mirror_average]


@dataclass(frozen=True)
class TrackingConfig:
    """Passed to :class:`device.tracking.Tracker` (same names)."""

    iou_threshold: float = field(default=0.3, metadata=PROBABILITY)
    max_missed_s: float = field(default=1.0, metadata=POSITIVE)
    min_hits: int = field(default=2, metadata=POSITIVE)
    max_center_dist: float = field(default=1.0, metadata=POSITIVE)
    attention_yaw: float | None = field(default=None, metadata=POSITIVE)  # None: tracker default


@dataclass(frozen=True)
class AggregateConfig:
    window_s: float = field(default=60.0, metadata=_check(lambda v: v >= 0.5, "must be >= 0.5"))
    min_dwell_s: float = field(default=1.0, metadata=NON_NEGATIVE)
    k_anonymity: int = field(default=3, metadata=POSITIVE)
    min_gender_prob: float = field(default=0.7, metadata=PROBABILITY)
    min_emotion_prob: float = field(default=0.4, metadata=PROBABILITY)
    age_groups: list[str] | None = None  # None: the groups the installed model declares


@dataclass(frozen=True)
class TlsConfig:
    enabled: bool = True
    ca_file: str | None = None  # None: the system's CA store
    cert_file: str | None = None
    key_file: str | None = None
    insecure: bool = False  # skip host-name verification (test rigs only)


@dataclass(frozen=True)
class MqttConfig:
    host: str = ""  # "" = no broker: windows are spooled and logged
    port: int = field(default=1883, metadata=PORT)
    prefix: str = ""  # "" = kiosk/<device id>/
    client_id: str = ""  # "" = audience-kiosk-<device id>
    keepalive: int = field(default=30, metadata=_check(lambda v: v >= 5, "must be >= 5"))
    tls: TlsConfig | None = None
    username: str | None = None
    password_file: str | None = None
    password_env: str | None = None
    qos: int = field(default=1, metadata=_check(lambda v: v in (1, 2), "must be 1 or 2"))
    status_s: float = field(default=10.0, metadata=POSITIVE)
    reconnect_max_s: float = field(default=30.0, metadata=_check(lambda v: v >= 1, "must be >= 1"))
    discovery: bool = True
    discovery_prefix: str = "homeassistant"
    # Home Assistant's "visit" link on the device page ("" = none); http(s)://...
    configuration_url: str = field(default="", metadata=_check(
        lambda v: v == "" or re.match(r"^https?://[^\s/]+", v),
        "must be an http:// or https:// URL"))


@dataclass(frozen=True)
class SpoolConfig:
    path: str = ""  # "" = <state dir>/spool.db
    max_age_s: float = field(default=7 * 86400.0, metadata=POSITIVE)
    # payload bytes kept at most; the oldest windows are dropped (and counted) beyond it
    max_bytes: int = field(default=32 * 1024 * 1024, metadata=_check(
        lambda v: v >= 4096, "must be at least 4096"))


@dataclass(frozen=True)
class ClockConfig:
    # true: the wall clock is right from boot (a battery-backed RTC); false: wait for NTP
    # (timesyncd's synchronized file or timedatectl's NTPSynchronized) before stamping windows
    trusted: bool = False
    hold_s: float = field(default=3600.0, metadata=NON_NEGATIVE)  # then send them marked


@dataclass(frozen=True)
class DisplayConfig:
    # auto: the Pi camera's DRM view with the Pi camera, else the framebuffer /dev/fb0 if any
    sink: str = field(default="none", metadata=_check(
        lambda v: v in ("none", "drm", "auto") or (v.startswith(("png:", "fb:")) and len(v) > 4)
        or v == "fb",
        "must be 'auto', 'drm', 'fb:/dev/fbN', 'png:PATH' or 'none'"))
    blur_faces: bool = True
    png_every: int = field(default=5, metadata=POSITIVE)  # png sink: write every N-th shown frame
    max_fps: float = field(default=15.0, metadata=POSITIVE)  # screen refreshes per second at most
    # wider camera frames are shrunk before drawing; 0: never
    max_width: int = field(default=1280, metadata=NON_NEGATIVE)


@dataclass(frozen=True)
class LedsConfig:
    status_pin: int | None = field(default=None, metadata=GPIO)
    presence_pin: int | None = field(default=None, metadata=GPIO)
    rgb_pins: list[int] | None = field(default=None, metadata=_check(
        lambda v: v is None or (len(v) == 3 and all(0 <= p <= 27 for p in v)),
        "must be three BCM GPIO numbers [r, g, b]"))


@dataclass(frozen=True)
class PrivacyConfig:
    debug_snapshots: bool = False
    snapshot_dir: str = ""  # "" = <state dir>/snapshots


@dataclass(frozen=True)
class ProvisioningConfig:
    trusted_keys: list[str] = field(default_factory=list)
    health_s: float = field(default=120.0, metadata=POSITIVE)
    allow_downgrade: bool = False


@dataclass(frozen=True)
class StateConfig:
    dir: str = "/var/lib/audience-kiosk"


@dataclass(frozen=True)
class Config:
    device: DeviceConfig = DeviceConfig()
    source: SourceConfig = SourceConfig()
    models: ModelsConfig = ModelsConfig()
    tracking: TrackingConfig = TrackingConfig()
    aggregate: AggregateConfig = AggregateConfig()
    mqtt: MqttConfig = MqttConfig()
    spool: SpoolConfig = SpoolConfig()
    clock: ClockConfig = ClockConfig()
    display: DisplayConfig = DisplayConfig()
    leds: LedsConfig = LedsConfig()
    privacy: PrivacyConfig = PrivacyConfig()
    provisioning: ProvisioningConfig = ProvisioningConfig()
    state: StateConfig = StateConfig()
    path: str | None = field(default=None, metadata={"internal": True})  # the file it came from

    @property
    def prefix(self) -> str:
        return self.mqtt.prefix


# Keys that hold file system paths (resolved against the config file's folder).
PATH_KEYS = {("models", "dir"), ("spool", "path"), ("privacy", "snapshot_dir"), ("state", "dir"),
             ("mqtt", "password_file"), ("tls", "ca_file"), ("tls", "cert_file"),
             ("tls", "key_file"), ("provisioning", "trusted_keys")}
HINTS = {("mqtt", "password"): "passwords are never written in the config: use password_file "
                               "or password_env"}


def resolve_sink(sink: str, base: Path | None) -> str:
    """A ``png:`` display path relative to ``base`` (the config file's folder, or the cwd)."""
    if not sink.startswith("png:"):
        return sink
    target = Path(sink[4:])
    return "png:" + str(target if target.is_absolute() else (base or Path.cwd()) / target)


def parse_config(raw: dict, base: Path | None = None, path: str | None = None) -> Config:
    """Validate an already-parsed TOML mapping (no defaults filled in yet)."""
    loader = StrictLoader(base=base, path_keys=PATH_KEYS, hints=HINTS)
    cfg = Config(**loader.sections(Config, raw), path=path)
    if base is not None:
        cfg = replace(cfg, display=replace(cfg.display, sink=resolve_sink(cfg.display.sink, base)))
    return cfg


def apply_overrides(raw: dict, overrides: dict[str, object]) -> dict:
    """Return a copy of ``raw`` with dotted keys (``"mqtt.host"``) set; values checked later."""
    merged = {k: dict(v) if isinstance(v, dict) else v for k, v in raw.items()}
    for dotted, value in overrides.items():
        section, key = dotted.split(".", 1)
        merged.setdefault(section, {})
        if not isinstance(merged[section], dict):
            raise ConfigError(f"[{section}]: must be a table")
        merged[section][key] = value
    return merged


def default_device_id() -> str:
    host = re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname()) or "kiosk"
    return host[:64].strip("-") or "kiosk"


def check_screen(sink: str, spec: str) -> None:
    """Refuse a screen that the source can never feed (ConfigError naming both keys)."""
    if sink == "drm" and parse_spec(spec).kind != "picamera":
        raise ConfigError(
            f"[display] sink = 'drm' draws over the Pi camera's own preview, so it needs "
            f"[source] spec = 'picamera' (got [source] spec = {spec!r}); use sink = 'auto' "
            "(the DRM view when the Pi camera runs, else the framebuffer) or 'fb:/dev/fb0'")


def finish(cfg: Config) -> Config:
    """Fill in the values that depend on others (device id, prefix, paths under the state dir)."""
    dev_id = cfg.device.id or default_device_id()
    device = replace(cfg.device, id=dev_id, name=cfg.device.name or dev_id)
    prefix = cfg.mqtt.prefix or f"kiosk/{dev_id}/"
    if not prefix.endswith("/"):
        prefix += "/"
    if "#" in prefix or "+" in prefix:
        raise ConfigError(f"[mqtt] prefix: must not contain MQTT wildcards (got {prefix!r})")
    mqtt = replace(cfg.mqtt, prefix=prefix,
                   client_id=cfg.mqtt.client_id or f"audience-kiosk-{dev_id}")
    if mqtt.password_file and mqtt.password_env:
        raise ConfigError("[mqtt] password_file: give password_file or password_env, not both")
    if (mqtt.password_file or mqtt.password_env) and not mqtt.username:
        raise ConfigError("[mqtt] username: required when a password is configured")
    if cfg.display.sink.startswith("png:") and not (cfg.display.blur_faces
                                                      or cfg.privacy.debug_snapshots):
        raise ConfigError("[display] blur_faces: must stay true for a png: display (it writes "
                          "frames to disk) unless [privacy] debug_snapshots = true")
    check_screen(cfg.display.sink, cfg.source.spec)
    state = Path(cfg.state.dir)
    spool = replace(cfg.spool, path=cfg.spool.path or str(state / "spool.db"))
    snapshots = cfg.privacy.snapshot_dir or str(state / "snapshots")
    privacy = replace(cfg.privacy, snapshot_dir=snapshots)
    models = replace(cfg.models, dir=cfg.models.dir or str(MODELS_DIR))
    return replace(cfg, device=device, mqtt=mqtt, spool=spool, privacy=privacy, models=models)


def read_toml(path: str | Path) -> dict:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: no such config file") from exc
    except UnicodeDecodeError as exc:  # TOML is UTF-8; an editor may have saved Latin-1
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.object[exc.start]:#04x} at "
                          f"offset {exc.start}); save the file as UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from exc


def load_config(path: str | Path | None = None,
                overrides: dict[str, object] | None = None) -> Config:
    """Read, validate and complete the configuration.

    Args:
        path: the TOML file; None for defaults only.
        overrides: dotted keys from the command line, e.g. ``{"mqtt.host": "broker"}``. They are
            checked like file values; relative paths in them are taken from the current folder.
    Raises:
        ConfigError: naming the first bad key.
    """
    raw = read_toml(path) if path is not None else {}
    base = Path(path).resolve().parent if path is not None else None
    cfg = parse_config(raw, base, str(path) if path is not None else None)
    if overrides:
        touched = {k.split(".", 1)[0] for k in overrides}
        merged = parse_config(apply_overrides(raw, overrides), base)
        cfg = replace(cfg, **{s: getattr(merged, s) for s in touched})
        # override values that are paths come from the command line: relative to the cwd
        for dotted, value in overrides.items():
            section, key = dotted.split(".", 1)
            if (section, key) in PATH_KEYS and isinstance(value, str):
                sect = replace(getattr(cfg, section), **{key: str(Path(value).absolute())})
                cfg = replace(cfg, **{section: sect})
            elif dotted == "display.sink" and isinstance(value, str):
                cfg = replace(cfg, display=replace(cfg.display, sink=resolve_sink(value, None)))
    return finish(cfg)


def check_config_main(path: str | Path, overrides: dict[str, object] | None = None,
                      out=None) -> int:
    """``kiosk check-config FILE``: validate and print the effective configuration.

    Returns 0 when valid, 2 when not (the message names the key). Secrets are never printed.
    """
    import sys

    from device.config_dump import to_toml

    out = out or sys.stdout
    try:
        cfg = load_config(path, overrides)
    except ConfigError as exc:
        print(f"ConfigError: {exc}", file=sys.stderr)
        return 2
    print(f"# {path}: valid. Effective configuration (defaults filled in):", file=out)
    print(to_toml(cfg), file=out)
    return 0
