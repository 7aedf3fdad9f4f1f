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

import numpy as np

from .bar_find import Bar
from .label import surface, window_reach

_SAME = 0.15  # of the bar's contrast: within this the label is drawn in the bar's grey
_INKISH = 0.5  # of the bar's contrast from the surface: the pixels a label's strokes are among
_FEWEST = 20   # of those: fewer, and there is no label of the bar's colour near it
_CORES = 90    # percentile of those (in the bar's direction): the strokes' cores, past their rims


@dataclass(frozen=True)
class Ink:
    """A grey to cut a bar's label against, and whether it lies past the bar's own grey
    (a deeper cut, whose faint-glyph and point doubts the bar's own cut must lend)."""
    grey: float
    deeper: bool


def label_inks(img: np.ndarray, bar: Bar) -> list[Ink]:
    """The greys, other than the bar's, to cut the label next to ``bar`` against:

    * fainter: where the strokes of the bar's colour near it (the pixels past half the
      bar's contrast from the surface, within the rows label.text_lines searches and
      0.3 of the bar's length past its ends, the bar's rows left out; their 90th
      percentile in the bar's direction) stay under 0.85 of the bar's contrast;
    * deeper: for a soft bar (its grey not the frame's extreme: faded), the frame's
      extreme of its colour, where that lies 0.15 of the contrast past the bar's grey.
    None where fewer than 20 pixels near the bar lie past half its contrast."""
    h, w = img.shape
    fg, bg = bar.fg, surface(img, bar)[0]
    contrast = fg - bg
    if abs(contrast) < 1e-3:
        return []
    reach = int(window_reach(bar, img.shape))
    y0, y1 = max(0, bar.y0 - reach), min(h, bar.y1 + reach)
    x0, x1 = max(0, bar.x0 - int(0.3 * bar.length)), min(w, bar.x1 + int(0.3 * bar.length))
    near = img[y0:y1, x0:x1].copy()
    near[max(0, bar.y0 - 2 - y0):bar.y1 + 2 - y0, max(0, bar.x0 - 2 - x0):bar.x1 + 2 - x0] = np.nan
    v = near[np.isfinite(near)]
    inkish = v[(v - bg) / contrast > _INKISH]
    if inkish.size < _FEWEST:
        return []
    found = []
    strokes = float(np.percentile(inkish, _CORES if bar.pol > 0 else 100 - _CORES))
    if (strokes - bg) / contrast < 1 - _SAME:  # at least _INKISH: they are among those pixels
        found.append(Ink(strokes, False))
    extreme = float(img.max() if bar.pol > 0 else img.min())
    if bar.soft and (extreme - bg) / contrast > 1 + _SAME:
        found.append(Ink(extreme, True))
    return found
