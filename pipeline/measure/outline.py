"""Each particle's segmented outline as a radius per direction: the coordinate in which
the profile edge bins a particle's pixels and grows its mask.

A radial profile needs a radius. A sphere has one; the thickness contours of an
ellipsoid or of a faceted crystal are scaled copies of its outline (exactly so for an
ellipse, and for a regular polygon, whose inward offsets are homothetic about its
centre), not circles. The moment ellipse used before is exact for ellipsoids but bins a
polygon's faces and corners together (a hexagon's corners lie 15 % further out than its
faces): the ring average smeared the edge over that range, the fit took the smear for
probe blur (2.4-2.8 px chosen on frames drawn with 0.7-1.4 px) and faceted particles came
out 7-9 % small. Here the outline's radius is taken in every direction (sectors of about
2.5 px of outline, smoothed) and scaled so that the star it draws has the particle's pixel
area; a pixel's star radius is its distance from the centre over the outline's radius in
its direction, times the equivalent radius. Circles stay circles, ellipses and polygons
become circles of their own area, and a fitted radius R means the outline scaled to the
area pi R^2, so the grown mask has the area the fit found.

An outline that folds back as seen from its centre (one direction crossing it twice, as
a crescent or an unsplit cluster does) has no radius per direction; such a particle is
`folded` and keeps its segmented edge.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NSEC_MAX = 96          # sectors per outline at most
SECTOR_PX = 2.5        # outline length per sector, px
FOLD_PX = 1.5          # spread of a sector's outline radii beyond which the outline folds...
FOLD_SHARE = 0.15      # ...or this share of the radius, whichever is larger


@dataclass
class Outline:
    """Per label (index = label): area (px), centre, equivalent radius sqrt(A / pi), sector
    count, each sector's outline radius (rows padded with 0) and whether it folds."""
    area: np.ndarray
    cy: np.ndarray
    cx: np.ndarray
    radius: np.ndarray
    sectors: np.ndarray
    rb: np.ndarray
    folded: np.ndarray


def _sector_sums(lab: np.ndarray, sec: np.ndarray, values: np.ndarray, n: int) -> tuple[np.ndarray, ...]:
    """Count, sum and sum of squares of `values` per (label, sector), each (n + 1, NSEC_MAX)."""
    key, size = lab * NSEC_MAX + sec, (n + 1) * NSEC_MAX
    return tuple(np.bincount(key, w, minlength=size).reshape(n + 1, NSEC_MAX)
                 for w in (None, values, values * values))


def _smooth_circular(rb: np.ndarray, sectors: np.ndarray) -> np.ndarray:
    """A [1 2 1] / 4 filter along each row's own `sectors` entries, wrapping around."""
    idx = np.arange(NSEC_MAX)[None, :]
    rows = np.arange(rb.shape[0])[:, None]
    k = np.maximum(sectors, 1)[:, None]
    smooth = (rb[rows, (idx - 1) % k] + 2 * rb + rb[rows, (idx + 1) % k]) / 4
    return np.where(idx < sectors[:, None], smooth, 0.0)


def outlines(labels: np.ndarray, s: np.ndarray) -> Outline:
    """Every label's outline radius per direction, from its inner boundary ring (pixels
    within 2 px of the support, `s` being the signed distance of edge.signed_distance),
    all labels at once (bincount)."""
    n = int(labels.max())
    flat = labels.ravel()
    fg = np.flatnonzero(flat)
    lab = flat[fg]
    rows, cols = np.divmod(fg, labels.shape[1])
    area = np.bincount(lab, minlength=n + 1).astype(np.float64)
    safe = np.maximum(area, 1.0)
    cy, cx = np.bincount(lab, rows, n + 1) / safe, np.bincount(lab, cols, n + 1) / safe
    radius = np.sqrt(area / np.pi)
    sectors = np.clip(np.round(2 * np.pi * radius / SECTOR_PX), 8, NSEC_MAX).astype(np.int64)
    ring = s.ravel()[fg] > -1.5
    lab, dy, dx = lab[ring], rows[ring] - cy[lab[ring]], cols[ring] - cx[lab[ring]]
    sec = _sector_of(dy, dx, sectors[lab])
    r = np.hypot(dy, dx)
    count, total, squares = _sector_sums(lab, sec, r, n)
    own = np.arange(NSEC_MAX)[None, :] < sectors[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        rb = total / count
        spread = np.sqrt(np.maximum(squares / count - rb * rb, 0.0))
        mean = (total * own).sum(1) / (count * own).sum(1)
    folded = (np.nan_to_num(spread) > np.maximum(FOLD_PX, FOLD_SHARE * radius)[:, None]).any(1)
    rb = _smooth_circular(np.where(count > 0, rb, mean[:, None]), sectors)
    star_area = np.pi * (rb * rb).sum(1) / np.maximum(sectors, 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        rb = np.nan_to_num(rb * np.sqrt(area / star_area)[:, None])
    return Outline(area, cy, cx, radius, sectors, rb, folded)


def _sector_of(dy: np.ndarray, dx: np.ndarray, sectors: np.ndarray) -> np.ndarray:
    """Sector index of each offset (dy, dx) among `sectors` (per element), from angle 0."""
    turn = (np.arctan2(dy, dx) / (2 * np.pi)) % 1.0
    return np.minimum(np.floor(turn * sectors).astype(np.int64), sectors - 1)


def star_radius(outline: Outline, where: np.ndarray, width: int, lab: np.ndarray) -> np.ndarray:
    """Each flat pixel index `where` (frame `width` px wide) as the star radius of label
    `lab`: its distance from the centre over the outline's radius in its direction (linear
    between sector centres), times the equivalent radius."""
    rows, cols = np.divmod(where, width)
    dy, dx = rows - outline.cy[lab], cols - outline.cx[lab]
    k = outline.sectors[lab]
    turn = ((np.arctan2(dy, dx) / (2 * np.pi)) % 1.0) * k - 0.5
    i0 = np.floor(turn).astype(np.int64)
    t = turn - i0
    i0 %= k
    rb = outline.rb[lab, i0] * (1 - t) + outline.rb[lab, (i0 + 1) % k] * t
    return outline.radius[lab] * np.hypot(dy, dx) / np.maximum(rb, 1e-6)
