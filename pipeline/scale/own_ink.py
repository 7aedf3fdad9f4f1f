"""Greys other than the bar's to cut a label's blobs against, for a second try.

Why: the label's blobs are cut from a coverage map scaled between the surface and the
bar's grey, at half of it.  Blurred or shrunk for a paper, that grey stops fitting the
label in two ways:
* a thick bar keeps its grey while a label's 1 px strokes fade (a white '100 nm' over a
  4 px bar, blurred by 1 px: its '1' peaks at 0.45 of the bar's contrast and fell out
  of the line, leaving 'nm'): the label is cut against its own, fainter, grey;
* a 1-2 px bar fades to a grey its label's cores pass (a Zeiss '20 nm' over its H-bar:
  cut at half the faded bar's contrast, the blurred strokes were 3-4 px wide, blobs too
  fat for glyphs): the label is cut deeper, against the frame's extreme.
A deeper cut also sees faint glyphs and points less: the reader carries the doubts of
the line cut at the bar's grey over to it (reader._bar_first).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .bar_find import Bar
from .label import glyph_sized, surface, window_reach

_SAME = 0.15  # of the bar's contrast: within this the label is drawn in the bar's grey
_APART = 0.1  # of it: where the bar's own cut found no line at all, a fainter grey this far from it
_INKISH = 0.5  # of the bar's contrast from the surface: the pixels a label's strokes are among
_FEWEST = 20   # of those: fewer, and there is no label of the bar's colour near it
_CORES = 90    # percentile of those (in the bar's direction): the strokes' cores, past their rims


@dataclass(frozen=True)
class Ink:
    """A grey to cut a bar's label against, and whether it lies past the bar's own grey
    (a deeper cut, whose faint-glyph and point doubts the bar's own cut must lend)."""
    grey: float
    deeper: bool


def label_inks(img: np.ndarray, bar: Bar, lined: bool = True) -> list[Ink]:
    """The greys, other than the bar's, to cut the label next to ``bar`` against:

    * fainter: where the strokes of the bar's colour near it (the pixels past half the
      bar's contrast from the surface, within the rows label.text_lines searches and
      0.3 of the bar's length past its ends; their 90th percentile in the bar's
      direction) stay under 0.85 of the bar's contrast (0.9 where the bar's own cut
      found no line: below).  Only blobs inside that region
      count, off the bar and its end ticks' columns (_inner_blobs): a tick is the bar's
      drawing, and what runs out of the region's top or bottom, or across it, or a
      rule in from its side, is no glyph of a label beside the bar (a databar's border
      line, its edge, the image over it).  Over a Zeiss databar's 8 px italic '200 nm',
      shrunk 0.7x, those held the percentile at the bar's grey while the label's 1 px
      strokes had faded to 0.6-0.9 of it; cut at half the bar's contrast, the glyphs
      fell apart and no line was found.  Where the cut at the bar's grey found no line
      at all (``lined`` False), a fainter grey counts from 0.1 of the contrast below
      the bar's: nothing is then read twice, and thin strokes fall apart at a
      grey nearer the bar's (a 1 px white '200 nm' under a white bar, anti-aliased on
      a light support, its cores at 0.88 of the bar's contrast, most of its pixels at
      0.4-0.7: cut at 0.6 of it, specks; at the cores' grey, the line, read right);
    * deeper: for a soft bar (its grey not the frame's extreme: faded), the frame's
      extreme of its colour, where that lies 0.15 of the contrast past the bar's grey.
    Empty where fewer than 20 such pixels are left."""
    h, w = img.shape
    fg, bg = bar.fg, surface(img, bar)[0]
    contrast = fg - bg
    if abs(contrast) < 1e-3:
        return []
    reach = int(window_reach(bar, img.shape))
    y0, y1 = max(0, bar.y0 - reach), min(h, bar.y1 + reach)
    x0, x1 = max(0, bar.x0 - int(0.3 * bar.length)), min(w, bar.x1 + int(0.3 * bar.length))
    near = img[y0:y1, x0:x1]
    inkish = near[_inner_blobs(near, (near - bg) / contrast > _INKISH, bar, x0, y0)]
    if inkish.size < _FEWEST:
        return []
    found = []
    strokes = float(np.percentile(inkish, _CORES if bar.pol > 0 else 100 - _CORES))
    if (strokes - bg) / contrast < 1 - (_SAME if lined else _APART):  # at least _INKISH: they are among those pixels
        found.append(Ink(strokes, False))
    extreme = float(img.max() if bar.pol > 0 else img.min())
    if bar.soft and (extreme - bg) / contrast > 1 + _SAME:
        found.append(Ink(extreme, True))
    return found


def _inner_blobs(near: np.ndarray, mask: np.ndarray, bar: Bar, x0: int, y0: int) -> np.ndarray:
    """``mask`` (over ``near``, the region at column ``x0``, row ``y0`` of the frame) less
    the bar's pieces (2 px round each: a split bar's label in its gap stays), the blobs
    that run out of the region's top or bottom, or across it from side to side, or out
    of one side unless sized like glyphs (label.glyph_sized: a label beside the bar may
    run out so; a rule coming in from the side may not), and
    then the columns of the bar's end ticks (3 px each side of its first and last column)."""
    mask = mask.copy()
    for px0, px1 in bar.pieces():
        mask[max(0, bar.y0 - 2 - y0):max(0, bar.y1 + 2 - y0), max(0, px0 - 2 - x0):max(0, px1 + 2 - x0)] = False
    n, lab, st, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    h, w = near.shape
    x, y, bw, bh = st[:, 0], st[:, 1], st[:, 2], st[:, 3]
    left, right = x == 0, x + bw == w
    edge = (y == 0) | (y + bh == h) | (left & right) | ((left | right) & ~glyph_sized(bw, bh, bar.length))
    edge[0] = True  # the background
    inner = mask & ~edge[lab]
    for end in (bar.x0, bar.x1 - 1):  # ticks are cut after: first, a line through them is seen whole
        inner[:, max(0, end - 3 - x0):max(0, end + 4 - x0)] = False
    return inner
