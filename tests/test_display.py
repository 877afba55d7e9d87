import os
from dataclasses import dataclass

import cv2
import numpy as np
import pytest

from device.display import (
    NOTICE_LINES,
    DisplaySink,
    DrmSink,
    FramebufferSink,
    NullSink,
    PngSink,
    open_sink,
    render,
)
from device.display.framebuffer import letterbox, read_geometry, to_fb_pixels, to_rgb565
from device.display.render import FONT, face_label, fit_scale, layout, panel_lines, status_lines
from device.errors import DisplayError
from device.types import EMOTIONS, FaceAttributes

SNAPSHOT = {"impressions": 6, "visitors": 4, "watchers": 3, "dwell_s_mean": 4.25,
            "attention_s_mean": 2.0, "gender": {"female": 2, "male": 1, "unknown": 1},
            "age_groups": {"25-37": 3, "60+": 1, "0-2": 0},
            "emotions": {"happy": 2, "sad": 0, "unknown": 2}, "suppressed": False}
STATUS = {"fps": 9.66, "accelerator": "edgetpu", "model_version": "2026.11.28"}


@dataclass
class FakeTrack:
    box: tuple
    track_id: int = 1
    facing: bool = True
    attributes: FaceAttributes | None = None


def attrs(emotion="happy"):
    return FaceAttributes(age=30, age_group="25-37", gender="female", gender_prob=0.9,
                          emotions={e: 0.7 if e == emotion else 0.05 for e in EMOTIONS})


def noise(h=360, w=640, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def roughness(img):
    return float(np.abs(np.diff(img.astype(np.int16), axis=1)).mean())


# --- render -------------------------------------------------------------------------------------

def test_render_shape_and_untouched_camera_image():
    frame = noise()
    out = render(frame, [], None, None)
    lay = layout(360)
    assert out.shape == (360 + lay["notice"], 640 + lay["panel"], 3) and out.dtype == np.uint8
    assert np.array_equal(out[:360, :640], frame)
    assert np.array_equal(frame, noise())  # input not modified


@pytest.mark.parametrize("h,w", [(360, 640), (1080, 1920), (480, 640)])
def test_notice_is_always_drawn_and_independent_of_content(h, w):
    frame = noise(h, w)
    plain = render(frame, [], None, None)
    busy = render(noise(h, w, seed=1), [FakeTrack((10, 10, 90, 90), attributes=attrs())],
                  SNAPSHOT, STATUS, blur_faces=True)
    band = slice(h, None)
    assert np.array_equal(plain[band], busy[band])
    text_pixels = (plain[band] >= 200).all(axis=2).sum()  # anti-aliased white text
    assert text_pixels > 50 * len(NOTICE_LINES)  # white text is there


def test_notice_says_what_the_law_asks():
    text = " ".join(NOTICE_LINES).lower()
    assert "anonymous" in text and "no image is stored or sent" in text
    assert "emotion recognition" in text


def test_text_is_readable_at_small_and_large_sizes():
    for h, min_px in ((360, 10), (1080, 30)):
        lay = layout(h)
        (_, th), _ = cv2.getTextSize("Ag", FONT, lay["font"], lay["thick"])
        assert th >= min_px
        assert lay["line"] > th
    # each notice line fits the band of a 640x360 frame at the full size
    lay = layout(360)
    for line in NOTICE_LINES:
        assert fit_scale(line, lay["font"], lay["thick"], 640 + lay["panel"]) == lay["font"]
    assert fit_scale("x" * 500, 1.0, 1, 100) < 0.2


def test_blur_pixelates_faces_and_nothing_else():
    frame = noise()
    box = (200, 100, 320, 240)
    out = render(frame, [FakeTrack(box)], None, None, blur_faces=True)
    face = out[110:230, 210:310]
    assert roughness(face) < 0.2 * roughness(frame[110:230, 210:310])
    assert np.array_equal(out[300:360, 400:640], frame[300:360, 400:640])
    sharp = render(frame, [FakeTrack(box)], None, None, blur_faces=False)
    assert np.array_equal(sharp[110:230, 210:310], frame[110:230, 210:310])


def test_extra_blur_boxes_cover_unconfirmed_faces():
    frame = noise()
    out = render(frame, [], None, None, blur_faces=True, blur_boxes=[(400, 50, 500, 150)])
    assert roughness(out[60:140, 410:490]) < 0.2 * roughness(frame[60:140, 410:490])
    assert np.array_equal(out[200:360, :300], frame[200:360, :300])


def test_face_box_and_label_are_drawn():
    frame = np.full((360, 640, 3), 128, np.uint8)
    bare = render(frame, [FakeTrack((200, 150, 280, 240))], None, None)
    labelled = render(frame, [FakeTrack((200, 150, 280, 240), attributes=attrs())], None, None)
    assert (bare[150, 200:280] != 128).any()  # box edge
    assert np.array_equal(bare[120:148, 200:300], frame[120:148, 200:300])  # no label
    assert not np.array_equal(labelled[120:148, 200:300], frame[120:148, 200:300])


def test_face_label_prefers_smoothed_attributes():
    track = FakeTrack((0, 0, 1, 1), attributes=attrs("sad"))
    assert face_label(track) == "25-37 F sad"
    track.smoothed = attrs("happy")
    assert face_label(track) == "25-37 F happy"
    assert face_label(FakeTrack((0, 0, 1, 1))) == ""


def test_face_label_of_a_child_whose_gender_is_not_told():
    child = FaceAttributes(age=1.4, age_group="0-2", gender="unknown", gender_prob=None,
                           emotions={e: 0.7 if e == "happy" else 0.05 for e in EMOTIONS})
    assert face_label(FakeTrack((0, 0, 1, 1), attributes=child)) == "0-2 ? happy"
    male = FaceAttributes(age=40, age_group="38-47", gender="male", gender_prob=0.8,
                          emotions=child.emotions)
    assert face_label(FakeTrack((0, 0, 1, 1), attributes=male)) == "38-47 M happy"
    frame = noise()  # and it draws
    out = render(frame, [FakeTrack((200, 150, 300, 250), attributes=child)])
    assert out.shape[0] > frame.shape[0]


def test_panel_lists_the_window_and_hides_suppressed_breakdowns():
    texts = [t for t, _ in panel_lines([FakeTrack((0, 0, 1, 1))], SNAPSHOT)]
    joined = "\n".join(texts)
    assert "faces now     1" in joined and "visitors 4" in joined and "4.2 s" in joined
    assert "F 2  M 1  ? 1" in joined and "25-37 3  60+ 1" in joined and "happy 2" in joined
    assert "0-2" not in joined and "sad" not in joined
    hidden = {k: v for k, v in SNAPSHOT.items() if k not in ("gender", "age_groups", "emotions")}
    joined = "\n".join(t for t, _ in panel_lines([], {**hidden, "suppressed": True}))
    assert "too few visitors" in joined and "F 2" not in joined
    assert "no window data yet" in "\n".join(t for t, _ in panel_lines([], None))


def test_panel_and_status_change_the_picture():
    frame = noise()
    a = render(frame, [], SNAPSHOT, STATUS)
    b = render(frame, [], None, None)
    assert not np.array_equal(a[:360, 640:], b[:360, 640:])
    assert status_lines(STATUS) == ["9.7 fps", "accel edgetpu", "model 2026.11.28"]
    assert status_lines({"mqtt": "down", "accelerator": None}) == ["mqtt down"]


@pytest.mark.parametrize("bad,problem", [
    ([[1, 2, 3]], "numpy array"), (np.zeros((4, 4), np.uint8), "H x W x 3"),
    (np.zeros((4, 4, 4), np.uint8), "H x W x 3"), (np.zeros((4, 4, 3), np.float32), "uint8"),
    (np.zeros((0, 4, 3), np.uint8), "empty"),
])
def test_bad_images_are_rejected_by_render_and_every_sink(bad, problem, tmp_path):
    with pytest.raises(ValueError, match=problem):
        render(bad)
    for sink in (NullSink(), PngSink(tmp_path / "x.png")):
        with pytest.raises(ValueError, match=problem):
            sink.show(bad)
    assert not (tmp_path / "x.png").exists()


# --- registry, null, png ------------------------------------------------------------------------

def test_open_sink_by_spec(tmp_path):
    assert isinstance(open_sink("none"), NullSink)
    assert isinstance(open_sink("null"), NullSink)
    png = open_sink(f"png:{tmp_path}/a/b.png", every=2)
    assert isinstance(png, PngSink) and png.every == 2 and (tmp_path / "a").is_dir()
    with pytest.raises(DisplayError, match="unknown display 'hdmi'.*drm, fb, none, png"):
        open_sink("hdmi")
    with pytest.raises(DisplayError, match="needs a file"):
        open_sink("png:")


def test_null_sink_counts_and_closes():
    sink = NullSink()
    sink.show(noise(4, 4))
    assert sink.frames == 1
    sink.close()
    with pytest.raises(DisplayError, match="closed"):
        sink.show(noise(4, 4))
    assert issubclass(NullSink, DisplaySink)


def test_png_sink_writes_every_nth_frame_losslessly(tmp_path):
    path = tmp_path / "frame.png"
    frames = [noise(8, 12, seed=i) for i in range(7)]
    with PngSink(path, every=3) as sink:
        for f in frames:
            sink.show(f)
    assert sink.written == 3  # frames 0, 3, 6
    assert np.array_equal(cv2.imread(str(path)), frames[6])
    assert os.listdir(tmp_path) == ["frame.png"]  # no temp files left behind


def test_png_sink_keeps_the_old_file_when_a_write_fails(tmp_path, monkeypatch):
    path = tmp_path / "frame.png"
    sink = PngSink(path)
    sink.show(noise(8, 8, seed=1))

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(DisplayError, match="disk full"):
        sink.show(noise(8, 8, seed=2))
    assert np.array_equal(cv2.imread(str(path)), noise(8, 8, seed=1))
    assert os.listdir(tmp_path) == ["frame.png"]


def test_png_sink_reports_unusable_folders(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(DisplayError, match="cannot create folder"):
        open_sink(f"png:{blocker}/frame.png")
    with pytest.raises(DisplayError, match="every"):
        PngSink(tmp_path / "x.png", every=0)


# --- framebuffer --------------------------------------------------------------------------------

def fake_fb(tmp_path, width, height, bpp, stride=None, name="fb0"):
    sysfs = tmp_path / "sys"
    (sysfs / name).mkdir(parents=True)
    (sysfs / name / "virtual_size").write_text(f"{width},{height}\n")
    (sysfs / name / "bits_per_pixel").write_text(f"{bpp}\n")
    if stride is not None:
        (sysfs / name / "stride").write_text(f"{stride}\n")
    dev = tmp_path / "dev" / name
    dev.parent.mkdir()
    dev.write_bytes(b"")
    return sysfs, dev


def test_pixel_conversions():
    bgr = np.array([[[0, 0, 255], [0, 255, 0], [255, 0, 0], [255, 255, 255]]], np.uint8)
    assert to_rgb565(bgr).tolist() == [[0xF800, 0x07E0, 0x001F, 0xFFFF]]
    assert to_fb_pixels(bgr, 16)[0, :2].tolist() == [0x00, 0xF8]  # little-endian red
    assert to_fb_pixels(bgr, 32)[0, :4].tolist() == [0, 0, 255, 255]  # B, G, R, A
    assert to_fb_pixels(bgr, 24)[0, :3].tolist() == [0, 0, 255]  # B, G, R


def test_letterbox_centres_and_keeps_aspect():
    img = np.full((2, 8, 3), 200, np.uint8)
    out = letterbox(img, 8, 4)
    assert out.shape == (4, 8, 3)
    assert (out[1:3] == 200).all() and (out[0] == 0).all() and (out[3] == 0).all()
    tall = letterbox(np.full((8, 4, 3), 50, np.uint8), 8, 4)  # becomes 4 x 2, centred
    assert (tall[:, 3:5] == 50).all() and (tall[:, :3] == 0).all() and (tall[:, 5:] == 0).all()


def test_framebuffer_rgb565_with_padded_stride(tmp_path):
    sysfs, dev = fake_fb(tmp_path, 8, 4, 16, stride=20)
    sink = open_sink(f"fb:{dev}", sysfs_root=sysfs)
    assert isinstance(sink, FramebufferSink)
    assert sink.geometry.width == 8 and sink.geometry.stride == 20
    sink.show(np.full((2, 8, 3), (0, 0, 255), np.uint8))  # red, half the screen's height
    sink.close()
    raw = np.frombuffer(dev.read_bytes(), np.uint8).reshape(4, 20)
    pixels = raw[:, :16].copy().view("<u2")
    assert (pixels[1:3] == 0xF800).all() and (pixels[[0, 3]] == 0).all()  # letterboxed
    assert (raw[:, 16:] == 0).all()  # padding untouched


@pytest.mark.parametrize("bpp", [24, 32])
def test_framebuffer_truecolour(tmp_path, bpp):
    sysfs, dev = fake_fb(tmp_path, 4, 2, bpp)  # no stride file: packed lines
    with FramebufferSink(dev, sysfs_root=sysfs) as sink:
        sink.show(np.full((2, 4, 3), (10, 20, 30), np.uint8))
        sink.show(np.full((2, 4, 3), (1, 2, 3), np.uint8))  # overwrites, not appends
    raw = np.frombuffer(dev.read_bytes(), np.uint8).reshape(2, 4, bpp // 8)
    expected = [1, 2, 3] + ([255] if bpp == 32 else [])
    assert (raw == expected).all()


def test_framebuffer_errors_are_clear(tmp_path):
    with pytest.raises(DisplayError, match="geometry"):
        read_geometry("fb7", tmp_path)
    sysfs, dev = fake_fb(tmp_path, 8, 4, 8)
    with pytest.raises(DisplayError, match="8 bits per pixel"):
        FramebufferSink(dev, sysfs_root=sysfs)
    (sysfs / "fb0" / "bits_per_pixel").write_text("16")
    dev.unlink()
    with pytest.raises(DisplayError, match="cannot open framebuffer"):
        FramebufferSink(dev, sysfs_root=sysfs)


# --- drm (picamera2 faked) -----------------------------------------------------------------------

class FakeCamera:
    def __init__(self, fail=False):
        self.calls, self.fail = [], fail

    def set_overlay(self, overlay):
        if self.fail:
            raise RuntimeError("DRM plane gone")
        self.calls.append(("set_overlay", overlay))


def test_drm_sink_sets_an_rgba_overlay_on_the_cameras_preview():
    camera = FakeCamera()
    sink = open_sink("drm", camera=camera)
    sink.show(np.full((3, 5, 3), (10, 20, 30), np.uint8))
    _, overlay = camera.calls[0]
    assert overlay.shape == (3, 5, 4) and overlay.dtype == np.uint8
    assert overlay[0, 0].tolist() == [30, 20, 10, 255]  # RGBA, opaque
    sink.close()
    assert camera.calls[-1] == ("set_overlay", None)  # the preview itself is the camera's


def test_drm_sink_errors():
    with pytest.raises(DisplayError, match=r"needs the picamera source \(\[source\] spec"):
        DrmSink()
    with pytest.raises(DisplayError, match="opened without its DRM preview"):
        DrmSink(FakeCamera(), preview=None)
    sink = DrmSink(FakeCamera(fail=True))
    with pytest.raises(DisplayError, match="DRM plane gone"):
        sink.show(np.zeros((2, 2, 3), np.uint8))


def test_wide_frames_are_shrunk_with_their_boxes_before_rendering():
    from types import SimpleNamespace

    from device.worker import fit_width

    frame = np.zeros((1080, 1920, 3), np.uint8)
    tracks = [SimpleNamespace(track_id=1, box=(960.0, 540.0, 1152.0, 732.0), facing=True,
                              smoothed=None, attributes=None)]
    small, t2, boxes = fit_width(frame, tracks, [(0, 0, 192, 192)], 1280)
    assert small.shape == (720, 1280, 3)
    assert t2[0].box == pytest.approx((640, 360, 768, 488)) and t2[0].track_id == 1
    assert boxes == [pytest.approx((0, 0, 128, 128))]
    assert tracks[0].box == (960.0, 540.0, 1152.0, 732.0)  # the caller's view is not changed
    same = fit_width(np.zeros((360, 640, 3), np.uint8), tracks, [], 1280)
    assert same[0].shape == (360, 640, 3) and same[1] is tracks


def test_display_worker_drops_frames_above_max_fps():
    from device.worker import DisplayWorker

    now = [0.0]
    worker = DisplayWorker(sink=None, render=None, max_fps=10, clock=lambda: now[0])
    queued = []
    worker.mailbox.put = queued.append
    for i in range(30):  # 30 frames offered over 0.29 s at 100 fps
        now[0] = i * 0.01
        worker.submit(np.zeros((4, 4, 3), np.uint8), [], None, {})
    assert len(queued) == 3  # t = 0.0, 0.1, 0.2
