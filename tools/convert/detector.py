"""``kiosk-convert detector``: a float face detector -> full-integer int8, plus agreement.

The float model is MediaPipe's BlazeFace (``.tflite``) or YuNet's ONNX export (``.onnx``,
``tools/convert/detector_yunet.py``). Calibration frames go through exactly the detector's
pre-processing (letterbox, RGB, then [-1, 1] for BlazeFace or pixel values for YuNet).
Agreement is measured by running the float and int8 models through the same ``FaceDetector``
(decoding, NMS and thresholds included) and matching their detections at IoU >= 0.5.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np

from device.detector.face_detector import FaceDetector
from device.detector.letterbox import letterbox_image, to_model_range
from tools.convert.agreement import Agreement
from tools.convert.frames import iter_frames
from tools.convert.scenes import make_scenes

log = logging.getLogger(__name__)


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, got {text!r}") from None
    return w, h


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``detector`` subcommand's options."""
    parser.add_argument("--float", dest="float_model", required=True, type=Path,
                        help="MediaPipe float BlazeFace .tflite (short or full range), or "
                             "YuNet's ONNX export (.onnx)")
    parser.add_argument("--calib", nargs="+", required=True, metavar="PATH",
                        help="calibration images, image folders or videos")
    parser.add_argument("--out", required=True, type=Path, help="int8 .tflite to write")
    parser.add_argument("--eval", nargs="*", default=[], metavar="PATH",
                        help="footage to measure float/int8 agreement on (images, folders, videos)")
    parser.add_argument("--report", type=Path, help="write the measurements here as JSON")
    parser.add_argument("--input-size", type=_size, metavar="WxH",
                        help="input size if not the float model's own (e.g. 320x192 for 16:9)")
    parser.add_argument("--calib-limit", type=int, default=200,
                        help="at most this many images from each calibration folder "
                             "(random, seeded)")
    parser.add_argument("--scenes", type=int, default=200,
                        help="also calibrate on this many multi-face scenes made from the "
                             "calibration images (0: none)")
    parser.add_argument("--video-every", type=int, default=10,
                        help="use every N-th frame of calibration/evaluation videos")
    parser.add_argument("--input-type", choices=("int8", "uint8"), default="int8",
                        help="integer type of the model input tensor")
    parser.add_argument("--bias-correction", action="store_true",
                        help="re-centre the int8 score logits on the float ones, measured on the "
                             "calibration frames (off: the shift depends on those frames, and "
                             "UTKFace chips over-correct it for real footage)")
    parser.add_argument("--activation-ranges", choices=("minmax", "mse"), default="mse",
                        help="int8 activation ranges: TFLite's calibrated min/max, or per tensor "
                             "the range with the least quantisation error on the calibration "
                             "frames (default)")
    parser.add_argument("--no-equalise", dest="equalise", action="store_false",
                        help="do not equalise activation channels (conv->ReLU->depthwise and "
                             "depthwise->1x1 conv) before quantising")
    parser.add_argument("--finetune-epochs", type=int, default=0,
                        help="quantisation-aware fine-tuning against the float model before "
                             "converting (tools/convert/finetune.py): epochs of fresh synthetic "
                             "scenes (0: off)")
    parser.add_argument("--finetune-frames", type=int, default=800,
                        help="frames per fine-tuning epoch (a quarter chips, the rest scenes)")
    parser.add_argument("--finetune-lr", type=float, default=1e-5,
                        help="Adam learning rate of the conv weights and biases (0: keep them)")
    parser.add_argument("--finetune-range-lr", type=float, default=3e-3,
                        help="Adam learning rate of the activation ranges' log-factors "
                             "(0: keep the MSE ranges)")
    parser.add_argument("--heads", choices=("float", "int8"), default="float",
                        help="the two output convolutions: computed in float on the int8 feature "
                             "map (default; keypoints and boxes off the int8 grid, "
                             "tools/convert/float_heads.py), or int8 like the rest")
    parser.add_argument("--seed", type=int, default=0)


def calibration_samples(images: list[np.ndarray], width: int, height: int) -> list[np.ndarray]:
    """Each BGR image pre-processed exactly as ``FaceDetector`` does for a ``width`` x ``height``
    input."""
    return [to_model_range(letterbox_image(img, width, height)[0]) for img in images]


def eye_errors(ref, cand, min_iou: float = 0.5) -> list[float]:
    """For each reference detection with a candidate at IoU >= ``min_iou`` (the best one): the
    largest eye keypoint difference, as a fraction of the reference box width."""
    from device.detector.nms import iou

    if not ref or not cand:
        return []
    boxes = np.asarray([d.box for d in cand], np.float32)
    out = []
    for d in ref:
        overlap = iou(np.asarray(d.box, np.float32), boxes)
        j = int(np.argmax(overlap))
        if overlap[j] >= min_iou and d.width > 0:
            diff = np.abs(np.asarray(cand[j].keypoints[:2]) - np.asarray(d.keypoints[:2]))
            out.append(float(diff.max()) / d.width)
    return out


def measure_agreement(float_det: FaceDetector, int8_det: FaceDetector, frames) -> dict:
    """Agreement per source (image set or video) and overall, the eye keypoints' distance from
    the float model's (a fraction of the face width, over matched faces), plus mean detect()
    time per model."""
    per: dict[str, Agreement] = {}
    total = Agreement()
    times = {"float": 0.0, "int8": 0.0}
    eyes: list[float] = []
    for label, frame in frames:
        key = label.split("#")[0] if "#" in label else "images"
        t0 = time.perf_counter()
        ref = float_det.detect(frame)
        t1 = time.perf_counter()
        cand = int8_det.detect(frame)
        times["float"] += t1 - t0
        times["int8"] += time.perf_counter() - t1
        per.setdefault(key, Agreement()).add([d.box for d in ref], [d.box for d in cand])
        total.add([d.box for d in ref], [d.box for d in cand])
        eyes += eye_errors(ref, cand)
    n = max(total.frames, 1)
    e = np.asarray(eyes) if eyes else np.zeros(1)
    return {"overall": total.to_dict(), "by_source": {k: v.to_dict() for k, v in per.items()},
            "eye_error": {"faces": len(eyes), "mean": round(float(e.mean()), 4),
                          "median": round(float(np.median(e)), 4),
                          "p90": round(float(np.percentile(e, 90)), 4)},
            "ms_per_frame": {k: round(1000 * v / n, 2) for k, v in times.items()}}


def run(args: argparse.Namespace) -> int:
    """Convert, check, measure; returns the process exit code."""
    if args.float_model.suffix.lower() == ".onnx":
        return run_yunet(args)
    from tools.convert.quantize import rebuild_error
    from tools.convert.tflite_graph import read_graph

    graph = read_graph(args.float_model)
    _, h0, w0, _ = graph.shapes[graph.inputs[0]]
    width, height = args.input_size or (w0, h0)
    frames = iter_frames(args.calib, args.video_every, args.calib_limit, args.seed)
    chips = [img for _, img in frames]
    if not chips:
        print("no calibration images found")
        return 2
    images = chips + (make_scenes(chips, args.scenes, args.seed) if args.scenes else [])
    samples = calibration_samples(images, width, height)
    err = rebuild_error(graph, args.float_model, calibration_samples(images[:4], w0, h0))
    print(f"rebuilt float graph: max |difference| to {args.float_model.name} = {err:.2e}")
    if err > 1e-3:
        print("rebuild does not reproduce the float model; not converting")
        return 1
    print(f"calibrating on {len(samples)} frames ({len(chips)} read, "
          f"{args.scenes} scenes), input {width}x{height}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    model, offset, equalised, tuned = _quantise(args, graph, chips, samples, width, height)
    if args.heads == "float":
        from tools.convert.float_heads import float_heads

        model = float_heads(model)
    args.out.write_bytes(model)
    report = {"float_model": str(args.float_model), "out": str(args.out),
              "out_bytes": args.out.stat().st_size, "input_size": [width, height],
              "rebuild_max_abs_error": err, "calibration": {
                  "sources": [str(p) for p in args.calib], "frames": len(samples),
                  "scenes": args.scenes, "calib_limit": args.calib_limit, "seed": args.seed},
              "quantisation": {"activation_ranges": args.activation_ranges,
                               "equalised_tensors": equalised, "finetune": tuned,
                               "heads": args.heads},
              "score_bias_correction": offset}
    print(f"wrote {args.out} ({report['out_bytes'] / 1024:.0f} KiB)")
    if args.eval:
        report["agreement"] = _agreement(args, graph, width, height)
    if args.report:
        args.report.write_text(json.dumps(report, indent=2) + "\n")
    return 0


def run_yunet(args: argparse.Namespace) -> int:
    """``run`` for YuNet's ONNX export (``tools/convert/detector_yunet.py``)."""
    from tools.convert import detector_yunet as dy
    from tools.convert.yunet import read_onnx

    if args.heads != "float" or args.finetune_epochs or args.bias_correction \
            or args.activation_ranges != "mse" or args.input_type != "int8":
        print("YuNet is converted with its heads in float, MSE activation ranges and an int8 "
              "input only (--heads, --finetune-epochs, --bias-correction, "
              "--activation-ranges and --input-type keep their defaults)")
        return 2
    graph = read_onnx(args.float_model)
    _, h0, w0, _ = graph.shapes[graph.inputs[0]]
    width, height = args.input_size or (w0, h0)
    if width % 32 or height % 32:
        print(f"YuNet's input sides must be multiples of 32, not {width}x{height}")
        return 2
    chips = [img for _, img in iter_frames(args.calib, args.video_every, args.calib_limit,
                                           args.seed)]
    if not chips:
        print("no calibration images found")
        return 2
    images = chips + (make_scenes(chips, args.scenes, args.seed) if args.scenes else [])
    err = dy.rebuild_error(graph, args.float_model, images[:4] + images[-4:], width, height)
    print(f"rebuilt float graph: max |difference| to {args.float_model.name} (onnxruntime) "
          f"= {err:.2e}")
    if err > 1e-4:
        print("rebuild does not reproduce the ONNX model; not converting")
        return 1
    samples = dy.calibration_samples(images, width, height)
    print(f"calibrating on {len(samples)} frames ({len(chips)} read, "
          f"{args.scenes} scenes), input {width}x{height}")
    model, done = dy.convert(graph, samples, width, height, equalise=args.equalise)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(model)
    report = {"float_model": str(args.float_model), "out": str(args.out),
              "out_bytes": len(model), "input_size": [width, height],
              "rebuild_max_abs_error": err, "calibration": {
                  "sources": [str(p) for p in args.calib], "frames": len(samples),
                  "scenes": args.scenes, "calib_limit": args.calib_limit, "seed": args.seed},
              "quantisation": {"activation_ranges": "mse", "heads": "float"} | done}
    print(f"wrote {args.out} ({len(model)} bytes)")
    if args.eval:
        report["agreement"] = _agreement(args, graph, width, height)
    if args.report:
        args.report.write_text(json.dumps(report, indent=2) + "\n")
    return 0


def _quantise(args, graph, chips, samples, width: int, height: int
              ) -> tuple[bytes, float, int, dict | None]:
    """int8 flatbuffer, the score-logit bias correction applied (0.0 if none), how many
    activations were equalised, and the fine-tuning report (None without fine-tuning)."""
    from tools.convert.equalise import equalise
    from tools.convert.quantize import score_offset, shift_scores, to_int8

    g, equalised = graph, 0
    if args.equalise:  # channel ranges from every 8th calibration frame (50 of 400)
        g, equalised = equalise(graph, samples[::8], height, width)
        print(f"equalised the channels of {equalised} activations")
    learnt, tuned = None, None
    if args.finetune_epochs > 0:
        g, learnt, tuned = _finetune(args, g, chips, width, height)

    def convert():
        return to_int8(g, samples, height, width, args.input_type, args.activation_ranges,
                       learnt=learnt)

    model = convert()
    if not args.bias_correction:
        return model, 0.0, equalised, tuned
    # measured on every 4th calibration frame: enough anchors, a quarter of the time
    offset = score_offset(graph, model, samples[::4], height, width)
    print(f"int8 score logits are {offset:+.3f} off the float ones on average; re-quantising "
          f"with the score bias corrected")
    if abs(offset) < 0.01:
        return model, 0.0, equalised, tuned
    shift_scores(g, -offset)
    try:
        return convert(), -offset, equalised, tuned
    finally:
        shift_scores(g, offset)  # leave the float graph as read, for the agreement check


def finetune_frames(chips: list[np.ndarray], n: int, width: int, height: int, seed: int):
    """Epoch -> ``n`` fresh pre-processed frames: a quarter whole chips, the rest synthetic
    scenes, all drawn anew per epoch (seeded), so the fine-tuning cannot learn single frames."""
    def frames(epoch: int) -> list[np.ndarray]:
        rng = np.random.default_rng([seed, 17, epoch])
        k = min(len(chips), n // 4)
        picked = [chips[i] for i in rng.permutation(len(chips))[:k]]
        scenes = make_scenes(chips, n - k, seed=int(rng.integers(2**31)))
        return calibration_samples(picked + scenes, width, height)
    return frames


def _finetune(args, g, chips, width: int, height: int):
    """Quantisation-aware fine-tuning of ``g``: (graph, learnt ranges or None, report)."""
    from tools.convert.finetune import finetune

    held_out = calibration_samples(make_scenes(chips, 48, seed=args.seed + 2), width, height)
    frames = finetune_frames(chips, args.finetune_frames, width, height, args.seed)
    print(f"quantisation-aware fine-tuning: {args.finetune_epochs} epochs of "
          f"{args.finetune_frames} fresh frames")
    tuned, ranges, report = finetune(
        g, frames, held_out, epochs=args.finetune_epochs, lr=args.finetune_lr,
        range_lr=args.finetune_range_lr, seed=args.seed)
    settings = {"epochs": args.finetune_epochs, "frames": args.finetune_frames,
                "lr": args.finetune_lr, "range_lr": args.finetune_range_lr}
    return (tuned, ranges if args.finetune_range_lr > 0 else None,
            settings | report.to_dict())


def _agreement(args, graph, width: int, height: int, models=None) -> dict:
    """Agreement of ``args.out`` (or of each of ``models``: a dict keyed by path then) with the
    float graph at the same input size, on ``args.eval``."""
    float_path = args.float_model
    _, h0, w0, _ = graph.shapes[graph.inputs[0]]
    if (width, height) != (w0, h0) or float_path.suffix.lower() != ".tflite":
        # compare like with like: the float graph at the same input, as a .tflite
        float_path = args.out.with_suffix(".float-reference.tflite")
        float_path.write_bytes(_float_tflite(graph, height, width))
    results = {}
    try:
        for model in models or [args.out]:
            # the models themselves are compared: one pass over each whole frame, no tiling
            float_det, int8_det = FaceDetector(float_path, tiles=1), FaceDetector(model, tiles=1)
            results[str(model)] = result = measure_agreement(
                float_det, int8_det, iter_frames(args.eval, args.video_every))
            o, e = result["overall"], result["eye_error"]
            print(f"{Path(model).name}: agreement on {o['frames']} frames: "
                  f"{o['float_matched_by_int8']:.2%} of {o['float_detections']} float detections "
                  f"matched by int8, {o['int8_matched_by_float']:.2%} of {o['int8_detections']} "
                  f"int8 matched by float; eye keypoints off the float model's by "
                  f"{e['mean']:.4f} of the face width (mean; median {e['median']:.4f}, "
                  f"p90 {e['p90']:.4f}, {e['faces']} faces)")
            for k, v in result["by_source"].items():
                print(f"  {k}: {v['float_matched_by_int8']:.2%} / {v['int8_matched_by_float']:.2%}"
                      f" ({v['float_detections']} / {v['int8_detections']} detections)")
    finally:
        if float_path != args.float_model:
            float_path.unlink(missing_ok=True)
    return results if models else results[str(args.out)]


def _float_tflite(graph, height: int, width: int) -> bytes:
    import tensorflow as tf

    from tools.convert.tf_rebuild import as_function
    from tools.convert.yunet import float_tflite, is_yunet

    if is_yunet(graph):
        return float_tflite(graph, height, width)

    fn = as_function(graph, height, width)
    return tf.lite.TFLiteConverter.from_concrete_functions([fn]).convert()
