"""When the kiosk may believe its wall clock: the seam every window stamp goes through.

A Raspberry Pi has no battery-backed clock. It boots with the time of its last shutdown
(fake-hwclock) or 1970 until NTP synchronises, which can take minutes, or never happen in a shop
whose network blocks NTP. Windows are therefore timed on the monotonic clock and stamped with
wall-clock time only once the clock is *trusted*:

* ``[clock] trusted = true`` (a battery-backed RTC, or a clock that another service vouches for);
* or systemd-timesyncd has synchronised (it creates ``/run/systemd/timesync/synchronized``);
* or ``timedatectl show -p NTPSynchronized --value`` says ``yes`` (chrony, ntpd: the kernel's
  own "synchronised" flag);
* or ``timedatectl`` cannot answer at all (no systemd: a container, a development machine): the
  kiosk cannot tell, and believes its clock as it always did (logged once). On the Raspberry Pi
  OS image the kiosk ships for, systemd always answers.

The checks run at most every ``check_s`` seconds and only until the clock is trusted; from then on
it stays trusted for the life of the process (a synchronised kernel clock keeps good time when
NTP goes away for a while). ``boot_id`` ties monotonic readings to one boot: they mean nothing
after a reboot.
"""

from __future__ import annotations

import logging
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

SYNC_FILE = Path("/run/systemd/timesync/synchronized")
BOOT_ID_FILE = Path("/proc/sys/kernel/random/boot_id")
CHECK_S = 30.0


def timedatectl_synced(timeout_s: float = 2.0) -> bool | None:
    """``timedatectl``'s NTPSynchronized: True (yes), False (no), None when it cannot answer."""
    try:
        out = subprocess.run(["timedatectl", "show", "-p", "NTPSynchronized", "--value"],
                             capture_output=True, text=True, timeout=timeout_s, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0 or out.stdout.strip() not in ("yes", "no"):
        return None  # no systemd, or timedated not reachable
    return out.stdout.strip() == "yes"


def read_boot_id(path: Path = BOOT_ID_FILE) -> str:
    """This boot's id (Linux); a fresh random one per process elsewhere."""
    try:
        return path.read_text().strip() or uuid.uuid4().hex
    except OSError:
        return uuid.uuid4().hex


class SystemClock:
    """The device's clocks, and whether its wall clock is trusted yet.

    Args:
        trusted: the wall clock is right from boot (``[clock] trusted``): skip the checks.
        sync_file: the file timesyncd creates once synchronised.
        ask: ``() -> bool | None``, the fallback question (``timedatectl``); None: no answer.
        check_s: seconds between checks while the clock is not trusted.
        monotonic, wall: the clocks themselves (seconds).
    """

    def __init__(self, trusted: bool = False, sync_file: Path = SYNC_FILE,
                 ask: Callable[[], bool | None] = timedatectl_synced, check_s: float = CHECK_S,
                 monotonic: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time, boot_id: str | None = None):
        self._trusted, self.sync_file, self._ask, self.check_s = trusted, sync_file, ask, check_s
        self.monotonic, self.wall = monotonic, wall
        self.boot_id = boot_id or read_boot_id()
        self._next_check = float("-inf")

    def trusted(self) -> bool:
        """Whether wall-clock time may be written on a window now (cheap: cached)."""
        if self._trusted:
            return True
        now = self.monotonic()
        if now < self._next_check:
            return False
        self._next_check = now + self.check_s
        if self.sync_file.exists():
            self._trusted = True
        else:
            answer = self._ask()
            if answer is None:
                log.warning("cannot tell whether the wall clock is synchronised (no systemd "
                            "answers): trusting it")
            self._trusted = answer is not False
        if self._trusted:
            log.info("the wall clock is trusted: windows are stamped with it")
        return self._trusted
