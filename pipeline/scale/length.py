"""A bar's length in pixels: tick centre to tick centre, else tip to tip by coverage."""
from __future__ import annotations

import numpy as np

from .bar_find import Bar, half_contrast_length
from .label import Box, surface


def measure_bar(img: np.ndarray, bar: Bar) -> tuple[float, float]:
    """Bar length and its spread over rows: tick centre to tick centre, else tip to tip by coverage."""
    if (ticks := end_ticks(img, bar)) is not None:
        return ticks[1] - ticks[0], 0.0
    if bar.soft:
        return half_contrast_length(img, bar)
    rows = img[bar.y0 + (bar.thick >= 4):bar.y1 - (bar.thick >= 4)].astype(np.float64)
    a, b, w = bar.x0, bar.x1, img.shape[1]
    fg = float(np.median(np.hstack([rows[:, s0 + 2:s1 - 2] for s0, s1 in bar.pieces()])))
    if bar.gap is None:
        a, b = _full_ends(img, bar, rows, a, b, fg)
    lengths = np.full(len(rows), float(b - a - 4))  # pixels a+2 .. b-3 are full; ends by coverage
    for lo, hi, o0, o1 in ((a - 1, a + 2, max(0, a - 6), a - 1), (b - 2, b + 1, b + 1, min(w, b + 6))):
        out = rows[:, o0:o1][np.abs(rows[:, o0:o1] - fg) > 0.3]
        bg = float(np.median(out)) if out.size else 1.0 - fg
        lengths += np.clip((rows[:, max(0, lo):min(w, hi)] - bg) / (fg - bg), 0, 1).sum(axis=1)
    return float(lengths.mean()), float(lengths.std())


def _full_ends(img: np.ndarray, bar: Bar, rows: np.ndarray, a: int, b: int, fg: float) -> tuple[int, int]:
    """Ends ``a``, ``b`` moved out over the columns where the bar's rows, averaged, hold
    its grey (85-130 % of its contrast to the surface it lies on) while the rows just
    above and below are that surface: JPEG's ringing can cut a drawn bar's run of
    extreme pixels short of its end (a yellow bar of 46 px was found 42 px long, its ends
    measured by coverage within 3 px of that).  At most 10 % of its length each way (8 px):
    a stroke of a paler grey touching an end is no bar, and stays for end_doubts to see."""
    h, w = img.shape
    bg = surface(img, bar)[0]
    if abs(fg - bg) < 1e-3:
        return a, b
    col = rows.mean(axis=0)
    up, down = img[max(0, bar.y0 - 2)], img[min(h - 1, bar.y1 + 1)]
    reach = min(8, int(0.1 * (b - a)))

    def bar_like(x: int) -> bool:
        return (0 <= x < w and 0.85 <= (col[x] - bg) / (fg - bg) <= 1.3
                and abs(up[x] - bg) < 0.5 * abs(fg - bg) and abs(down[x] - bg) < 0.5 * abs(fg - bg))

    for _ in range(reach):
        if not bar_like(a - 1):
            break
        a -= 1
    for _ in range(reach):
        if not bar_like(b):
            break
        b += 1
    return a, b


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


def averaged_ends(img: np.ndarray, bar: Bar) -> tuple[int, int, np.ndarray, np.ndarray]:
    """The bar's ends where its rows, averaged (noise down by their count) and smoothed
    over 4 px, fall to half contrast from its middle outwards; where along the row
    a stroke of the bar's grey lies (its rows at >= half contrast, the rows above and
    below it at under a quarter); and where a blob of its grey lies (the rows above
    and below both at half contrast or more).

    On a noisy support one row of a thin bar dips below half contrast here and there:
    the row-by-row search then stops at a dip, the averaged rows do not."""
    w = img.shape[1]
    fg = bar.fg
    cols = slice(max(0, 2 * bar.x0 - bar.x1), min(w, 2 * bar.x1 - bar.x0))
    up, down = img[max(0, bar.y0 - 4):max(0, bar.y0 - 1)], img[bar.y1 + 1:bar.y1 + 4]
    around = np.concatenate([up[:, cols].ravel(), down[:, cols].ravel()])
    bg = float(np.median(around)) if around.size else 1.0 - fg
    if abs(fg - bg) < 1e-3 or not up.size or not down.size:
        return bar.x0, bar.x1, np.zeros(w, bool), np.zeros(w, bool)
    box = np.ones(4) / 4
    c = np.convolve((img[bar.y0:bar.y1].mean(axis=0) - bg) / (fg - bg), box, mode="same")
    sides = [np.convolve((rows.mean(axis=0) - bg) / (fg - bg), box, mode="same") for rows in (up, down)]
    mid = (bar.x0 + bar.x1) // 2
    left = mid - int(np.argmax(c[mid::-1] < 0.5)) if (c[:mid + 1] < 0.5).any() else 0
    right = mid + int(np.argmax(c[mid:] < 0.5)) if (c[mid:] < 0.5).any() else w
    return left, right, (c >= 0.5) & (np.maximum(*sides) < 0.25), np.minimum(*sides) >= 0.5


def end_doubts(img: np.ndarray, bar: Bar, words: Box, length: float, slack: tuple[float, float]) -> list[str]:
    """A second look at the ends of a bar of ``length`` px read with the words in ``words``:
    the averaged rows must give the measured length within ``slack`` (px, fraction),
    nothing of the bar's grey may go on past either end (a bar broken by noise: its
    piece beside the words has the wrong length), and no end may lie in a blob of its
    grey (a bar drawn into a particle and measured through it).  The words' columns are
    no continuation where they stand beside the bar, and no blob where they reach the
    rows looked at (4 above and below the bar).  The averaged rows' ends lie a pixel
    past each true end (a clean 100 px bar gives 101-102): ``slack`` covers that too.

    Not for a split (FEI) bar: its middle is its label's gap (the text finder flags
    its own readings of one; the bar-first reader measures them tick to tick)."""
    if bar.gap is not None:
        return []
    w = img.shape[1]
    left, right, stroke, blob = averaged_ends(img, bar)
    if words[1] < bar.y1 and words[3] > bar.y0:  # words beside the bar, on its rows
        stroke[max(0, words[0] - 2):words[2] + 2] = False
    if words[1] < bar.y1 + 4 and words[3] > bar.y0 - 4:  # words reaching the rows looked at for a blob
        blob[max(0, words[0] - 2):words[2] + 2] = False
    why = []
    wide = max(5, bar.thick + 2)  # wider than an end tick (2-3 px: 3-4 columns after the 4-px smoothing)
    inside = max(2 * wide, int(0.08 * length))  # a particle the bar runs into lengthens it by its own width
    middle = blob[left + inside:max(left + inside, right - inside)]
    if not middle.size:  # a short bar: all of it
        middle = blob[left:max(left, right)]
    if not middle.size or middle.mean() < 0.2:  # else a band or a narrow box of the bar's grey: no blob to tell
        for a, b in ((left, left + inside), (max(0, right - inside), right)):
            a, b = max(0, a), min(w, b)
            if any(n >= wide and not _tick(img, bar, a + s, a + s + n) for s, n in _spans(blob[a:b])):
                why.append("an end of the bar lies in a blob of its grey")
                break
    if abs((right - left) - length) > max(slack[0], slack[1] * length):
        why.append(f"bar ends unclear ({right - left} px by its averaged rows, {length:.1f} px measured)")
    reach, piece = max(6, int(0.2 * length)), max(6, int(0.1 * length))
    for a, b in ((max(0, left - 3 - reach), max(0, left - 3)), (min(w, right + 3), min(w, right + 3 + reach))):
        if any(n >= piece for _, n in _spans(stroke[a:b])):
            why.append("a stroke of the bar's grey goes on past its end (a broken bar?)")
    return why


def _tick(img: np.ndarray, bar: Bar, c0: int, c1: int) -> bool:
    """Whether columns ``c0:c1`` (a blob of the bar's grey at an end, widened by the
    4-px smoothing) hold an end tick: a stroke of its grey, above and below the bar,
    at least three times as tall as it is wide and no wider than twice the bar is thick
    (a pixel of anti-aliasing each side).  An H-bar enlarged for a paper has ticks 4 px
    wide or more, a blob after smoothing as wide as a particle's; a particle the bar
    runs into is about as tall as it is wide, a rod wider than a tick."""
    bg = surface(img, bar)[0]
    if abs(bar.fg - bg) < 1e-3:
        return False
    cover = (img[:, max(0, c0 - 1):c1 + 1] - bg) / (bar.fg - bg) >= 0.5
    cols = cover[max(0, bar.y0 - 3):bar.y0].any(axis=0) | cover[bar.y1:bar.y1 + 3].any(axis=0)  # off the bar's rows
    if not cols.any():
        return False
    k0, k1 = int(np.argmax(cols)), len(cols) - int(np.argmax(cols[::-1]))
    inked = cover[:, k0:k1].mean(axis=1) >= 0.5  # rows the stroke crosses
    up = int(np.argmin(np.r_[inked[:bar.y0][::-1], False]))
    down = int(np.argmin(np.r_[inked[bar.y1:], False]))
    return min(up, down) >= 1 and up + down + bar.thick >= 3 * (k1 - k0) and k1 - k0 <= 2 * bar.thick + 2


def _spans(mask: np.ndarray) -> list[tuple[int, int]]:
    """(start, length) of the runs of True in a 1-D mask."""
    edges = np.flatnonzero(np.diff(np.r_[0, mask.astype(np.int8), 0]))
    return [(int(a), int(b - a)) for a, b in zip(edges[::2], edges[1::2])]
