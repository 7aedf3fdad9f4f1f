"""The grey of a label's own strokes next to a bar, where it is not the bar's.

Why: the label's blobs are cut from a coverage map scaled between the surface and the
bar's grey.  Blurred or shrunk for a paper, a thick bar keeps its grey while a label's
1 px strokes fade to half of it (a white '100 nm' over a 4 px bar, blurred by 1 px:
its '1' peaks at 0.45 of the bar's contrast and fell out of the line, leaving 'nm'),
and a 1 px bar fades below a label of 2 px strokes (a Zeiss '20 nm' over its H-bar:
scaled by the faded bar, the glyphs saturated into fat blobs that were no glyphs).
Measured on the strokes themselves, the label's coverage is whole again.
"""
from __future__ import annotations

import numpy as np

from .bar_find import Bar, frame_height
from .label import surface

_SAME = 0.15  # of the bar's contrast: within this the label is drawn in the bar's grey
_NONE = 0.3   # under this there is no ink of the bar's colour near it, only surface
_SHARE = 0.5  # percent of the pixels near the bar that a label's strokes cover at least


def label_inks(img: np.ndarray, bar: Bar) -> list[float]:
    """The greys, other than the bar's, that a label next to it may be drawn in: that of
    the strokes of the bar's colour over, under and beside it (the brightest (darkest)
    0.5 % of the pixels where label.text_lines looks for its line, the bar's own rows
    left out), and the frame's extreme of the bar's colour (where software draws
    labels; a blurred label's strokes reach it in their cores only, too few for the
    percentile).  Each is kept where it differs from the bar's grey by more than 0.15
    of the bar's contrast with its surface and stands out from that surface by 0.3."""
    h, w = img.shape
    fg, bg = bar.fg, surface(img, bar)[0]
    contrast = fg - bg
    if abs(contrast) < 1e-3:
        return []
    reach = int(min(0.8 * bar.length, 0.12 * frame_height(h, w)) + 2 * bar.thick)  # as label._window's
    y0, y1 = max(0, bar.y0 - reach), min(h, bar.y1 + reach)
    x0, x1 = max(0, bar.x0 - int(0.3 * bar.length)), min(w, bar.x1 + int(0.3 * bar.length))
    near = img[y0:y1, x0:x1].copy()
    near[max(0, bar.y0 - 2 - y0):bar.y1 + 2 - y0, max(0, bar.x0 - 2 - x0):bar.x1 + 2 - x0] = np.nan
    v = near[np.isfinite(near)]
    found = [float(np.percentile(v, 100 - _SHARE if bar.pol > 0 else _SHARE))] if v.size >= 100 else []
    found.append(1.0 if bar.pol > 0 else 0.0)  # img is scaled 0-1 by the reader
    kept: list[float] = []
    for ink in found:
        ratio = (ink - bg) / contrast
        if ratio >= _NONE and abs(ratio - 1) > _SAME and all(abs(ink - k) > _SAME * abs(contrast) for k in kept):
            kept.append(ink)
    return kept
