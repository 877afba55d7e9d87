"""Per-kiosk gap tracking over window sequence numbers (pure functions, no I/O).

A kiosk numbers its windows 1, 2, 3, ... and re-sends until its broker acknowledges, so a missing
``seq`` is a window still on its way (an outage, a replay, two ingest workers finishing out of
order) or one the kiosk's spool dropped for age. The store keeps, per kiosk, the span of stored
numbers (lowest, highest) and a list of gaps: ranges of missing numbers, each with the time it
was detected and, once every number in it has arrived, the time it was filled.

When a window arrives that the store did not have, :func:`track` says how the span and the
gaps change. A gap being filled one number at a time is split into its open rest and a filled
part; filled parts of one gap next to each other are merged, so a replayed outage ends as one
filled row.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Gap:
    """Missing numbers ``first..last`` (inclusive) of one kiosk."""

    first: int
    last: int
    detected_at: float
    filled_at: float | None = None

    @property
    def open(self) -> bool:
        return self.filled_at is None

    @property
    def size(self) -> int:
        return self.last - self.first + 1


@dataclass(frozen=True)
class Span:
    """The lowest and highest ``seq`` stored for a kiosk (None before its first window)."""

    low: int | None = None
    high: int | None = None


@dataclass(frozen=True)
class Change:
    """What :func:`track` decided: the new span, gap rows to remove and rows to add."""

    span: Span
    remove: tuple[Gap, ...] = ()
    add: tuple[Gap, ...] = ()


def track(span: Span, near: list[Gap], seq: int, now: float) -> Change:
    """A new window ``seq`` arrived at ``now``.

    Args:
        span: the kiosk's stored span before this window.
        near: the kiosk's gap rows that touch ``seq - 1 .. seq + 1`` (others may be left out).
        seq: the window's number; the caller has checked it was not stored before.
        now: the arrival time, recorded in new and filled gaps.
    """
    if span.low is None or span.high is None:
        return Change(Span(seq, seq))
    if seq > span.high:
        opened = (Gap(span.high + 1, seq - 1, now),) if seq > span.high + 1 else ()
        return Change(Span(span.low, seq), add=opened)
    if seq < span.low:
        opened = (Gap(seq + 1, span.low - 1, now),) if seq < span.low - 1 else ()
        return Change(Span(seq, span.high), add=opened)
    return _fill(span, near, seq, now)


def _fill(span: Span, near: list[Gap], seq: int, now: float) -> Change:
    hole = next((g for g in near if g.open and g.first <= seq <= g.last), None)
    if hole is None:  # not missing as far as the rows know: nothing to change
        return Change(span)
    remove, add = [hole], []
    if hole.first < seq:
        add.append(replace(hole, last=seq - 1))
    if seq < hole.last:
        add.append(replace(hole, first=seq + 1))
    filled = Gap(seq, seq, hole.detected_at, now)
    for g in near:
        if g.open or g.detected_at != hole.detected_at:
            continue
        if g.last == filled.first - 1 or g.first == filled.last + 1:
            remove.append(g)
            filled = Gap(min(g.first, filled.first), max(g.last, filled.last), g.detected_at,
                         max(g.filled_at, filled.filled_at))
    return Change(span, tuple(remove), (*add, filled))


def missing(gaps: list[Gap]) -> int:
    """How many numbers are still missing."""
    return sum(g.size for g in gaps if g.open)


def missing_ranges(seqs: list[int]) -> list[tuple[int, int]]:
    """The ranges missing between the lowest and highest of ``seqs`` (any order, repeats ok).

    The same answer as the open gaps that :func:`track` keeps, computed from scratch; used to
    check a store and by the load test.
    """
    out, prev = [], None
    for s in sorted(set(seqs)):
        if prev is not None and s > prev + 1:
            out.append((prev + 1, s - 1))
        prev = s
    return out
