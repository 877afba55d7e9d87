"""Drawing the kiosk screen: camera image, face boxes and labels, side panel, privacy notice.

The output is the camera frame with a side panel on its right and a notice band below both::

    +-------------------------+---------+
    |  camera (faces boxed,   |  window |
    |  optionally pixelated)  |  stats  |
    +-------------------------+---------+
    |  permanent notice (anonymous, emotion recognition)  |
    +---------------------------------------------------+

Sizes scale with the frame height (unit = height / 360), so text reads the same at 640x360 and
1080p. Nothing here keeps or writes an image; sinks decide where the result goes.
"""

from __future__ import annotations

import cv2
import numpy as np

from device.display.base import validate_image

# EU AI Act art. 50(3): people exposed to emotion recognition must be told. Always drawn.
NOTICE_LINES = (
    "Anonymous audience analysis: no image is stored or sent.",
    "Emotion recognition is in use (age, gender and emotion are estimated).",
)
FONT = cv2.FONT_HERSHEY_SIMPLEX
WHITE, GREY, BLACK = (255, 255, 255), (170, 170, 170), (0, 0, 0)
FACING, AWAY = (80, 220, 80), (0, 170, 255)  # box colours: looking at the screen or not
PANEL_BG, NOTICE_BG = (40, 32, 28), (90, 40, 0)


def layout(height: int) -> dict:
    """Sizes for a frame ``height`` pixels tall: font scale, thickness, line, panel, band."""
    u = max(height, 240) / 360.0
    return {"font": 0.45 * u, "thick": max(1, round(u)), "line": round(17 * u),
            "pad": round(6 * u), "panel": round(220 * u), "notice": round(2 * 17 * u + 10 * u)}


def fit_scale(text: str, scale: float, thick: int, max_width: int) -> float:
    """The largest scale up to ``scale`` at which ``text`` fits in ``max_width`` pixels."""
    width = cv2.getTextSize(text, FONT, scale, thick)[0][0]
    return scale if width <= max_width else scale * max_width / width


def _text(img, text, org, scale, thick, colour=WHITE, max_width=None):
    if max_width:
        scale = fit_scale(text, scale, thick, max_width)
    cv2.putText(img, text, org, FONT, scale, colour, thick, cv2.LINE_AA)


def _clip_box(box, shape, margin=0.0):
    x1, y1, x2, y2 = (float(v) for v in box)
    mx, my = (x2 - x1) * margin, (y2 - y1) * margin
    h, w = shape[:2]
    return (int(max(0, x1 - mx)), int(max(0, y1 - my)),
            int(min(w, np.ceil(x2 + mx))), int(min(h, np.ceil(y2 + my))))


def pixelate(img: np.ndarray, box, blocks: int = 6) -> None:
    """Replace ``box`` (grown by 15%) in ``img`` by a ``blocks`` x ``blocks`` mosaic, in place."""
    x1, y1, x2, y2 = _clip_box(box, img.shape, margin=0.15)
    if x2 - x1 < 1 or y2 - y1 < 1:
        return
    roi = img[y1:y2, x1:x2]
    small = cv2.resize(roi, (min(blocks, roi.shape[1]), min(blocks, roi.shape[0])),
                       interpolation=cv2.INTER_AREA)
    img[y1:y2, x1:x2] = cv2.resize(small, (roi.shape[1], roi.shape[0]),
                                   interpolation=cv2.INTER_NEAREST)


GENDER_MARKS = {"female": "F", "male": "M"}  # anything else (gender not told): "?"


def face_label(track) -> str:
    """"25-37 F happy" from a track's smoothed (else latest) attributes ("0-2 ? happy" when the
    gender is not told); "" when none yet."""
    attrs = getattr(track, "smoothed", None) or getattr(track, "attributes", None)
    if attrs is None:
        return ""
    return f"{attrs.age_group} {GENDER_MARKS.get(attrs.gender, '?')} {attrs.emotion}"


def _draw_face(img, track, lay) -> None:
    x1, y1, x2, y2 = _clip_box(track.box, img.shape)
    colour = FACING if getattr(track, "facing", True) else AWAY
    cv2.rectangle(img, (x1, y1), (x2, y2), colour, lay["thick"] + 1)
    label = face_label(track)
    if label:  # dark text on a tag in the box colour, above the box (below at the top edge)
        scale = fit_scale(label, lay["font"], lay["thick"], max(1, img.shape[1] - x1))
        (tw, th), base = cv2.getTextSize(label, FONT, scale, lay["thick"])
        top = y1 - th - base - lay["pad"] if y1 - th - base - lay["pad"] >= 0 else y2
        cv2.rectangle(img, (x1, top), (x1 + tw + lay["pad"], top + th + base + lay["pad"]),
                      colour, cv2.FILLED)
        _text(img, label, (x1 + lay["pad"] // 2, top + th + lay["pad"] // 2), scale,
              lay["thick"], BLACK)


def _pairs(counts: dict, per_line: int) -> list[str]:
    items = [f"{k} {v}" for k, v in counts.items() if v]  # zeros left out to save lines
    return ["  ".join(items[i:i + per_line]) for i in range(0, len(items), per_line)] or ["-"]


def panel_lines(tracks, snapshot) -> list[tuple[str, tuple]]:
    """The side panel's (text, colour) lines for the live tracks and the window snapshot."""
    lines = [("AUDIENCE (this window)", WHITE), (f"faces now     {len(tracks)}", WHITE)]
    if not snapshot:
        return lines + [("no window data yet", GREY)]

    def secs(v):
        return "-" if v is None else f"{v:.1f} s"

    lines += [(f"seen {snapshot.get('impressions', 0)}   visitors {snapshot.get('visitors', 0)}",
               WHITE),
              (f"watching      {snapshot.get('watchers', 0)}", WHITE),
              (f"avg dwell     {secs(snapshot.get('dwell_s_mean'))}", WHITE),
              (f"avg attention {secs(snapshot.get('attention_s_mean'))}", WHITE)]
    if "gender" not in snapshot:
        return lines + [("details hidden:", GREY), ("too few visitors", GREY)]
    g = snapshot["gender"]
    lines.append((f"F {g.get('female', 0)}  M {g.get('male', 0)}  ? {g.get('unknown', 0)}",
                  WHITE))
    lines += [("age", GREY)] + [(t, WHITE) for t in _pairs(snapshot.get("age_groups", {}), 3)]
    lines += [("mood", GREY)] + [(t, WHITE) for t in _pairs(snapshot.get("emotions", {}), 2)]
    return lines


def status_lines(status: dict | None) -> list[str]:
    """fps, accelerator and model version first, then any other status entries."""
    status = {k: v for k, v in (status or {}).items() if v is not None}  # unknown yet: left out
    out = []
    if "fps" in status:
        out.append(f"{float(status.pop('fps')):.1f} fps")
    for key, name in (("accelerator", "accel"), ("model_version", "model")):
        if key in status:
            out.append(f"{name} {status.pop(key)}")
    return out + [f"{k} {v}" for k, v in status.items()]


def _draw_panel(canvas, x0, height, tracks, snapshot, status, lay) -> None:
    canvas[:height, x0:] = PANEL_BG
    width = canvas.shape[1] - x0 - 2 * lay["pad"]
    y = lay["line"]
    for text, colour in panel_lines(tracks, snapshot):
        _text(canvas, text, (x0 + lay["pad"], y), lay["font"], lay["thick"], colour, width)
        y += lay["line"]
    y = height - lay["pad"]
    for text in reversed(status_lines(status)):
        _text(canvas, text, (x0 + lay["pad"], y), lay["font"], lay["thick"], GREY, width)
        y -= lay["line"]


def _draw_notice(canvas, y0, lay) -> None:
    canvas[y0:] = NOTICE_BG
    width = canvas.shape[1] - 2 * lay["pad"]
    y = y0 + lay["line"]
    for text in NOTICE_LINES:
        _text(canvas, text, (lay["pad"], y), lay["font"], lay["thick"], WHITE, width)
        y += lay["line"]


def render(frame_bgr: np.ndarray, tracks=(), aggregates_snapshot: dict | None = None,
           status: dict | None = None, blur_faces: bool = False, blur_boxes=()) -> np.ndarray:
    """Draw the kiosk screen.

    Args:
        frame_bgr: H x W x 3 uint8 camera image (not modified).
        tracks: live tracks (``device.tracking.Track`` or anything with ``box`` and optionally
            ``track_id``, ``facing``, ``smoothed``/``attributes``).
        aggregates_snapshot: ``WindowAggregator.current()``; None before the first window.
        status: e.g. ``{"fps": 9.7, "accelerator": "cpu", "model_version": "2026.11.28"}``.
        blur_faces: pixelate every face box (tracks and ``blur_boxes``) before drawing.
        blur_boxes: more (x1, y1, x2, y2) boxes or detections to pixelate, e.g. this frame's
            detections not yet confirmed as tracks, so no face shows unblurred for one frame.
    Returns:
        (H + notice band) x (W + panel) x 3 uint8 BGR image.
    """
    validate_image(frame_bgr)
    h, w = frame_bgr.shape[:2]
    lay = layout(h)
    tracks = list(tracks)
    canvas = np.zeros((h + lay["notice"], w + lay["panel"], 3), dtype=np.uint8)
    view = canvas[:h, :w]
    view[:] = frame_bgr
    if blur_faces:
        for item in tracks + list(blur_boxes):
            pixelate(view, getattr(item, "box", item))
    for track in tracks:
        _draw_face(view, track, lay)
    _draw_panel(canvas, w, h, tracks, aggregates_snapshot, status, lay)
    _draw_notice(canvas, h, lay)
    return canvas
