"""Errors of the fleet side; each is also the matching built-in exception."""

from __future__ import annotations

from device.errors import KioskError


class FleetError(KioskError):
    """Anything the fleet tools report to the operator."""


class BadMessage(FleetError, ValueError):
    """A payload that is not what the kiosk interface promises; the message names the field."""


class StoreUnavailable(FleetError, ConnectionError):
    """The database cannot be reached (restarting, network); the write can be tried again."""


class BadDatabaseUrl(FleetError, ValueError):
    """``--db`` is neither ``sqlite:PATH`` nor ``postgresql://...``."""


class MissingExtra(FleetError, ImportError):
    """A back-end needs a dependency of the ``fleet`` extra that is not installed."""
