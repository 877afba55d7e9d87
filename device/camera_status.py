"""What the appliance says about its frame source: status message, status LED and systemd."""

from __future__ import annotations

import logging
from collections.abc import Callable

log = logging.getLogger(__name__)


class CameraStatus:
    """Reports the source's state and the frame rate to everyone who shows it.

    Args:
        board: the :class:`device.wiring.StatusBoard` behind the ``status`` message.
        health: the :class:`device.health.Health` that drives the status LED.
        notifier: the :class:`device.notify.Notifier` (systemd's status line).
        changed: ``changed()`` asks the publisher to send the status now.
        spec: the configured ``[source] spec``, for messages.
    """

    def __init__(self, board, health, notifier, changed: Callable[[], None], spec: str):
        self.board, self.health, self.notifier = board, health, notifier
        self._changed, self.spec = changed, spec

    def ok(self) -> None:
        """The source delivers frames (again)."""
        if self.board.get("camera") == "lost":
            log.info("source %s is back", self.spec)
        self.board.set(camera="ok", state="running", error=None)
        self._changed()
        self.health.update(camera="ok")
        self.notifier.status(f"counting from {self.spec}")

    def lost(self, exc: Exception, retry_s: float) -> None:
        log.error("source %s unavailable: %s; retrying in %.0f s", self.spec, exc, retry_s)
        self.board.set(camera="lost", error=f"source: {exc}", fps=0.0)
        self._changed()
        self.health.update(camera="lost")
        self.notifier.status(f"source {self.spec} unavailable ({exc}); retrying")

    def ended(self) -> None:
        log.info("source %s ended", self.spec)
        self.board.set(camera="ended")

    def fps(self, value: float, dropped: int = 0, lag_s: float = 0.0) -> None:
        """The loop's real frame rate, frames the source dropped for it, the last frame's lag."""
        self.board.set(fps=round(value, 2), frames_dropped=int(dropped), lag_s=round(lag_s, 3))

    def screen_line(self, fps: float) -> dict:
        """The status corner of the kiosk screen."""
        return {"fps": round(fps, 1), "accelerator": self.board.get("accelerator"),
                "model_version": self.board.get("model_version")}
