"""The display thread: the vision loop hands it frames and never waits for the screen.

The hand-over is a one-slot mailbox that keeps only the newest item (drop-oldest): a slow screen
shows fewer frames, it never slows the counting down. Debug snapshots (only when
``[privacy] debug_snapshots = true``) are written from here too.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import cv2

from device.errors import DisplayError

log = logging.getLogger(__name__)


class Mailbox:
    """A bounded queue of one: ``put`` replaces what is there (counted in ``dropped``)."""

    def __init__(self):
        self._cond = threading.Condition()
        self._item = None
        self._closed = False
        self.dropped = 0

    def put(self, item) -> None:
        with self._cond:
            if self._item is not None:
                self.dropped += 1
            self._item = item
            self._cond.notify()

    def get(self, timeout: float | None = None):
        """The newest item, or None on timeout or after ``close``."""
        with self._cond:
            if self._item is None and not self._closed:
                self._cond.wait(timeout)
            item, self._item = self._item, None
            return item

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()


def track_view(track) -> SimpleNamespace:
    """A frozen copy of what ``render`` reads from a live track (the tracker keeps mutating it)."""
    return SimpleNamespace(track_id=track.track_id, box=tuple(track.box),
                           facing=bool(getattr(track, "facing", True)),
                           smoothed=getattr(track, "smoothed", None), attributes=None)


def fit_width(image, tracks, boxes, max_width: int):
    """Shrink a frame wider than ``max_width`` (and the boxes drawn on it) before rendering.

    A 1080p camera frame drawn at full size costs the display thread (and, through the GIL, the
    vision loop) several times what a screen-sized one does; screens are rarely wider.
    Returns (image, tracks, boxes), unchanged when the frame is narrow enough.
    """
    h, w = image.shape[:2]
    if not max_width or w <= max_width:
        return image, tracks, boxes
    f = max_width / w
    small = cv2.resize(image, (max_width, round(h * f)), interpolation=cv2.INTER_LINEAR)

    def scale(box):
        return tuple(float(v) * f for v in getattr(box, "box", box))

    tracks = [SimpleNamespace(**{**vars(t), "box": scale(t.box)}) for t in tracks]
    return small, tracks, [scale(b) for b in boxes]


class DisplayWorker:
    """Renders and shows frames on its own thread.

    Args:
        sink: an open :class:`device.display.DisplaySink`, or a :class:`device.screen.Screen`
            that opens one over the source (``attach``) and retries it when it is missing.
        render: ``render(frame, tracks, snapshot, status, blur_faces=, blur_boxes=)``.
        blur_faces: pixelate faces on screen.
        snapshot_dir: where debug snapshots go (None: never written).
        snapshot_every_s: seconds between debug snapshots; at most ``snapshot_keep`` are kept.
        max_fps: screen refreshes per second at most; frames offered faster are skipped on the
            vision thread before any work is done for them (a screen needs ~15, the vision loop
            runs far faster, and rendering every frame would take CPU time from it).
        max_width: camera frames wider than this are shrunk before rendering (0: never).
    """

    def __init__(self, sink, render, blur_faces: bool = True, snapshot_dir: str | None = None,
                 snapshot_every_s: float = 60.0, snapshot_keep: int = 20, max_fps: float = 15.0,
                 max_width: int = 1280, clock=time.monotonic):
        self.sink, self.render, self.blur_faces = sink, render, blur_faces
        self.snapshot_dir = Path(snapshot_dir) if snapshot_dir else None
        self.snapshot_every_s, self.snapshot_keep = snapshot_every_s, snapshot_keep
        self._next_snapshot = 0.0
        self.mailbox = Mailbox()
        self.shown = 0
        self.min_interval = 1.0 / max_fps if max_fps > 0 else 0.0
        self.max_width = max_width
        self._clock, self._last_submit = clock, float("-inf")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="display", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def due(self) -> bool:
        """True when a frame offered now would be shown (callers skip preparing it otherwise)."""
        if self.snapshot_dir is None and not getattr(self.sink, "wants_frames", True):
            return False  # no screen and no snapshots: nothing to draw for
        return self._clock() - self._last_submit >= self.min_interval

    def attach(self, source) -> None:
        """The frame source (re)opened: a screen drawn over the camera follows it."""
        attach = getattr(self.sink, "attach", None)
        if attach is not None:
            attach(source)

    def submit(self, image, tracks, snapshot: dict | None, status: dict, blur_boxes=()) -> None:
        """Queue a frame for the screen; replaces an older one not yet shown. Never blocks.

        Frames arriving within ``1 / max_fps`` of the last one queued are dropped at once.
        """
        if not self.due():
            return
        self._last_submit = self._clock()
        self.mailbox.put((image, [track_view(t) for t in tracks], snapshot, status,
                          list(blur_boxes)))

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        self.mailbox.close()
        self._thread.join(timeout)
        try:
            self.sink.close()
        except (DisplayError, OSError) as exc:
            log.warning("display: closing failed: %s", exc)

    def _run(self) -> None:
        while not self._stop.is_set():
            item = self.mailbox.get(timeout=0.5)
            if item is None:
                continue
            image, tracks, snapshot, status, boxes = item
            try:
                image, tracks, boxes = fit_width(image, tracks, boxes, self.max_width)
                screen = self.render(image, tracks, snapshot, status, blur_faces=self.blur_faces,
                                     blur_boxes=boxes)
                self.sink.show(screen)
                self.shown += 1
                self._maybe_snapshot(screen)
            except (DisplayError, OSError) as exc:
                log.error("display %s failed (%s); continuing without a screen",
                          getattr(self.sink, "type_key", "?"), exc)
                from device.display import NullSink

                self.sink = NullSink()
            except Exception:  # a drawing bug must not end the display thread silently
                log.exception("display: rendering failed")

    def _maybe_snapshot(self, screen) -> None:
        now = time.monotonic()
        if self.snapshot_dir is None or now < self._next_snapshot:
            return
        self._next_snapshot = now + self.snapshot_every_s
        try:
            self._snapshot(screen)
        except OSError as exc:  # a full card: no snapshot this time, the screen goes on
            log.warning("debug snapshot not written: %s", exc)

    def _snapshot(self, screen) -> None:
        self.snapshot_dir.mkdir(parents=True, exist_ok=True)
        name = time.strftime("snapshot-%Y%m%dT%H%M%S.png", time.gmtime())
        cv2.imwrite(str(self.snapshot_dir / name), screen)
        for old in sorted(self.snapshot_dir.glob("snapshot-*.png"))[:-self.snapshot_keep]:
            old.unlink(missing_ok=True)
