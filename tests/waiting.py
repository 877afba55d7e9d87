"""Waiting in tests on what happened, not for a fixed time."""

from __future__ import annotations

import time


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.01) -> bool:
    """Check ``predicate()`` until it is true (True) or ``timeout`` seconds pass (False).

    For state that gives no notification (a pin a gpiozero thread toggles, a spool row another
    thread deletes): the test waits exactly as long as it takes, and the timeout is only the
    point where it gives up.
    """
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= end:
            return False
        time.sleep(interval)
    return True
