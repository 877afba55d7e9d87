"""Frame sources: each type, loops, pacing, corrupt files and a missing or vanishing camera."""

import cv2
import numpy as np
import pytest

from device.errors import FrameDecodeError, SourceError
from device.sources import (
    DemoSource,
    ImageSource,
    OpenCVCameraSource,
    Pacer,
    VideoFileSource,
    open_source,
    read_image,
)
from device.sources.picam import PiCameraSource
from tests.shared_data import sample


def write_video(path, n=5, size=(64, 48), fps=10.0):
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    for i in range(n):
        w.write(np.full((size[1], size[0], 3), i * 40, np.uint8))
    w.release()
    return path


def test_video_frames_have_media_timestamps(tmp_path):
    src = VideoFileSource(write_video(tmp_path / "v.avi", n=5, fps=10.0))
    frames = list(src)
    assert [f.index for f in frames] == [0, 1, 2, 3, 4]
    assert [f.timestamp for f in frames] == pytest.approx([0, 0.1, 0.2, 0.3, 0.4])
    assert frames[0].image.shape == (48, 64, 3) and frames[0].image.dtype == np.uint8
    assert src.read() is None  # finite source ends


def test_video_loop_continues_timestamps(tmp_path):
    src = VideoFileSource(write_video(tmp_path / "v.avi", n=3), loop=True)
    frames = [src.read() for _ in range(7)]
    assert [f.index for f in frames] == list(range(7))
    assert frames[6].timestamp == pytest.approx(0.6)
    # the fourth frame is the first frame again
    assert np.array_equal(frames[3].image, frames[0].image)


def test_real_sample_clip():
    src = open_source(str(sample("stage_and_audience.mp4")))
    assert isinstance(src, VideoFileSource) and src.fps == pytest.approx(30, abs=0.5)
    assert src.size == (640, 360)
    assert sum(1 for _ in src) == 275


def test_missing_and_corrupt_video(tmp_path):
    with pytest.raises(SourceError, match="not found"):
        VideoFileSource(tmp_path / "nope.mp4")
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 2000 + b"not a video" * 50)
    with pytest.raises(SourceError, match="cannot decode"):
        open_source(str(bad))


def test_pacer_sleeps_to_media_time():
    now = [100.0]
    slept = []

    def sleep(s):
        slept.append(s)
        now[0] += s

    pacer = Pacer(clock=lambda: now[0], sleep=sleep)
    pacer.wait(0.0)
    now[0] += 0.01  # processing took 10 ms
    pacer.wait(0.1)
    assert slept == [pytest.approx(0.09)]
    pacer.wait(0.0)  # a loop restarts media time: no sleep, new origin
    assert len(slept) == 1


def test_single_image_and_corrupt_image(tmp_path):
    good = tmp_path / "a.png"
    cv2.imwrite(str(good), np.zeros((10, 20, 3), np.uint8))
    frames = list(ImageSource(good))
    assert len(frames) == 1 and frames[0].image.shape == (10, 20, 3)
    bad = tmp_path / "b.jpg"
    bad.write_bytes(b"\xff\xd8\xff garbage")
    with pytest.raises(FrameDecodeError, match="b.jpg"):
        read_image(bad)
    with pytest.raises(FrameDecodeError):
        list(ImageSource(bad))


def test_folder_skips_and_counts_corrupt_images(tmp_path):
    for name in ("1.png", "3.png"):
        cv2.imwrite(str(tmp_path / name), np.zeros((8, 8, 3), np.uint8))
    (tmp_path / "2.jpg").write_bytes(b"broken")
    (tmp_path / "notes.txt").write_text("not an image, not counted")
    src = open_source(str(tmp_path))
    frames = list(src)
    assert [f.source.rsplit("/", 1)[-1] for f in frames] == ["1.png", "3.png"]
    assert src.bad_frames == 1


def test_folder_of_only_corrupt_images_raises_instead_of_spinning(tmp_path):
    (tmp_path / "x.jpg").write_bytes(b"broken")
    src = ImageSource(tmp_path, loop=True)
    with pytest.raises(SourceError, match="could be decoded"):
        src.read()


def test_unknown_spec_names_the_problem():
    with pytest.raises(SourceError, match="camera:N"):
        open_source("/no/such/thing.mp4")


class FakeCapture:
    """Stands in for cv2.VideoCapture: delivers ``frames`` frames, then the camera 'vanishes'."""

    def __init__(self, frames, opened=True):
        self.frames, self.opened = frames, opened

    def isOpened(self):
        return self.opened

    def read(self):
        if self.frames > 0:
            self.frames -= 1
            return True, np.zeros((4, 4, 3), np.uint8)
        return False, None

    def get(self, prop):
        return 30.0

    def set(self, *a):
        return True

    def release(self):
        self.opened = False


def test_missing_camera_is_a_clear_error():
    with pytest.raises(SourceError, match="not found"):
        OpenCVCameraSource(7, capture_factory=lambda *a: FakeCapture(0, opened=False))


def test_camera_that_vanishes_raises_after_retries():
    cam = OpenCVCameraSource(0, retries=2, capture_factory=lambda *a: FakeCapture(2))
    assert cam.read().index == 0 and cam.read().index == 1
    with pytest.raises(SourceError, match="stopped delivering"):
        cam.read()
    assert cam.bad_frames == 2


def test_real_opencv_camera_index_that_does_not_exist():
    with pytest.raises(SourceError):
        open_source("camera:63")


class FakePicamera2:
    def __init__(self, num):
        self.started = False

    def create_video_configuration(self, main):
        assert main["format"] == "RGB888"
        return {"main": main}

    def configure(self, config):
        self.size = config["main"]["size"]

    def start(self):
        self.started = True

    def capture_array(self, name):
        if not self.started:
            raise RuntimeError("camera stopped")
        return np.zeros((self.size[1], self.size[0], 4), np.uint8)

    def stop(self):
        self.started = False

    def close(self):
        pass


def test_picamera_source_through_its_seam():
    src = PiCameraSource(size=(32, 24), picamera2_factory=FakePicamera2)
    frame = src.read()
    assert frame.image.shape == (24, 32, 3)
    src._cam.stop()
    with pytest.raises(SourceError, match="stopped delivering"):
        src.read()
    src.close()


def test_demo_clip_is_deterministic_and_has_a_face_moment():
    a, b = DemoSource(), DemoSource()
    fa, fb = [a.read() for _ in range(3)], [b.read() for _ in range(3)]
    assert all(np.array_equal(x.image, y.image) for x, y in zip(fa, fb))
    assert len(list(DemoSource(duration=2.0, fps=5))) == 10
    # the first frame is empty background, a mid-clip frame shows the portrait
    assert fa[0].image.std() < 1.0
    assert a.render(6.0).std() > 20
