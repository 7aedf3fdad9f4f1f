"""A cheap look at a frame before segmentation: its compact blobs at every scale.

Three decisions rest on it, each independent of the segmentation it checks:
the typical particle size (at which resolution the network sees the frame,
as cellpose's size model decides), the contrast (HAADF: bright particles;
bright-field: dark ones) and whether segmentation missed what is plainly there.

Scale-normalised Laplacian of Gaussian (Lindeberg), the detector behind
scikit-image's blob_log, but over an image pyramid: a blob of 200 px needs a
sigma of 70 px, which on a full 2048² frame costs seconds per scale, while on
the pyramid every scale costs the same few milliseconds. Each level holds
sigmas 2 and 2.83 (with 1.41 and 4 as scale neighbours), so the ladder of
diameters advances by sqrt(2) from about 4 px to the frame's size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
from scipy.spatial import cKDTree

_SIGMAS = (1.0, 1.41, 2.0, 2.83, 4.0)  # per level; maxima are taken at the middle three
_MIN_SIDE = 24                            # the coarsest level still has this many pixels a side
STANDOUT = 0.15   # a blob this strong (in contrast-range units) is plainly there
MIN_BLOBS = 40    # below this many such blobs the cross-check says nothing
MAX_MISSED = 0.7  # segmentation leaving out more than this share of them is flagged


@dataclass
class Blobs:
    """Columns, one row per blob: centre (full-resolution px), diameter (px) and
    strength (normalised LoG response in units of the frame's robust contrast range)."""
    x: np.ndarray
    y: np.ndarray
    diameter: np.ndarray
    strength: np.ndarray

    def __len__(self) -> int:
        return int(self.x.size)

    def take(self, keep: np.ndarray) -> "Blobs":
        return Blobs(self.x[keep], self.y[keep], self.diameter[keep], self.strength[keep])


def normalised(image: np.ndarray, exclude: np.ndarray | None = None) -> np.ndarray:
    """The frame in units of its 1-99.5 % range, excluded pixels set to the median,
    so a burned-in bar neither sets the range nor shows up as a blob."""
    f = np.nan_to_num(np.asarray(image, np.float32))
    valid = np.ones(f.shape, bool) if exclude is None else ~exclude
    step = max(1, int(math.sqrt(f.size / 1e6)))
    sample = f[::step, ::step][valid[::step, ::step]]
    if sample.size == 0:
        return np.zeros(f.shape, np.float32)
    lo, med, hi = np.percentile(sample, (1.0, 50.0, 99.5))
    f = (f - np.float32(lo)) / np.float32(hi - lo if hi > lo else 1.0)
    if exclude is not None and exclude.any():
        f[exclude] = (med - lo) / (hi - lo if hi > lo else 1.0)
    return f


def find_blobs(image: np.ndarray, exclude: np.ndarray | None = None, polarity: int = 1,
               min_strength: float = 0.05) -> Blobs:
    """Scale-space maxima of the normalised LoG: bright blobs (polarity +1) or dark ones (-1).

    min_strength is in units of the frame's contrast range: a disk of contrast C
    answers about 0.74 C at its own scale, noise and texture far less."""
    f = polarity * normalised(image, exclude)
    xs, ys, ds, ss = [], [], [], []
    level, factor = f, 1
    while min(level.shape) >= _MIN_SIDE:
        responses = [-(s * s) * cv2.Laplacian(cv2.GaussianBlur(level, (0, 0), s), cv2.CV_32F)
                     for s in _SIGMAS]
        # Levels after the first keep only their two middle scales (the others were
        # covered one level down); the first also keeps sigma 1.41 (diameters ~4 px).
        for i in range(1 if factor == 1 else 2, len(_SIGMAS) - 1):
            r = responses[i]
            peak = (r >= cv2.dilate(r, np.ones((3, 3), np.uint8))) & (r > min_strength)
            peak &= (r >= responses[i - 1]) & (r >= responses[i + 1])
            py, px = np.nonzero(peak)
            xs.append((px + 0.5) * factor - 0.5)
            ys.append((py + 0.5) * factor - 0.5)
            ds.append(np.full(px.size, 2 * math.sqrt(2) * _SIGMAS[i] * factor, np.float32))
            ss.append(r[py, px])
        level = cv2.resize(level, (level.shape[1] // 2, level.shape[0] // 2), interpolation=cv2.INTER_AREA)
        factor *= 2
    blobs = Blobs(*(np.concatenate(v).astype(np.float32) if v else np.zeros(0, np.float32)
                    for v in (xs, ys, ds, ss)))
    return _suppress_overlaps(blobs)


def _suppress_overlaps(blobs: Blobs) -> Blobs:
    """One blob per particle: of two blobs where one's centre lies inside the other
    (the same particle answering at a neighbouring scale, or its facets), the weaker goes."""
    if len(blobs) < 2:
        return blobs
    tree = cKDTree(np.column_stack([blobs.x, blobs.y]))
    weaker = np.zeros(len(blobs), bool)
    for j, near in enumerate(tree.query_ball_point(tree.data, 0.5 * blobs.diameter)):
        for i in near:
            if i != j:
                weaker[i if blobs.strength[i] < blobs.strength[j] else j] = True
    return blobs.take(~weaker)


def strong(blobs: Blobs, fraction: float = 0.35, floor: float = 0.08) -> Blobs:
    """The blobs that stand out: at least `fraction` of the strongest ones (their 98th
    percentile, so one hot pixel does not set the bar) and above an absolute floor."""
    if not len(blobs):
        return blobs
    top = float(np.percentile(blobs.strength, 98))
    return blobs.take(blobs.strength >= max(floor, fraction * top))


def typical_diameter(blobs: Blobs) -> float | None:
    """Area-weighted median diameter (px) of the strong blobs; None when too few to say.

    Weighted by area because a frame of a few dozen large particles also holds
    thousands of noise and texture maxima at the finest scales: by count they
    win, by the area they cover the particles do."""
    s = strong(blobs)
    if len(s) < 5:
        return None
    order = np.argsort(s.diameter)
    weight = np.cumsum((s.diameter ** 2 * s.strength)[order])
    return float(s.diameter[order][np.searchsorted(weight, 0.5 * weight[-1])])


@dataclass
class CrossCheck:
    blobs: int      # bright compact blobs that stand out in the raw frame
    missed: float   # the share of them that segmentation left out
    unsure: bool


def cross_check(survey: Blobs, mask: np.ndarray, min_blobs: int = MIN_BLOBS,
                max_missed: float = MAX_MISSED) -> CrossCheck:
    """Does segmentation cover what plainly stands out? Independent of it: the
    blobs come from the raw frame, so an empty or sparse mask on a frame full of
    bright compact blobs is caught, whatever the engine or the model did."""
    s = strong(survey)
    s = s.take((s.strength >= STANDOUT) & (s.diameter >= 4))
    if len(s) < min_blobs:
        return CrossCheck(len(s), 0.0, False)
    h, w = mask.shape
    ys = np.clip(np.rint(s.y).astype(int), 0, h - 1)
    xs = np.clip(np.rint(s.x).astype(int), 0, w - 1)
    missed = float(1.0 - mask[ys, xs].mean())
    return CrossCheck(len(s), round(missed, 3), missed > max_missed)
