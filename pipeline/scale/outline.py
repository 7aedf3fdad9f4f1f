"""Outlines drawn round a bar and its label in the other colour, and what they enclose.

A published figure may draw its bar and label white, edged in black, on the image
itself (the real two-panel TEM figure of scalebars-real; a held-out series draws the
style too).  The outline matters twice: an end of the bar mixes with the outline's grey,
not the surface's (length.py cuts it there), and the outline parts the label's glyphs
from the texture round them, so a bright blob of the texture beside a glyph or in its
counter is no ink (label.py and faint_strokes.py leave those out).
Boxes are half-open (x0, y0, x1, y1): ``image[y0:y1, x0:x1]``.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .bar_find import Bar


def outline_grey(img: np.ndarray, bar: Bar) -> float | None:
    """The grey of an outline drawn round the bar, None where there is none: along the
    bar's middle half, a row within 3 of it above and one below hold a grey well past
    (0.3 of the contrast) the surface 5-7 rows out (as many as the frame has), on the
    side away from the bar's grey (a white bar edged in black on the image itself, as a
    published TEM figure has it).

    An end's rim pixel is a mix of the bar's grey and what lies beside it.  Cut against
    the surface beyond an outline, it counts for too little: white bars of 31-43 px
    edged in black in held-out figures measured 2-3 % short, two of them with no doubt.
    A box behind the bar, as deep as the rows looked at, is its surface and no outline."""
    h = img.shape[0]
    q = bar.length // 4
    if bar.y0 < 5 or bar.y1 + 5 > h or q < 2:  # a row of the surface past the outline on each side
        return None
    cols = slice(bar.x0 + q, bar.x1 - q)
    edges = []
    for near, far in ((range(bar.y0 - 3, bar.y0), slice(max(0, bar.y0 - 7), bar.y0 - 4)),
                      (range(bar.y1, bar.y1 + 3), slice(bar.y1 + 4, min(h, bar.y1 + 7)))):
        surround = float(np.median(img[far, cols]))
        rim = min((float(np.median(img[r, cols])) for r in near), key=lambda v: bar.pol * v)
        if bar.pol * (surround - rim) < 0.3 * abs(bar.fg - surround):
            return None
        edges.append(rim)
    return float(np.mean(edges))


@dataclass
class OutlineMap:
    """Where an outline lies in a window, and the parts of the window it walls in.

    ``near``: within 2 px of an outline pixel.  ``raw``: labels of what is no outline,
    4-connected (an 8-connected wall parts them), and each label's box (x, y, w, h);
    ``closed``: the same with the outline grown by a pixel, never over ink."""
    near: np.ndarray
    raw: tuple[np.ndarray, np.ndarray]
    closed: tuple[np.ndarray, np.ndarray]

    def share(self, own: np.ndarray, x: int, y: int, lh: int, walled: bool | None = None) -> float:
        """How much of a piece's rim lies within 2 px of the outline, where the outline
        encloses it; 0 where it does not.  ``own``: the piece's mask over its box, whose
        corner is (x, y) in the window; ``lh``: the line's glyph height.  ``walled``:
        whether the piece must be enclosed (True), need not be (False), or by default
        must be unless glyph-tall: a glyph's rim tells it from the texture (an outline
        broken in places round a thin 'm' let the texture into its counters, while blobs
        of the texture beside glyphs keep under half their rim edged).

        Enclosed: the part of the window that is no outline round the piece is glyph-
        sized (at most 1.6 glyph heights tall and 3 wide, 8 px more for the outline)
        and off the window's edge.  A blob of the texture in the gap between two outlined
        glyphs lies within 2 px of their outlines all along its sides, yet its part runs
        on up and down the gap to the surface: counted as a decimal point, it flagged a
        '100 nm'.  An outline 1-3 px wide, blurred, leaves a pixel or two of grey between
        a glyph's threshold and the outline's own grey, hence 2 px; compressed, it may let
        the texture through a gap of a pixel or two (the arch of the real figure's 'm'
        into its counter, open below; a thin '5' edged 1 px, shrunk), so a piece may be
        enclosed with the outline grown by a pixel, unless it is a speck 2 px wide: grown,
        the outlines on both sides of a gap close round the texture in it.  A glyph-tall
        sliver taken for a glyph is read as a '1' or 'l' beside the others, and makes no
        1-2-5 value ('150', '21 nm') or no unit.  A glyph broken at the ink's threshold
        (a 1 px stem of an 'm') shares its part with the rest.  A piece cut by the
        window's edge cannot be seen walled in: its rim inside is all there is."""
        h, w = own.shape
        rows = slice(max(0, y - 1), min(self.near.shape[0], y + h + 1))
        cols = slice(max(0, x - 1), min(self.near.shape[1], x + w + 1))
        mine = np.zeros((rows.stop - rows.start, cols.stop - cols.start), bool)
        mine[y - rows.start:y - rows.start + h, x - cols.start:x - cols.start + w] = own
        rim = (cv2.dilate(mine.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0) & ~mine
        if not rim.any():
            return 0.0
        tall, cut = h >= 0.6 * lh, x == 0 or y == 0 or x + w == self.near.shape[1] or y + h == self.near.shape[0]
        if walled is None:
            walled = not tall
        if walled and not cut and not self._walled(self.raw, mine, rows, cols, lh) and not (
                (tall or _wide(own)) and self._walled(self.closed, mine, rows, cols, lh)):
            return 0.0
        return float(self.near[rows, cols][rim].mean())

    def _walled(self, parts: tuple[np.ndarray, np.ndarray], mine: np.ndarray, rows: slice, cols: slice,
                lh: int) -> bool:
        lab, box = parts
        ids = np.unique(lab[rows, cols][mine])
        ids = ids[ids > 0]
        if not ids.size:
            return False
        x, y, w, h = (box[ids, k] for k in range(4))
        inside = (x > 0) & (y > 0) & (x + w < lab.shape[1]) & (y + h < lab.shape[0])
        return bool((inside & (h <= 1.6 * lh + 8) & (w <= 3 * lh + 8)).all())


def _wide(own: np.ndarray) -> bool:
    """Whether a piece is 3 px wide somewhere: no sliver."""
    return bool(cv2.distanceTransform(np.pad(own.astype(np.uint8), 1), cv2.DIST_L2, 3).max() > 1.5)


def outline_map(img: np.ndarray, ink: np.ndarray, pol: int, surface: float, contrast: float) -> OutlineMap:
    """The outline round ink of polarity ``pol`` in a window ``img`` (its blobs ``ink``):
    the pixels past the ``surface`` the outline is drawn on, away from the ink (darker
    round white ink), by 0.3 of the ink's ``contrast``."""
    wall = (pol * (surface - img) >= 0.3 * contrast).astype(np.uint8)
    near = cv2.dilate(wall, np.ones((5, 5), np.uint8)) > 0
    closed = cv2.dilate(wall, np.ones((3, 3), np.uint8)) * (ink == 0)
    parts = []
    for w in (wall, closed):
        _, lab, st, _ = cv2.connectedComponentsWithStats(1 - w, connectivity=4)
        parts.append((lab, st[:, :4]))
    return OutlineMap(near, parts[0], parts[1])
