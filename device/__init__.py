"""audience-kiosk: the on-device part of the appliance (camera to anonymous aggregates)."""

__version__ = "0.5.0"
