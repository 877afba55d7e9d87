"""How much the attribute answers move when the eye keypoints move by a fraction of a pixel.

    python -m tools.crop_sensitivity PICTURE... [--sigma 0.1] [--draws 40] [--models DIR]

Every face the appliance finds in the pictures is aligned ``--draws`` times with both eye
keypoints moved by seeded Gaussian noise of ``--sigma`` frame pixels, and analyzed; the table
gives, per face, the eye distance and the spread (standard deviation and range) of age and
P(female) over the draws. It shows why the appliance keeps the path from frame to attribute
outputs reproducible bit for bit: differences far below a pixel already move the answers.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np


def sensitivity(pipeline, image: np.ndarray, sigma: float, draws: int, seed: int = 0) -> list[dict]:
    """Per face in ``image``: eye distance, and age / P(female) spread over jittered crops."""
    from device.align import align_face

    rng = np.random.default_rng(seed)
    out = []
    size = pipeline.analyzer.size
    gray = pipeline.analyzer.channels == 1
    for det in pipeline.detector.detect(image):
        crops = []
        for _ in range(draws):
            j = rng.normal(0.0, sigma, (2, 2))
            crops.append(align_face(image, det.right_eye + j[0], det.left_eye + j[1], size, gray))
        attrs = pipeline.analyzer.analyze(crops)
        age = np.array([a.age for a in attrs])
        female = np.array([a.gender_prob if a.gender == "female" else 1 - a.gender_prob
                           for a in attrs])
        out.append({"eye_px": float(np.hypot(*(det.left_eye - det.right_eye))),
                    "age_sd": float(age.std()), "age_range": float(np.ptp(age)),
                    "female_sd": float(female.std()), "female_range": float(np.ptp(female))})
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.crop_sensitivity",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("pictures", nargs="+", type=Path)
    parser.add_argument("--sigma", type=float, default=0.1, help="eye noise, frame pixels")
    parser.add_argument("--draws", type=int, default=40)
    parser.add_argument("--models", type=Path, default=None, help="models folder")
    args = parser.parse_args(argv)
    from device.pipeline import VisionPipeline

    pipeline = VisionPipeline(args.models)
    if pipeline.analyzer is None:
        print("no attribute model installed", file=sys.stderr)
        return 2
    pipeline.analyzer.gender_min_age = 0.0  # the model's own P(female), children's faces too
    pipeline.analyzer.gender_min_prob = 0.5  # and faces it is unsure of
    print(f"eyes moved by Gaussian noise of {args.sigma:g} px, {args.draws} draws per face")
    print(f"{'picture':<28} {'eyes px':>7} {'age sd':>7} {'range':>6} {'P(f) sd':>8} {'range':>6}")
    for path in args.pictures:
        image = cv2.imread(str(path))
        if image is None:
            print(f"cannot read {path}", file=sys.stderr)
            return 2
        for row in sensitivity(pipeline, image, args.sigma, args.draws):
            print(f"{path.name[:28]:<28} {row['eye_px']:>7.1f} {row['age_sd']:>7.2f} "
                  f"{row['age_range']:>6.1f} {row['female_sd']:>8.3f} {row['female_range']:>6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
