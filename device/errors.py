"""The project's exceptions.

Each one is also the matching built-in (gpiozero's habit), so callers may catch either
``KioskError`` or the familiar ``ValueError``/``OSError``/``RuntimeError``.
"""


class KioskError(Exception):
    """Root of every error the appliance raises on purpose."""


class ConfigError(KioskError, ValueError):
    """A configuration file or option is wrong; the message names the key."""


class SourceError(KioskError, OSError):
    """A frame source cannot be opened or stopped delivering frames."""


class FrameDecodeError(SourceError):
    """One frame or image could not be decoded (corrupt or not an image)."""


class ModelError(KioskError, RuntimeError):
    """A model file is missing, unreadable or not what the manifest says."""


class NoAttributeModel(ModelError):
    """No multi-head attribute model is installed; attributes cannot be given."""


class DisplayError(KioskError, OSError):
    """A display sink cannot be opened or written."""


class BundleError(KioskError, ValueError):
    """A model bundle is unsigned, damaged, untrusted or otherwise not acceptable."""
