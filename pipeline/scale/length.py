"""A bar's length in pixels: tick centre to tick centre, else tip to tip by coverage."""
from __future__ import annotations

import numpy as np

from .bar_find import Bar, half_contrast_length
from .label import surface


def measure_bar(img: np.ndarray, bar: Bar) -> tuple[float, float]:
    """Bar length and its spread over rows: tick centre to tick centre, else tip to tip by coverage."""
    if (ticks := end_ticks(img, bar)) is not None:
        return ticks[1] - ticks[0], 0.0
    if bar.soft:
        return half_contrast_length(img, bar)
    rows = img[bar.y0 + (bar.thick >= 4):bar.y1 - (bar.thick >= 4)].astype(np.float64)
    a, b, w = bar.x0, bar.x1, img.shape[1]
    fg = float(np.median(np.hstack([rows[:, s0 + 2:s1 - 2] for s0, s1 in bar.pieces()])))
    lengths = np.full(len(rows), float(b - a - 4))  # pixels a+2 .. b-3 are full; ends by coverage
    for lo, hi, o0, o1 in ((a - 1, a + 2, max(0, a - 6), a - 1), (b - 2, b + 1, b + 1, min(w, b + 6))):
        out = rows[:, o0:o1][np.abs(rows[:, o0:o1] - fg) > 0.3]
        bg = float(np.median(out)) if out.size else 1.0 - fg
        lengths += np.clip((rows[:, max(0, lo):min(w, hi)] - bg) / (fg - bg), 0, 1).sum(axis=1)
    return float(lengths.mean()), float(lengths.std())


def end_ticks(img: np.ndarray, bar: Bar) -> tuple[float, float] | None:
    """Centres of 1-px end ticks just above and below the bar (FEI style), if present."""
    h, w = img.shape
    if bar.y0 < 1 or bar.y1 >= h:
        return None
    fg, bg, centres = bar.fg, surface(img, bar)[0], []
    for lo, hi in ((bar.x0 - 1, bar.x0 + 6), (bar.x1 - 6, bar.x1 + 1)):
        cs = []
        for r in (bar.y0 - 1, bar.y1):
            c = np.clip((img[r, max(0, lo):min(w, hi)] - bg) / (fg - bg), 0, 1)
            k = int(np.argmax(c))
            if not 0.75 <= c.sum() <= 1.2 or c[max(0, k - 1):k + 2].sum() < 0.8 * c.sum():
                return None
            cs.append(max(0, lo) + float((c * np.arange(c.size)).sum() / c.sum()))
        if abs(cs[0] - cs[1]) > 0.3:
            return None
        centres.append((cs[0] + cs[1]) / 2)
    return centres[0], centres[1]
