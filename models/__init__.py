"""Factory models shipped with the appliance (see MODEL_CARD.md and README.md here)."""

from pathlib import Path

MODELS_DIR = Path(__file__).resolve().parent
