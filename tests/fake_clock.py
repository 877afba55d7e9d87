"""A clock the tests move by hand: monotonic and wall time, NTP sync and reboots."""

from __future__ import annotations


class FakeClock:
    """Stands in for :class:`device.clock.SystemClock`.

    ``advance`` moves both clocks (time passes); ``jump`` moves the wall clock only (NTP or a
    person setting it); ``synced`` is what ``trusted()`` answers.
    """

    def __init__(self, mono: float = 100.0, wall: float = 1_764_000_000.0, synced: bool = True,
                 boot_id: str = "boot-1"):
        self.mono, self.wall_t, self.synced, self.boot_id = mono, wall, synced, boot_id

    def monotonic(self) -> float:
        return self.mono

    def wall(self) -> float:
        return self.wall_t

    def trusted(self) -> bool:
        return self.synced

    def advance(self, seconds: float) -> None:
        self.mono += seconds
        self.wall_t += seconds

    def jump(self, seconds: float) -> None:
        self.wall_t += seconds
