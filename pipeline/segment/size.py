"""At which resolution to segment: the size model, as cellpose has one.

A network sees particles well only at the sizes it was trained on (here about
5-40 px); a frame taken at a higher magnification shows the same particles
at 100-200 px, where the U-Net segments a rim or nothing. So the frame is
shrunk until its particles are near the trained size, segmented, and the
probabilities are brought back to full resolution by linear interpolation
(edges stay sub-pixel, sizes unbiased). A frame whose particles are already
small is segmented as it is: shrinking is the only direction, because
enlarging adds no information and costs time.

Two independent estimates of the particle size must agree before a frame is
shrunk, because a wrong shrink loses every small particle, while a missed
one only costs accuracy on large ones: the scale-space blob survey
(pipeline.blobs) and the engine itself run on a copy shrunk by the power of two that
brings the survey's particles nearest the trained size (cheap: a quarter to
1/256 of the pixels). Both were measured on synthetic frames with 8-200 px
particles (each within a factor 1.4 of the truth from 8 to 100 px) and on
real catalyst images, where thick supports fool the blob survey and the engine
finds few particles: there they disagree, and the frame stays at full size.
A frame that mixes sizes far apart gets one scale here; pipeline.segment.coarse
outlines particles far larger than it at a second one, pipeline.segment.fine finds
those far smaller at a second one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np
from skimage import measure

from . import blobs
from ..settings import TARGET_DIAMETER_PX

DISAGREE = "size estimates disagree"
MIN_PROBE_FACTOR = 4   # a 2x probe costs a quarter of a full pass: 1.7 s of a 4.5 s frame
MAX_PROBE_FACTOR = 16
MIN_SCALE = 1 / 16
SHRINK_ABOVE = 1.25       # shrink only particles this much larger than the target (a sqrt 2 ladder step is 1.41)
AGREE = 2.2                # the two estimates may differ by this factor (the blob ladder is in sqrt 2 steps)


@dataclass
class SizeDecision:
    scale: float                    # resampling factor for segmentation; 1 = full resolution
    blob_diameter_px: float | None  # the blob survey's typical diameter
    probe_diameter_px: float | None  # the engine's, on the shrunk copy
    probe_count: int
    reason: str


def shrink(image: np.ndarray, scale: float) -> np.ndarray:
    """Area-averaged copy at `scale` (< 1): the noise averages out as the pixels grow."""
    h, w = image.shape
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(np.asarray(image, np.float32), size, interpolation=cv2.INTER_AREA)


def shrink_mask(mask: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray | None:
    """A boolean mask at another size; a pixel touched by the mask stays in it."""
    if mask is None:
        return None
    small = cv2.resize(mask.astype(np.float32), shape[::-1], interpolation=cv2.INTER_AREA)
    return small > 0


def enlarge(values: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Probabilities back at full resolution, interpolated linearly between pixel centres."""
    return cv2.resize(values.astype(np.float32), shape[::-1], interpolation=cv2.INTER_LINEAR)


def probe_factor(blob_d: float, target_px: float, shape: tuple[int, int]) -> int:
    """The power of two that brings the blob survey's particles nearest the trained size,
    so the engine judges them at a size it knows (at least 4, so the probe costs at most
    a sixteenth of a full pass; at least 64 px a side)."""
    factor = 2 ** int(round(np.log2(max(MIN_PROBE_FACTOR, blob_d / target_px))))
    while factor > 2 and min(shape) / factor < 64:
        factor //= 2
    return int(min(factor, MAX_PROBE_FACTOR))


def probe_diameter(image: np.ndarray, exclude: np.ndarray | None,
                   segment_at: Callable[[np.ndarray, np.ndarray | None], np.ndarray],
                   factor: int) -> tuple[float | None, int]:
    """Median equivalent diameter (full-resolution px) of what the engine finds on a
    `factor` times smaller copy, and how many it found. By count, not by area: on a
    thick textured support the few large bright regions the engine takes at low
    resolution would win by area (real PtW and Cu catalysts: 50-70 px estimated for
    16-25 px particles); by count the many real small particles do, and the frame
    stays at full resolution."""
    if min(image.shape) < 64 * factor:
        return None, 0
    small = shrink(image, 1 / factor)
    mask = segment_at(small, shrink_mask(exclude, small.shape))
    areas = np.bincount(measure.label(mask).ravel())[1:]
    areas = areas[areas >= 4]
    if areas.size < 5:
        return None, int(areas.size)
    return float(factor * np.median(np.sqrt(4 * areas / np.pi))), int(areas.size)


FRAGMENT_FRACTION = 0.3  # of the typical diameter: below it, a shrunk frame's detection is texture


def fragment_area_px(decision: SizeDecision) -> int:
    """Smallest area (full-resolution px) kept in a frame that was shrunk because two
    independent estimates agree its particles are large: a detection under a third of
    their typical diameter is support texture broken into bits (measured on bright
    thick supports, where it halved d50), not a particle. 0 for full-resolution frames."""
    if decision.scale >= 1.0 or not decision.blob_diameter_px or not decision.probe_diameter_px:
        return 0
    d = FRAGMENT_FRACTION * min(decision.blob_diameter_px, decision.probe_diameter_px)
    return int(np.pi / 4 * d * d)


def decide_segment_scale(image: np.ndarray, exclude: np.ndarray | None, survey: blobs.Blobs,
                 segment_at: Callable[[np.ndarray, np.ndarray | None], np.ndarray],
                 target_px: float = TARGET_DIAMETER_PX) -> SizeDecision:
    """The resampling factor for segmentation (see the module's docstring)."""
    blob_d = blobs.typical_diameter(survey)
    if blob_d is None or blob_d < SHRINK_ABOVE * target_px:
        return SizeDecision(1.0, blob_d, None, 0, "particles at the trained size or smaller")
    probe_d, n = probe_diameter(image, exclude, segment_at, probe_factor(blob_d, target_px, image.shape))
    if probe_d is None:
        return SizeDecision(1.0, blob_d, None, n, "the engine found too few particles on the small copy")
    if max(blob_d, probe_d) > AGREE * min(blob_d, probe_d):
        return SizeDecision(1.0, blob_d, probe_d, n, DISAGREE)
    d = float(np.sqrt(blob_d * probe_d))  # both agree within AGREE: their geometric mean
    if d < SHRINK_ABOVE * target_px:
        return SizeDecision(1.0, blob_d, probe_d, n, "particles at the trained size or smaller")
    return SizeDecision(max(MIN_SCALE, target_px / d), blob_d, probe_d, n, "large particles")
