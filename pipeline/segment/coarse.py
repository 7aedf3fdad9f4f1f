"""Particles too large for the frame's working scale: a second, coarser pass.

Size-aware segmentation (pipeline.segment.size) picks one working scale per frame.
A frame that mixes 30 px and 190 px particles is worked at the scale of its
many small ones, where the network sees the largest as a smooth plateau with
no edge in its field of view and returns a rim or a few bright patches: on
spheres of 150-200 px, 1-10 pieces covering 6-60 % of the particle (measured on
the bench renderer's 32-200 px frames: the 64-200 px band read 43 % small on
dark and 94 % small on bright supports, while frames of one size read right).

So where the blob survey's typical particle is several times larger than the
working scale handles, the frame is also segmented at the scale that brings
that size to the trained one, and a coarse outline replaces the fine pieces
inside it when all of this holds (each guard measured against the real
catalyst frames, whose thick supports make the blob survey see large
"particles" that are texture):

- the outline is large at the working scale (LARGE times the trained size), so
  a particle the fine pass sees whole is never touched;
- it is one convex particle (solidity at least SOLID): two touching particles
  merged at the coarse scale, or a patch of support texture, are not;
- the fine pass plainly did not see it whole: it found it in several pieces or
  covered less than COVERED of it;
- it is bright against its own rim: its mean lies well above the ring around it,
  in units of the frame's noise-robust contrast range (a texture patch is not);
- it is a dome: its brightness rises steadily from its edge to its middle
  (correlation with the distance from the edge at least DOME), as a thick
  rounded particle's does. That is the kind the fine pass splits: a faceted or
  flat particle has a sharp edge and is found whole at any scale;
- the fine pieces are not particles on it: pieces plainly brighter than the rest
  of the outline (BRIGHTER) are small particles on a thick support grain, which
  the coarse pass sees as one large blob.

On the real catalyst frames (13 HAADF, thick oxide supports) 12 coarse outlines
passed the first four guards and would have replaced real 16-25 px particles;
their dome correlation was 0.14-0.84 and their pieces 0.26-2.2 contrasts
brighter than the rest, against 0.93-0.95 and -0.6 to +0.23 for split spheres.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .blobs import normalised

COARSE_ABOVE = 4.0   # survey's typical particle at the working scale, in trained sizes, above which to look
LARGE = 5.0          # an outline this many trained sizes across (at the working scale) may replace pieces
SOLID = 0.9          # area / convex hull area of a single particle's outline
COVERED = 0.85       # the fine pass covering less of it than this did not see it whole
CONTRAST = 0.15      # mean inside over the ring around it, in units of the frame's 1-99.5 % range
DOME = 0.9           # correlation of brightness with depth inside the outline (spheres 0.93-0.95, grains <= 0.84)
BRIGHTER = 0.5       # fine pieces brighter than the rest of the outline by this share of its contrast are particles


@dataclass
class CoarseMerge:
    scale: float | None   # the coarse pass's resampling factor; None: no coarse pass
    candidates: int       # large outlines of the coarse pass, looked at
    replaced: int         # of those, taken in place of the fine pieces


def coarse_scale(blob_diameter_px: float | None, working_scale: float, target_px: float,
                 min_scale: float) -> float | None:
    """The factor for a coarse pass, or None when the frame's particles, as the blob
    survey sees them, are within what the working scale handles."""
    if not blob_diameter_px or blob_diameter_px * working_scale < COARSE_ABOVE * target_px:
        return None
    at = max(min_scale, target_px / blob_diameter_px)
    return at if at <= working_scale / 2 else None   # the working scale at its floor already


def merge_coarse(image: np.ndarray, fine: np.ndarray, coarse: np.ndarray, working_scale: float,
                 target_px: float, exclude: np.ndarray | None = None) -> tuple[np.ndarray, int, int]:
    """The fine mask with each large, convex, bright coarse outline that the fine pass
    saw only in pieces put in their place; the number of large coarse outlines looked
    at and of replacements. The fine pieces that go are those of the particle itself
    (`_pieces_of`); every other stays, a pixel apart from the outline."""
    fine = np.asarray(fine, bool)
    n, coarse_labels, stats, _ = cv2.connectedComponentsWithStats(np.asarray(coarse, np.uint8), connectivity=8)
    min_area = np.pi / 4 * (LARGE * target_px / working_scale) ** 2
    big = [i for i in range(1, n) if stats[i, cv2.CC_STAT_AREA] >= min_area]
    if not big:
        return fine, 0, 0
    _, fine_labels = cv2.connectedComponents(fine.astype(np.uint8), connectivity=8)
    fine_area = np.bincount(fine_labels.ravel())
    level = normalised(image, exclude)
    out = fine.copy()
    placed = np.zeros_like(fine)
    taken = 0
    for i in big:
        x, y, w, h = stats[i, :4]
        pad = max(3, int(0.15 * max(w, h)))
        y0, x0 = max(0, y - pad), max(0, x - pad)
        y1, x1 = min(fine.shape[0], y + h + pad), min(fine.shape[1], x + w + pad)
        box = (slice(y0, y1), slice(x0, x1))
        inside = coarse_labels[box] == i
        if not _accept(inside, fine[box], fine_labels[box], level[box], coarse_labels[box],
                       None if exclude is None else exclude[box]):
            continue
        pieces = fine_labels[box]
        window, mine = out[box], placed[box]
        window[np.isin(pieces, _pieces_of(inside, pieces, fine_area)) & ~mine] = False
        others = cv2.dilate(window.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
        window[inside & ~(others & ~mine)] = True
        mine |= inside
        taken += 1
    return out, len(big), taken


def _pieces_of(inside: np.ndarray, pieces: np.ndarray, area: np.ndarray) -> np.ndarray:
    """The fine pieces of the particle a coarse outline stands for: those mostly inside
    it, and those mostly in its rim band (`_rim`) that touch it or are no compact
    particle of their own (rim crescents). A compact particle beside it, a few pixels
    beyond its edge, is another particle and stays."""
    ids, counts = np.unique(pieces[inside & (pieces > 0)], return_counts=True)
    out = set(ids[counts >= 0.5 * area[ids]].tolist())
    near = _rim(inside)
    touching = cv2.dilate(inside.view(np.uint8), np.ones((5, 5), np.uint8)) > 0
    ids, counts = np.unique(pieces[near & (pieces > 0)], return_counts=True)
    for piece in ids[counts >= 0.5 * area[ids]]:
        own = pieces == piece
        if (own & touching).any() or not _compact(own):
            out.add(int(piece))
    return np.array(sorted(out), dtype=pieces.dtype)


def _compact(own: np.ndarray) -> bool:
    """A roundish piece: its area at least half the disc across its longest extent."""
    ys, xs = np.nonzero(own)
    (_, _), (w, h), _ = cv2.minAreaRect(np.column_stack([xs, ys]).astype(np.float32))
    longest = max(w, h) + 1.0
    return bool(ys.size >= 0.5 * np.pi / 4 * longest * longest)


def _rim(inside: np.ndarray) -> np.ndarray:
    """The outline and a band around it a sixth of its radius wide: the coarse pass's
    edge lies inside the particle's outer edge (its threshold is the mask edge, and
    resampling softens it), so the fine pass's pieces of the particle's rim lie there."""
    r = max(2, int(round(np.sqrt(inside.sum() / np.pi) / 6)))
    return cv2.dilate(inside.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))) > 0


def _accept(inside: np.ndarray, fine: np.ndarray, fine_labels: np.ndarray, level: np.ndarray,
            coarse_labels: np.ndarray, exclude: np.ndarray | None) -> bool:
    """The guards of the module's docstring, for one coarse outline in its window."""
    area = int(inside.sum())
    contours, _ = cv2.findContours(inside.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    hull = cv2.contourArea(cv2.convexHull(np.vstack(contours)))
    if hull <= 0 or area / hull < SOLID:
        return False
    pieces = np.unique(fine_labels[inside & fine])
    covered = float((inside & fine).sum()) / area
    if len(pieces) < 2 and covered >= COVERED:
        return False
    ring = (cv2.dilate(inside.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (9, 9))) > 0)
    ring &= ~inside & (coarse_labels == 0)
    if exclude is not None:
        ring &= ~exclude
    if ring.sum() < 20:
        return False
    contrast = float(level[inside].mean() - np.median(level[ring]))
    if not contrast >= CONTRAST:
        return False
    smooth = cv2.GaussianBlur(level, (0, 0), 2)
    depth = cv2.distanceTransform(inside.astype(np.uint8), cv2.DIST_L2, 5)
    with np.errstate(all="ignore"):
        dome = np.corrcoef(depth[inside], smooth[inside])[0, 1]
    if not np.isfinite(dome) or dome < DOME:
        return False
    found, rest = inside & fine, inside & ~fine
    return not (found.any() and rest.any()
                and float(smooth[found].mean() - smooth[rest].mean()) > BRIGHTER * contrast)
