"""Build the training cache: every face through the device's alignment, 64x64 uint8 gray + labels.

    python -m tools.prepare --utkface ../shared/data/utkface --ferplus ../shared/data/ferplus \
        --aaf ../shared/data/aaf_train [--out ~/.cache/audience-kiosk/faces.npz]

``--out`` defaults to ``faces.npz`` in the cache folder ``tools.locations`` documents; the cache
holds aligned faces of the data sets, so it stays outside the repository.

The cache holds, for N faces: ``x`` (N,64,64) uint8; ``age`` (years, -1 none); ``gender`` (0 male,
1 female, -1 none); ``race`` (-1 none); ``emotion`` (original FER2013 label, -1 none); ``votes``
(N,7) FER+ votes mapped onto our 7 emotions (0 none); ``majority`` (FER+ majority, -1 none or
contempt/unknown/NF); ``source`` (0 UTKFace, 1 FER, 2 All-Age-Faces); ``split`` (0 train,
1 val); ``fallback`` (chip aligned on canonical eyes because the detector found no face); ``meta``
(JSON text).

UTKFace is split 90/10 by file with a fixed seed; FER uses FER2013Train / FER2013Valid as given.
All-Age-Faces is read from its public train split only (its val split stays for evaluation,
``tools.evaluate --aaf``) and split 90/10 by file with the same seed, so that training keeps a
validation slice of it. Its faces are aligned like UTKFace chips: on the detector's eyes, else on
the set's canonical eye positions (the median of the eyes the detector found on it).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from device.align import align_face
from tools.datasets import ferplus_to_emotions, read_aaf, read_ferplus, read_utkface
from tools.datasets.faces import align_utk_chip, crop_to_input, detect_eyes_on_chip
from tools.datasets.ferplus import ferplus_majority
from tools.locations import default_faces

SOURCES = ("utkface", "fer", "aaf")
AAF = 2  # source code of All-Age-Faces rows
FIELDS = ("x", "age", "gender", "race", "emotion", "votes", "majority", "source", "split",
          "fallback")


def utk_split(n: int, val_fraction: float, seed: int) -> np.ndarray:
    """0 (train) / 1 (val) per file, a seeded random split of ``n`` files in sorted order."""
    split = np.zeros(n, dtype=np.int8)
    idx = np.random.default_rng(seed).permutation(n)
    split[idx[:int(round(n * val_fraction))]] = 1
    return split


def _empty(n: int, size: int) -> dict[str, np.ndarray]:
    return {"x": np.zeros((n, size, size), np.uint8), "age": np.full(n, -1, np.float32),
            "gender": np.full(n, -1, np.int8), "race": np.full(n, -1, np.int8),
            "emotion": np.full(n, -1, np.int8), "votes": np.zeros((n, 7), np.float32),
            "majority": np.full(n, -1, np.int8), "source": np.zeros(n, np.int8),
            "split": np.zeros(n, np.int8), "fallback": np.zeros(n, bool)}


def prepare_utkface(root: Path, detector, size: int, val_fraction: float, seed: int):
    """Aligned UTKFace arrays and a stats dict (skipped names, unreadable files, fallbacks)."""
    res = read_utkface(root)
    out = _empty(len(res), size)
    out["split"][:] = utk_split(len(res), val_fraction, seed)
    keep = np.ones(len(res), bool)
    for i, rec in enumerate(tqdm(res.records, desc="utkface", mininterval=5)):
        img = rec.image()
        if img is None:
            keep[i] = False
            continue
        out["x"][i], out["fallback"][i] = align_utk_chip(img, detector, size)
        out["age"][i], out["gender"][i], out["race"][i] = rec.age, rec.gender, rec.race
    out = {k: v[keep] for k, v in out.items()}
    stats = {"read": len(res), "skipped": dict(res.skipped), "unreadable": int((~keep).sum()),
             "fallback_alignment": int(out["fallback"].sum()),
             "train": int((out["split"] == 0).sum()), "val": int((out["split"] == 1).sum())}
    return out, stats


def prepare_aaf(root: Path, detector, size: int, val_fraction: float, seed: int):
    """Aligned All-Age-Faces (train split) arrays and a stats dict, like ``prepare_utkface``."""
    res = read_aaf(root, split="train")
    out = _empty(len(res), size)
    out["source"][:] = AAF
    out["split"][:] = utk_split(len(res), val_fraction, seed)
    images, eyes = [], []
    for rec in tqdm(res.records, desc="aaf", mininterval=5):
        img = rec.image()
        images.append(img)
        found = None if img is None else detect_eyes_on_chip(detector, img)
        h, w = (1, 1) if img is None else img.shape[:2]
        eyes.append(None if found is None else (found[0] / (w, h), found[1] / (w, h)))
    found = [e for e in eyes if e is not None]
    canon = (np.median([e[0] for e in found], axis=0), np.median([e[1] for e in found], axis=0)) \
        if found else (np.array([0.3, 0.4]), np.array([0.7, 0.4]))
    keep = np.ones(len(res), bool)
    for i, (rec, img, eye) in enumerate(zip(res.records, images, eyes)):
        if img is None:
            keep[i] = False
            continue
        h, w = img.shape[:2]
        right, left = (canon if eye is None else eye)
        out["x"][i] = align_face(img, right * (w, h), left * (w, h), size=size)
        out["fallback"][i] = eye is None
        out["age"][i], out["gender"][i] = rec.age, rec.gender
    out = {k: v[keep] for k, v in out.items()}
    stats = {"read": len(res), "skipped": dict(res.skipped), "unreadable": int((~keep).sum()),
             "fallback_alignment": int(out["fallback"].sum()),
             "canonical_eyes": [np.round(c, 3).tolist() for c in canon],
             "train": int((out["split"] == 0).sum()), "val": int((out["split"] == 1).sum())}
    return out, stats


def prepare_fer(split_dir: Path, split: int, size: int):
    """FER+ split arrays (original labels, mapped votes, majority) and a stats dict."""
    res = read_ferplus(split_dir)
    out = _empty(len(res), size)
    out["source"][:], out["split"][:] = 1, split
    keep = np.ones(len(res), bool)
    for i, rec in enumerate(tqdm(res.records, desc=split_dir.name, mininterval=5)):
        img = rec.image()
        if img is None:
            keep[i] = False
            continue
        out["x"][i] = crop_to_input(img, size)
        out["votes"][i] = ferplus_to_emotions(rec.votes)
        major = ferplus_majority(rec.votes)
        out["majority"][i] = -1 if major is None else major
        out["emotion"][i] = -1 if rec.emotion is None else rec.emotion
    out = {k: v[keep] for k, v in out.items()}
    stats = {"read": len(res), "skipped": dict(res.skipped), "unreadable": int((~keep).sum())}
    return out, stats


def load_detector(path: str | None):
    """The device's face detector, or None when asked for none (``--detector none``)."""
    if path == "none":
        return None
    from device.detector import FaceDetector, default_detector_path, float_detector_path

    if path is None:
        path = default_detector_path()
        if not path.is_file():  # before the int8 detector ships: the same model in float
            path = float_detector_path()
    return FaceDetector(path, threads=1)


def concat(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {k: np.concatenate([p[k] for p in parts]) for k in FIELDS}


def load_cache(path: Path) -> dict[str, np.ndarray]:
    """The arrays of a cache written by ``prepare`` (``meta`` parsed from JSON)."""
    with np.load(path) as z:
        data = {k: z[k] for k in z.files}
    data["meta"] = json.loads(str(data["meta"])) if "meta" in data else {}
    return data


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.prepare", description=__doc__.split("\n")[0])
    ap.add_argument("--utkface", type=Path, help="UTKFace chips folder")
    ap.add_argument("--ferplus", type=Path,
                    help="FER+ folder holding FER2013Train, FER2013Valid and fer2013_labels.csv")
    ap.add_argument("--aaf", type=Path,
                    help="All-Age-Faces folder holding 'aglined faces' and 'image sets/train.txt'")
    ap.add_argument("--out", type=Path, default=default_faces(),
                    help="cache .npz, outside the repository (default: %(default)s)")
    ap.add_argument("--detector", default=None,
                    help="detector .tflite (default: the installed int8 one, else its float "
                         "source); 'none' aligns UTKFace chips on their canonical eyes only")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--val-fraction", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    parts, meta = [], {"size": args.size, "seed": args.seed, "val_fraction": args.val_fraction}
    detector = load_detector(args.detector) if args.utkface or args.aaf else None
    if detector is not None or args.detector == "none":
        meta["detector"] = "none" if detector is None else str(detector.model.path.name)
    if args.utkface:
        part, meta["utkface"] = prepare_utkface(args.utkface, detector, args.size,
                                                args.val_fraction, args.seed)
        parts.append(part)
    if args.ferplus:
        for name, split in (("FER2013Train", 0), ("FER2013Valid", 1)):
            part, meta[name] = prepare_fer(args.ferplus / name, split, args.size)
            parts.append(part)
    if args.aaf:
        part, meta["aaf"] = prepare_aaf(args.aaf, detector, args.size, args.val_fraction,
                                        args.seed)
        parts.append(part)
    if not parts:
        ap.error("give --utkface, --ferplus and/or --aaf")
    data = concat(parts)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, meta=json.dumps(meta), **data)
    print(json.dumps(meta, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
