"""Face detectors side by side, in one run on the same frames.

    python -m tools.compare_detectors --detector NAME=INT8.tflite[:FLOAT_SOURCE] [...]
        [--samples DIR] [--sheets DIR] [--every N] [--json OUT]

For each detector (its int8 ``.tflite``; after a colon its float source, a MediaPipe ``.tflite``
or a YuNet ``.onnx``, rebuilt at the int8 model's input size for the agreement):

* faces found on the sample pictures (``multiface.jpg``, ``two_people.jpg``,
  ``two_people_2.jpg``) and per frame on both sample clips, as the appliance runs it (tiles on
  large frames);
* int8/float agreement: detections matched at IoU >= 0.5 both ways, one pass per frame, every
  picture and frame of the samples (``tools.convert.detector.measure_agreement``);
* ``FaceDetector.detect`` time per frame, one thread, the detectors taking turns frame by frame
  so that both see the same machine; medians per clip;
* file size;
* the end-to-end count on ``pedestrians_1080p.mp4`` (detector, the shipped attribute model,
  tracking, one window): visitors, impressions, watchers, and how many analysed frames each
  visitor's attributes come from.

``--sheets DIR`` writes contact sheets (JPEG): every ``--every``-th frame of each clip and each
picture, every detector's boxes in its own colour with its score.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

PICTURES = ("multiface.jpg", "two_people.jpg", "two_people_2.jpg")
CLIPS = ("stage_and_audience.mp4", "pedestrians_1080p.mp4")
COLOURS = ((0, 0, 255), (0, 200, 0), (255, 0, 0), (0, 200, 255))
SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "data" / "samples"


def float_reference(int8: Path, source: Path, out: Path) -> Path:
    """The float source rebuilt at the int8 model's input size, written to ``out``."""
    from device.detector import FaceDetector

    w, h = FaceDetector(int8).size
    if source.suffix.lower() == ".onnx":
        from tools.convert.yunet import float_tflite, read_onnx

        out.write_bytes(float_tflite(read_onnx(source), h, w))
    else:
        from tools.convert.detector import _float_tflite
        from tools.convert.tflite_graph import read_graph

        out.write_bytes(_float_tflite(read_graph(source), h, w))
    return out


def models_folder(detector: Path, into: Path) -> Path:
    """A models folder with the shipped attribute model and ``detector``."""
    from device.manifest import load_manifest, sha256_file
    from device.models import MODELS_DIR

    into.mkdir(parents=True, exist_ok=True)
    manifest = load_manifest(MODELS_DIR)
    shutil.copy(MODELS_DIR / manifest["analyzer"]["file"], into)
    shutil.copy(detector, into)
    manifest["detector"] = {"file": detector.name, "sha256": sha256_file(detector)}
    manifest.pop("kat", None)
    (into / "manifest.json").write_text(json.dumps(manifest))
    return into


def count_clip(models: Path, clip: Path) -> dict:
    """People counted on ``clip`` by the whole vision path, tracking and one window (each
    tracked face analysed again after the default ``[models] reanalyze_s``, as the appliance
    does)."""
    from device.aggregate import WindowAggregator
    from device.config import REANALYZE_S
    from device.pipeline import VisionPipeline
    from device.sources import open_source
    from device.tracking import Tracker

    pipeline, tracker = VisionPipeline(models, reanalyze_s=REANALYZE_S), Tracker()
    window = WindowAggregator(k_anonymity=3)
    summaries, t_end = [], 0.0
    with open_source(str(clip)) as src:
        for frame in src:
            faces = pipeline.process(frame, tracker=tracker)
            tracker.update([d for d, _ in faces], [a for _, a in faces], frame.timestamp)
            summaries += tracker.pop_finished(frame.timestamp)
            t_end = frame.timestamp
    summaries += tracker.flush()
    for s in summaries:
        window.add(s)
    agg = window.close(0.0, t_end)
    visitors = [s for s in summaries if s.dwell_s >= 1.0]
    return {"visitors": agg["visitors"], "impressions": agg["impressions"],
            "watchers": agg["watchers"],
            "analysed_frames_per_visitor": sorted(int(s.n_analyzed) for s in visitors),
            "gender": agg.get("gender"), "age_groups": agg.get("age_groups")}


def timed_counts(detectors: dict, frames: list[np.ndarray]) -> dict[str, dict]:
    """Faces per frame and ``detect`` milliseconds, the detectors taking turns on each frame."""
    counts = {k: [] for k in detectors}
    times = {k: [] for k in detectors}
    for d in detectors.values():
        d.detect(frames[0])  # warm-up
    clock = time.perf_counter
    for frame in frames:
        for k, d in detectors.items():
            t0 = clock()
            found = d.detect(frame)
            times[k].append(clock() - t0)
            counts[k].append(len(found))
    return {k: {"frames": len(frames), "faces_per_frame": round(float(np.mean(counts[k])), 2),
                "faces": int(np.sum(counts[k])),
                "frames_by_faces": np.bincount(counts[k]).tolist(),
                "ms_p50": round(1000 * float(np.median(times[k])), 3),
                "ms_p95": round(1000 * float(np.percentile(times[k], 95)), 3)}
            for k in detectors}


def sheet(frames: list[np.ndarray], detectors: dict, out: Path, width: int = 640) -> None:
    """One JPEG: the frames two by two, every detector's boxes and scores in its colour."""
    tiles = []
    for frame in frames:
        img = frame.copy()
        thick = max(1, img.shape[1] // 640)
        for d, colour in zip(detectors.values(), COLOURS):
            for f in d.detect(frame):
                x1, y1, x2, y2 = (int(round(v)) for v in f.box)
                cv2.rectangle(img, (x1, y1), (x2, y2), colour, thick)
                for p in f.keypoints[:2]:
                    cv2.circle(img, (int(p[0]), int(p[1])), thick + 1, colour, -1)
                cv2.putText(img, f"{f.score:.2f}", (x1, max(10, y1 - 3)), 0, 0.4 * thick,
                            colour, thick)
        h = int(img.shape[0] * width / img.shape[1])
        tiles.append(cv2.resize(img, (width, h), interpolation=cv2.INTER_AREA))
    legend = np.zeros((24, 2 * width, 3), np.uint8)
    for k, (name, colour) in enumerate(zip(detectors, COLOURS)):
        cv2.putText(legend, name, (10 + 200 * k, 17), 0, 0.55, colour, 1)
    rows = [legend]
    for i in range(0, len(tiles), 2):
        pair = tiles[i:i + 2]
        h = max(t.shape[0] for t in pair)
        pair = [cv2.copyMakeBorder(t, 0, h - t.shape[0], 0, 0, cv2.BORDER_CONSTANT) for t in pair]
        if len(pair) == 1:
            pair.append(np.zeros_like(pair[0]))
        rows.append(np.hstack(pair))
    cv2.imwrite(str(out), np.vstack(rows), [cv2.IMWRITE_JPEG_QUALITY, 70])


def compare(specs: dict[str, tuple[Path, Path | None]], samples: Path, sheets: Path | None,
            every: int, width: int = 640) -> dict:
    """Every measurement of the module docstring, per detector name."""
    from device.detector import FaceDetector
    from tools.convert.detector import measure_agreement
    from tools.convert.frames import iter_frames, video_frames

    detectors = {k: FaceDetector(p, threads=1) for k, (p, _) in specs.items()}
    report = {k: {"file": p.name, "bytes": p.stat().st_size,
                  "input": list(detectors[k].size), "family": detectors[k].family}
              for k, (p, _) in specs.items()}
    pictures = [cv2.imread(str(samples / n)) for n in PICTURES]
    for k, d in detectors.items():
        report[k]["pictures"] = {n: len(d.detect(img)) for n, img in zip(PICTURES, pictures)}
    for clip in CLIPS:
        frames = list(video_frames(samples / clip))
        for k, v in timed_counts(detectors, frames).items():
            report[k][clip] = v
        if sheets is not None:
            sheet(frames[::every], detectors, sheets / f"{Path(clip).stem}.jpg", width)
    if sheets is not None:
        sheet(pictures, detectors, sheets / "pictures.jpg", width * 3 // 2)
    with tempfile.TemporaryDirectory() as tmp:
        for k, (int8, source) in specs.items():
            if source is not None:
                ref = float_reference(int8, source, Path(tmp) / f"{k}_float.tflite")
                agree = measure_agreement(FaceDetector(ref, tiles=1), FaceDetector(int8, tiles=1),
                                          iter_frames([samples], 1))
                report[k]["agreement"] = {"overall": agree["overall"],
                                          "eye_error": agree["eye_error"]}
            report[k]["count_pedestrians"] = count_clip(
                models_folder(int8, Path(tmp) / k), samples / "pedestrians_1080p.mp4")
    return report


def _spec(text: str) -> tuple[str, tuple[Path, Path | None]]:
    name, _, rest = text.partition("=")
    int8, _, source = rest.partition(":")
    if not name or not int8:
        raise argparse.ArgumentTypeError(f"expected NAME=INT8.tflite[:FLOAT_SOURCE], got {text!r}")
    return name, (Path(int8), Path(source) if source else None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.compare_detectors",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--detector", action="append", type=_spec, required=True,
                        metavar="NAME=INT8[:FLOAT]", help="a detector to compare (repeat)")
    parser.add_argument("--samples", type=Path, default=SAMPLES,
                        help="the sample footage (default: ../shared/data/samples beside the "
                             "checkout)")
    parser.add_argument("--sheets", type=Path, help="write contact sheets into this folder")
    parser.add_argument("--every", type=int, default=15, help="every N-th clip frame on a sheet")
    parser.add_argument("--width", type=int, default=640, help="width of a frame on a sheet")
    parser.add_argument("--json", type=Path, help="write the measurements here")
    args = parser.parse_args(argv)
    if args.sheets:
        args.sheets.mkdir(parents=True, exist_ok=True)
    report = compare(dict(args.detector), args.samples, args.sheets, args.every, args.width)
    text = json.dumps(report, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
