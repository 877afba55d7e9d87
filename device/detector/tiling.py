"""Tiling large frames so small faces stay big enough for the detector (pure functions).

A 1080p frame letterboxed into a 320x192 input shrinks 6x: a face 60 px tall at 3-4 m becomes
10 px, below what BlazeFace finds reliably. Running the detector on the whole frame plus an n x n
grid of overlapping tiles, then merging everything with the same weighted NMS, keeps such faces
at 2-3x the size for n-fold more detector calls. Small frames (640x360) need no tiles.
"""

from __future__ import annotations

import math

OVERLAP = 0.2  # of the frame side, shared by neighbouring tiles: faces up to that size fit one tile


def auto_grid(height: int, rows_per: int = 480, most: int = 3) -> int:
    """Tiles per side for a frame ``height`` pixels tall: 1 below 720 px, 2 below 1200, then 3.

    Measured on pedestrians_1080p.mp4 (int8 full_wide, one thread): 1 tile finds 2.7 faces per
    frame, 2x2 tiles 4.9 at about 3x the time, 3x3 tiles 5.4 at 6x: 2x2 is the 1080p default.
    """
    return max(1, min(most, math.floor(height / rows_per + 0.5)))


def tile_grid(width: int, height: int, n: int,
              overlap: float = OVERLAP) -> list[tuple[int, int, int, int]]:
    """``n`` x ``n`` tiles (x1, y1, x2, y2) covering the frame; each pair of neighbours overlaps
    by ``overlap`` of the frame side. ``n == 1`` is the whole frame."""
    if n <= 1:
        return [(0, 0, width, height)]

    def spans(side: int) -> list[tuple[int, int]]:
        size = side * (1 + (n - 1) * overlap) / n
        step = (side - size) / (n - 1)
        return [(int(math.floor(i * step)), min(side, int(math.ceil(i * step + size))))
                for i in range(n)]

    return [(x1, y1, x2, y2) for (y1, y2) in spans(height) for (x1, x2) in spans(width)]


def detection_regions(width: int, height: int,
                      tiles: int | str = "auto") -> list[tuple[int, int, int, int]]:
    """Regions to run the detector on: the whole frame, plus the tiles when there are any."""
    n = auto_grid(height) if tiles == "auto" else int(tiles)
    whole = (0, 0, width, height)
    return [whole] if n <= 1 else [whole, *tile_grid(width, height, n)]
