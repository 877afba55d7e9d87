"""Plain data types passed between the stages of the vision path.

Coordinates are pixels in the original frame, x to the right, y down.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# Order of the detector's six keypoints (MediaPipe BlazeFace order, from the subject's view:
# "right eye" is the subject's right eye, which appears on the LEFT of the image).
KEYPOINT_NAMES = ("right_eye", "left_eye", "nose_tip", "mouth_center", "right_ear_tragion",
                  "left_ear_tragion")

EMOTIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
GENDERS = ("male", "female")
UNKNOWN = "unknown"  # a gender not told: under the model's min_age, or below its min_prob


@dataclass(frozen=True)
class Frame:
    """One picture from a source. ``image`` is H x W x 3 uint8 BGR (OpenCV order)."""

    image: np.ndarray
    timestamp: float  # seconds; monotonic for cameras, media time for files
    index: int = 0
    source: str = ""


@dataclass(frozen=True)
class Detection:
    """One face found by the detector.

    Attributes:
        box: (x1, y1, x2, y2) in frame pixels.
        score: detector confidence in [0, 1].
        keypoints: 6 x 2 float array in frame pixels, in ``KEYPOINT_NAMES`` order.
    """

    box: tuple[float, float, float, float]
    score: float
    keypoints: np.ndarray = field(repr=False)

    @property
    def right_eye(self) -> np.ndarray:
        return self.keypoints[0]

    @property
    def left_eye(self) -> np.ndarray:
        return self.keypoints[1]

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]


@dataclass(frozen=True)
class FaceAttributes:
    """What the multi-head model says about one aligned face.

    ``gender`` is "unknown" (and ``gender_prob`` None) when the face's estimated age is below the
    model's ``min_age`` (``device.manifest.gender_min_age``), or when the likelier gender's
    probability is below the model's ``min_prob`` (``device.manifest.gender_min_prob``): where
    the model cannot tell (small children, faces it is unsure of), it does not guess.
    """

    age: float  # years
    age_group: str  # e.g. "25-37"
    gender: str  # "male" | "female" | "unknown"
    gender_prob: float | None  # probability of ``gender``; None when "unknown"
    emotions: dict[str, float]  # the 7 emotion probabilities, summing to 1

    @property
    def emotion(self) -> str:
        return max(self.emotions, key=self.emotions.get)

    def to_dict(self) -> dict:
        return {
            "age": round(float(self.age), 1),
            "age_group": self.age_group,
            "gender": self.gender,
            "gender_prob": (None if self.gender_prob is None
                            else round(float(self.gender_prob), 3)),
            "emotion": self.emotion,
            "emotions": {k: round(float(v), 3) for k, v in self.emotions.items()},
        }
