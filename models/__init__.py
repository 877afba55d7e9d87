"""The models shipped with the appliance, installed as package data of ``device``.

In a checkout this folder is the repository's ``models/`` (``device/models`` links to it); in an
installed wheel it holds only what the device reads at run time: the int8 models, their manifest,
the self-test picture and the licence notices. ``MODEL_CARD.md`` and ``README.md`` here describe
them.
"""

from pathlib import Path

MODELS_DIR = Path(__file__).resolve().parent

# The public-domain portrait (NASA, Eileen Collins; scikit-image's ``data.astronaut()``) that the
# models' self-test, the bundles' known-answer test and the demo clip are made from.
PORTRAIT = MODELS_DIR / "selftest" / "astronaut.jpg"
