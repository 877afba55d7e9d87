"""Telling systemd how the appliance is doing (``sd_notify``), without a library.

Under ``Type=notify`` (``deploy/audience-kiosk.service``) systemd passes ``NOTIFY_SOCKET``; the
appliance sends ``READY=1`` once its models passed their self-test and the vision loop runs,
``STATUS=...`` lines that ``systemctl status`` shows, ``WATCHDOG=1`` from the vision loop (so a
hung loop is restarted after ``WatchdogSec``) and ``STOPPING=1`` on shutdown. Outside systemd
every call does nothing.
"""

from __future__ import annotations

import logging
import os
import socket
import time

log = logging.getLogger(__name__)


class Notifier:
    """Sends datagrams to ``$NOTIFY_SOCKET``; a no-op when it is unset.

    Args:
        environ: where ``NOTIFY_SOCKET`` and ``WATCHDOG_USEC`` are read (tests pass their own).
        clock: monotonic seconds, for spacing watchdog pings.
    """

    def __init__(self, environ=None, clock=time.monotonic):
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET", "")
        if address.startswith("@"):  # abstract namespace
            address = "\0" + address[1:]
        self.address = address or None
        usec = env.get("WATCHDOG_USEC", "")
        # ping at twice the rate systemd wants, so one slow frame does not trip it
        self.watchdog_s = int(usec) / 2e6 if usec.isdigit() and int(usec) > 0 else None
        self._clock, self._last_ping = clock, float("-inf")

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, *fields: str) -> bool:
        """Send ``KEY=value`` fields in one message; False when there is nobody to tell."""
        if self.address is None:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.sendto("\n".join(fields).encode(), self.address)
            return True
        except OSError as exc:  # systemd gone or the socket not ours: never fatal
            log.debug("sd_notify to %s failed: %s", self.address, exc)
            return False

    def ready(self, status: str) -> bool:
        return self.send("READY=1", f"STATUS={status}")

    def status(self, status: str) -> bool:
        return self.send(f"STATUS={status}")

    def stopping(self) -> bool:
        return self.send("STOPPING=1")

    def watchdog(self) -> bool:
        """Ping the watchdog if it is on and a ping is due; cheap enough for every frame."""
        if self.watchdog_s is None:
            return False
        now = self._clock()
        if now - self._last_ping < self.watchdog_s:
            return False
        self._last_ping = now
        return self.send("WATCHDOG=1")
