"""Particles too small for the frame's working scale: a second, finer pass.

The mirror of pipeline.segment.coarse. A frame whose typical particle is large is
shrunk until that particle is near the trained size; a particle five times smaller
is then 3-5 px across, and what the network returns for it is either lost or, on a
thick bright support, indistinguishable from texture broken into bits, which
`size.fragment_area_px` drops. On frames that mix 20 px and 165 px spheres
(the bench renderer, log-uniform sizes) that left out 15 of 82 particles, all of
them the smallest, and d50 read 14-18 % high although every particle found was
sized right.

So where the blob survey sees compact blobs near or below the fragment size that the
frame's mask does not cover, the frame is also segmented at a finer scale, and a
fine detection is added when all of this holds:

- it touches no particle of the working scale (a margin of FAR px), so it is not a
  piece of a large particle's rim;
- the fine pass saw it at a size it can outline (MIN_PX across at that scale);
- it stands out from the support around it: its mean over the median of a ring
  around it is at least STANDOUT times the ring's own spread. Measured on 2048²
  frames: real 19-34 px spheres on dark and bright supports 3.4-8.7; texture
  bits of thick bright supports (pipeline.synth "bright" and "textured" at 30-120 px)
  at most 1.6.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from .blobs import Blobs, normalised

FINER = 4.0        # the fine pass's scale is this many times the working one (at most full size)
MISSED_BLOBS = 3   # compact blobs under the fragment size outside the mask before a fine pass is run
NEAR_FRAGMENT = 2.0  # blobs up to this many fragment diameters (the blob ladder's steps are sqrt 2 apart)
SMALL_BLOB = 0.06  # their LoG strength (contrast units): 20-34 px spheres beside 165 px ones answer 0.08-0.13
FAR = 2            # px between an added particle and any particle of the working scale
MIN_PX = 4.0       # diameter at the fine scale below which an outline says nothing
STANDOUT = 2.5     # (mean - ring median) / ring spread of a particle, not texture
MIN_SPREAD = 0.01  # of the contrast range: a flat or clipped support still has this much


@dataclass
class FineAdd:
    scale: float | None   # the fine pass's resampling factor; None: no fine pass
    candidates: int       # detections of the fine pass apart from the working scale's particles
    added: int            # of those, added as particles


def fine_scale(working_scale: float, fragment_area: int, survey: Blobs, mask: np.ndarray) -> float | None:
    """The factor for a fine pass, or None: only a shrunk frame with small compact
    blobs that its mask (after the fragment filter) leaves out gets one."""
    if working_scale >= 1.0 or fragment_area <= 0:
        return None
    small = survey.take((survey.strength >= SMALL_BLOB)
                        & (survey.diameter < NEAR_FRAGMENT * math.sqrt(4 * fragment_area / math.pi)))
    h, w = mask.shape
    ys = np.clip(np.rint(small.y).astype(int), 0, h - 1)
    xs = np.clip(np.rint(small.x).astype(int), 0, w - 1)
    if int((~mask[ys, xs]).sum()) < MISSED_BLOBS:
        return None
    return min(1.0, FINER * working_scale)


def add_fine(image: np.ndarray, mask: np.ndarray, fine: np.ndarray, scale: float, min_area: int,
             exclude: np.ndarray | None = None) -> tuple[np.ndarray, int, int]:
    """The mask with the fine pass's particles that pass the module's guards added;
    the number of candidates and of additions."""
    mask, fine = np.asarray(mask, bool), np.asarray(fine, bool)
    near = cv2.dilate(mask.astype(np.uint8), np.ones((2 * FAR + 1, 2 * FAR + 1), np.uint8)) > 0
    n, labels, stats, _ = cv2.connectedComponentsWithStats(fine.astype(np.uint8), connectivity=8)
    smallest = max(min_area, math.pi / 4 * (MIN_PX / scale) ** 2)
    level = normalised(image, exclude)
    out = mask.copy()
    candidates = added = 0
    for i in range(1, n):
        x, y, w, h, area = stats[i]
        if area < smallest:
            continue
        y0, x0 = max(0, y - 4), max(0, x - 4)
        y1, x1 = min(mask.shape[0], y + h + 4), min(mask.shape[1], x + w + 4)
        own = labels[y0:y1, x0:x1] == i
        if (near[y0:y1, x0:x1] & own).any():
            continue
        candidates += 1
        ring = (cv2.dilate(own.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0) & ~own
        ring &= ~fine[y0:y1, x0:x1] & ~mask[y0:y1, x0:x1]
        if exclude is not None:
            ring &= ~exclude[y0:y1, x0:x1]
        if ring.sum() < 8:
            continue
        around = level[y0:y1, x0:x1][ring]
        spread = max(float(around.std()), MIN_SPREAD)
        if not float(level[y0:y1, x0:x1][own].mean() - np.median(around)) >= STANDOUT * spread:
            continue
        out[y0:y1, x0:x1] |= own
        added += 1
    return out, candidates, added
