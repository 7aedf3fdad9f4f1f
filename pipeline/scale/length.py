"""A bar's length in pixels: tick centre to tick centre, else tip to tip by coverage."""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..robust import robust_sigma
from .bar_find import Bar, half_contrast_length, tick_ink
from .label import Box, surface, surface_pixels
from .outline import outline_grey

NOISE_SPREAD = 0.01  # the most a bar's length may be unsure by from pixel noise (one SD)


def measure_bar(img: np.ndarray, bar: Bar) -> tuple[float, float]:
    """Bar length and its spread over rows: tick centre to tick centre, else tip to tip by coverage."""
    if (ticks := end_ticks(img, bar)) is not None:
        return ticks[1] - ticks[0], 0.0
    beside = outlined_ends(img, bar)
    if bar.soft:
        return half_contrast_length(img, bar, _ticked_ends(img, bar, bar.x0, bar.x1), beside)
    rows, fg, a, b = _coverage_ends(img, bar)
    w = img.shape[1]
    lengths = np.full(len(rows), float(b - a - 4))  # pixels a+2 .. b-3 are full; ends by coverage
    ticked = _ticked_ends(img, bar, a, b)
    for lo, hi, o0, o1, tick, own in ((a - 1, a + 2, max(0, a - 6), a - 1, ticked[0], beside[0]),
                                      (b - 2, b + 1, b + 1, min(w, b + 6), ticked[1], beside[1])):
        out = surface_pixels(rows[:, o0:o1].ravel(), fg)  # the surface past the end, as the label's window takes it
        bg = own if own is not None else float(np.median(out)) if out.size else 1.0 - fg
        ends = rows[:, max(0, lo):min(w, hi)]
        ink = tick_ink(ends.mean(axis=0), fg, bg) if tick else fg
        lengths += np.clip((ends - bg) / (ink - bg), 0, 1).sum(axis=1)
    return float(lengths.mean()), float(lengths.std())


def dark_rims(img: np.ndarray, bar: Bar, length: float) -> str | None:
    """A doubt where both ends of a bar under 120 px dip past the surface beyond them
    (darker round a white bar, brighter round a black one) by 0.15 of the contrast within
    4 columns, and not both to nearly black (white): an outline blurred or thinner than a
    pixel, whose own grey the ends cannot be cut against.

    Blurred with its bar and the surface, a thin outline keeps little of its grey
    (``outline_grey`` sees none, or a paler one), yet pulls the bar's rim pixels toward
    it: a white bar of 34 px edged 1 px in black and blurred by 0.7-1.6 px measured 5-8 %
    short with no doubt (a review's case); at 150 px, 1.6 % at worst.  Unoutlined, a
    blurred end falls to the surface and no further.  The price, 2 of 60 held-out
    outlined figures read right before and now flagged: one 1.8 % off, and one whose
    outline, a pixel wide, straddles two columns at one end and looks blurred there."""
    if length >= 120 or bar.gap is not None or end_ticks(img, bar) is not None:
        return None
    extreme = 0.0 if bar.pol > 0 else 1.0  # what an outline round it is drawn in
    dips, sharp = [], []
    for near, beyond in _past_ends(img, bar, 4):
        if not near.size or not beyond.size:
            return None
        surround = float(np.median(beyond))
        darkest = float(near.min() if bar.pol > 0 else near.max())
        dips.append(bar.pol * (surround - darkest) / max(1e-3, abs(bar.fg - surround)))
        sharp.append(abs(darkest - extreme) <= 0.25 * abs(bar.fg - extreme))
    if min(dips) < 0.15 or all(sharp):  # no rim, or an outline kept sharp: cut against its own grey
        return None
    return "an outline blurred round the bar: the grey its ends are cut against is unsure"


def outlined_ends(img: np.ndarray, bar: Bar) -> tuple[float | None, float | None]:
    """For each end of the bar (left, right), the grey of the outline drawn round it
    (``outline_grey``), None where it has none: the bar's rows, averaged, reach halfway
    from the surface past that end (3-8 columns out) to the outline's grey within the
    3 columns next to it.

    Averaged over the rows and kept to the outline's own width from the end, a dark speck
    a few pixels past an unoutlined end (a bar edged above and below only) is no outline:
    taken for one it made a 33 px bar 3 % long (a review's case)."""
    edge = outline_grey(img, bar)
    if edge is None:
        return None, None
    out: list[float | None] = []
    for near, beyond in _past_ends(img, bar, 3):
        if not near.size or not beyond.size:
            out.append(None)
            continue
        surround = float(np.median(beyond))  # the surface past the end (and past an outline round it)
        darkest = float(near.min() if edge < surround else near.max())  # (brightest, round a black bar)
        out.append(edge if abs(darkest - surround) >= 0.5 * abs(edge - surround) else None)
    return out[0], out[1]


def _past_ends(img: np.ndarray, bar: Bar, near: int) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """The bar's rows averaged past each end (left, right): the ``near`` columns next to
    it, where an outline round it lies, and the 6 beyond those, the surface past it."""
    w = img.shape[1]
    col = img[bar.y0:bar.y1].mean(axis=0)
    return ((col[max(0, bar.x0 - near):bar.x0], col[max(0, bar.x0 - near - 6):max(0, bar.x0 - near)]),
            (col[bar.x1:min(w, bar.x1 + near)], col[min(w, bar.x1 + near):min(w, bar.x1 + near + 6)]))


def _coverage_ends(img: np.ndarray, bar: Bar) -> tuple[np.ndarray, float, int, int]:
    """The rows a bar is measured on by coverage, their grey, and the ends (columns) its
    full pixels run between."""
    rows = img[bar.y0 + (bar.thick >= 4):bar.y1 - (bar.thick >= 4)].astype(np.float64)
    fg = float(np.median(np.hstack([rows[:, s0 + 2:s1 - 2] for s0, s1 in bar.pieces()])))
    a, b = (bar.x0, bar.x1) if bar.gap is not None else _full_ends(img, bar, rows, bar.x0, bar.x1, fg)
    return rows, fg, a, b


def fading_ends(img: np.ndarray, bar: Bar, length: float) -> str | None:
    """A doubt where a bar measured by coverage fades out past the columns counted at an
    end and half contrast puts its ends 1.5 % apart from that.

    Coverage counts a pixel beyond each end of the full run: a crisp end's.  Blurred by
    1.6 px, a white bar in a black outline fades over four columns on each side, the
    outline's dark (the surface the end is cut against) is lost in the blur, and the bar
    of a real figure measured 188 px for 196; half contrast gave 193.9.  Where the first
    column not counted holds half the bar's contrast to the darkest (brightest) of it
    and the 8 beyond, the two lengths must agree.  Neither is kept: which end is right the
    frame does not say (a 1-px H-bar's ticks put half contrast 22 % short while its
    coverage is right, but its ends do not fade)."""
    if bar.gap is not None or bar.soft or end_ticks(img, bar) is not None:
        return None
    rows, fg, a, b = _coverage_ends(img, bar)
    col, w = rows.mean(axis=0), img.shape[1]
    fades = []
    for x, beyond in ((a - 2, col[max(0, a - 10):max(0, a - 1)]), (b + 1, col[min(w, b + 1):min(w, b + 10)])):
        ref = float(beyond.min() if bar.pol > 0 else beyond.max()) if beyond.size else fg
        fades.append(0 <= x < w and abs(fg - ref) >= 0.3 * bar.span and (col[x] - ref) / (fg - ref) >= 0.5)
    if not any(fades):
        return None
    half, spread = half_contrast_length(img, bar, _ticked_ends(img, bar, bar.x0, bar.x1))
    if spread >= 99 or abs(half - length) <= 0.015 * length:  # 99: no surface beyond an end (the frame's edge)
        return None
    return f"bar ends fade past the columns measured ({length:.1f} px by coverage, {half:.1f} px at half contrast)"


def noisy_ends(img: np.ndarray, bar: Bar, length: float) -> str | None:
    """A doubt where the pixel noise round a bar leaves its ``length`` unsure by more
    than ``NOISE_SPREAD`` of it (one standard deviation): an error of two is then past
    the 2 % a reading must keep.

    Each end is cut on about three columns of each row (by coverage, or at half
    contrast between two), and the bar's rows are averaged: the length's spread is
    sqrt(6 / rows) times the noise over the bar's contrast (its own grey, measured, to
    the surface's).  The noise is measured in the 4 rows above and below the bar, over
    its columns: horizontal neighbours' differences, robust, over sqrt 2, as
    denoise.noise_sigma takes them from every second row of a frame, here from every
    row of these few (a texture there counts as noise too).  A faint 29 px bar two rows
    thick under noise of sigma 25 at a contrast of 112 (spread 1.4 %) measured 29.9 px
    for 29.2, 2.3 % long, with no other doubt; of 874 readings of the held-out, hard,
    outlined, noisy, enlarged and resampled real frames confident but for this doubt,
    no other passes 1 % (the next, just under it, is 0.3 % off).  Not for a split (FEI)
    bar nor an H-bar with end ticks: they are measured tick to tick, on the ticks' rows."""
    if bar.gap is not None or end_ticks(img, bar) is not None:
        return None
    cols = slice(bar.x0, bar.x1)
    sides = [s for s in (img[max(0, bar.y0 - 5):max(0, bar.y0 - 1), cols], img[bar.y1 + 1:bar.y1 + 5, cols])
             if s.shape[0] >= 2]
    if not sides or bar.length < 8:  # no surface to measure (the bar on the frame's edge rows)
        return None
    surface_grey = float(np.median(np.concatenate([s.ravel() for s in sides])))
    contrast = abs(float(np.median(img[bar.y0:bar.y1, bar.x0 + 2:bar.x1 - 2])) - surface_grey)
    if contrast < 1e-3:
        return None
    rows = max(1, bar.thick - 2 * (bar.thick >= 4))  # the rows measured (_coverage_ends)
    noise = robust_sigma(np.concatenate([np.diff(s, axis=1).ravel() for s in sides])) / np.sqrt(2)
    spread = np.sqrt(6 / rows) * noise / contrast
    if spread <= NOISE_SPREAD * length:
        return None
    return f"bar of {length:.1f} px under noise: its length is unsure by {100 * spread / length:.1f} % (one SD)"


def repeats_pixels(img: np.ndarray) -> bool:
    """Whether the frame was enlarged by repeating pixels (nearest neighbour): in nearly
    every block of 16 pairs of neighbouring rows, and of columns, that are not flat,
    one row (column) repeats the other exactly.

    Its bar's ends then lie on the coarser grid of the frame it was made from: each may
    be a whole pixel out, where a frame's own bar is exact and a resampled one's ends
    are soft (half a pixel).  Enlarged 1.3x, every block of the 17 real frames holds a
    repeat; as they are, padded, enlarged by interpolation or compressed, at most 5 %
    do, but for a clean databar strip whose bar and glyph rows repeat (88 % of row
    blocks padded, 95 % of column blocks).  Flat lines (a blank band, padding) repeat
    without meaning it, so only pairs of lines with detail count."""
    def spread(a: np.ndarray) -> float:
        detail = a.max(axis=1) > a.min(axis=1)
        same = (a[1:] == a[:-1]).all(axis=1)[detail[1:] & detail[:-1]]
        n = same.size // 16
        return float(same[:16 * n].reshape(n, 16).any(axis=1).mean()) if n >= 4 else 0.0  # 64 lines at least
    return spread(img) >= 0.97 and spread(img.T) >= 0.97


def _ticked_ends(img: np.ndarray, bar: Bar, a: int, b: int) -> tuple[bool, bool]:
    """Whether each end of the bar (columns ``a`` and ``b - 1``) is an end tick crossing it,
    with its twin at the other end (``_tick_pair``): an H-bar's ends are cut at half the
    tick's contrast (bar_find.tick_ink)."""
    out = []
    for c0 in (a, b - 1):
        pair = _tick_pair(img, bar, c0, c0 + 1)
        out.append(pair is not None and (pair[0].x0 - 1 <= c0 < pair[0].x1 + 1))
    return out[0], out[1]


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
    return a - _end_tick_width(img, bar, col, a - 1, -1, bg, fg), b + _end_tick_width(img, bar, col, b, 1, bg, fg)


def _end_tick_width(img: np.ndarray, bar: Bar, col: np.ndarray, x: int, step: int, bg: float, fg: float) -> int:
    """Columns of an end tick from ``x`` outwards (``step`` -1 left, +1 right), 0 if none.

    An H-bar sharpened with its overshoot kept (a float frame) holds less than its own
    grey where the tick crosses it: the bar's run and the extension above stop at the
    tick, and an XL30 '5 um' measured 113.5 px for 116.  A tick is taken only where the
    bar's rows and the rows above and below hold half its contrast for at most twice
    its thickness (a pixel of anti-aliasing each side), the bar stops right after it,
    and ``_tick_pair`` finds just those columns tick-shaped, with a twin as wide at the
    other end: a crossing line or a glyph beside the bar is no end tick."""
    h, w = img.shape
    up, down = img[max(0, bar.y0 - 2)], img[min(h - 1, bar.y1 + 1)]
    widest = 2 * bar.thick + 2

    def cover(v: float) -> float:
        return (v - bg) / (fg - bg)

    def full(k: int) -> bool:  # the bar's rows and the rows above and below hold half its contrast
        return 0 <= k < w and min(cover(col[k]), cover(up[k]), cover(down[k])) >= 0.5

    skip = int(0 <= x < w and cover(col[x]) >= 0.5 and not full(x) and full(x + step))
    x += step * skip  # a column of the bar left pale by sharpening between its run and the tick
    n = 0
    while n <= widest and full(x + step * n):
        n += 1
    beyond = x + step * n
    if n == 0 or n > widest or not 0 <= beyond < w or cover(col[beyond]) >= 0.5:
        return 0
    c0 = min(x, x + step * (n - 1))
    pair = _tick_pair(img, bar, c0, c0 + n)
    if pair is None:  # the stroke checked is the one added, and as wide as its twin
        return 0
    here, there = pair
    return n + skip if abs(here.x0 - c0) <= 1 and abs(here.x1 - (c0 + n)) <= 1 and abs(there.width - n) <= 1 else 0


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
    past each true end (a clean 100 px bar gives 101-102, a crisp one, its ends on whole
    pixels, always 102): ``slack`` covers that too.

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
    4-px smoothing) hold an end tick: a stroke of its grey, above and below the bar
    alike (neither side under half the other), at least twice as tall as it is wide
    (a nanowire panel's 2 px ticks, enlarged 2x, are 4 px wide and 10 tall with the
    bar) and no wider than twice the bar is thick (a pixel of anti-aliasing each side),
    with a stroke of that shape at the bar's other end too.  An H-bar enlarged for a
    paper has ticks 4 px wide or more, a blob after smoothing as wide as a particle's;
    a particle the bar runs into is about as tall as it is wide, a rod wider than a
    tick, and a fibre crossing one end has no twin at the other (a review drew a 3 px
    bar run into an 8 px fibre: measured 4 % long, and no doubt without the twin)."""
    return _tick_pair(img, bar, c0, c1) is not None


def _tick_pair(img: np.ndarray, bar: Bar, c0: int, c1: int) -> tuple[Stroke, Stroke] | None:
    """The end tick in or nearest columns ``c0:c1`` and its twin at the other end (see
    ``_tick``), None where either is missing or they differ; never one stroke twice."""
    reach = 2 * bar.thick + 4
    here = _stroke(img, bar, c0 - reach, c1 + reach, (c0 + c1) / 2)
    if here is None or not _tick_shaped(here, bar):
        return None
    far = bar.x1 if (c0 + c1) / 2 < (bar.x0 + bar.x1) / 2 else bar.x0
    there = _stroke(img, bar, far - reach, far + reach, far)
    if (there is None or there.x0 == here.x0 or not _tick_shaped(there, bar)
            or abs(there.width - here.width) > max(2, here.width // 2)
            or not 0.5 <= (there.up + there.down) / (here.up + here.down) <= 2):
        return None
    return here, there


class Stroke(NamedTuple):
    """A stroke of a bar's grey crossing it: its columns x0:x1 and its rows above and below."""
    x0: int
    x1: int
    up: int
    down: int

    @property
    def width(self) -> int:
        return self.x1 - self.x0


def _stroke(img: np.ndarray, bar: Bar, c0: int, c1: int, at: float) -> Stroke | None:
    """The stroke of the bar's grey that crosses it in columns ``c0:c1`` nearest column
    ``at``, None where nothing of its grey reaches over a row past the bar's own rim (its
    anti-aliased rows at half contrast, as along its middle: an enlarged bar's rim is a
    row or two, and a window at its end would otherwise be all stroke).  Strokes are
    told apart by a column of neither: a tick beside a panel's edge, 3 px apart, is a
    tick.  Only a stroke joined to the bar counts: the stem of a label's 'm' a few px
    before the bar was taken as the twin of a fibre at its other end (a review's case:
    205 px read for 200, no doubt)."""
    bg = surface(img, bar)[0]
    if abs(bar.fg - bg) < 1e-3:
        return None
    c0, c1 = max(0, c0), max(0, c1)

    def runs(lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:  # rows of its grey from the bar outwards
        cover = (img[:, lo:hi] - bg) / (bar.fg - bg) >= 0.5
        return (np.cumprod(cover[:bar.y0][::-1], axis=0).sum(axis=0),
                np.cumprod(cover[bar.y1:], axis=0).sum(axis=0))

    quarter = bar.length // 4
    rim_up, rim_down = (float(np.median(r)) if r.size else 0.0 for r in runs(bar.x0 + quarter, bar.x1 - quarter))
    up, down = runs(c0, c1)
    on_bar = (img[bar.y0:bar.y1].mean(axis=0) - bg) / (bar.fg - bg) >= 0.5  # the bar's rows hold its grey

    def joined(k0: int, k1: int) -> bool:  # crosses the bar, or touches its run through the bar's grey
        lo, hi = (k1, bar.x0) if k1 <= bar.x0 else ((bar.x1, k0) if k0 >= bar.x1 else (k0, k1))
        return bool(on_bar[k0:k1].any() and on_bar[lo:hi].all())

    spans = [(c0 + a, c0 + a + n) for a, n in _spans((up > rim_up + 1) | (down > rim_down + 1))
             if joined(c0 + a, c0 + a + n)]
    if not spans:
        return None
    k0, k1 = min(spans, key=lambda s: max(s[0] - at, at - (s[1] - 1), 0.0))
    inked = ((img[:, k0:k1] - bg) / (bar.fg - bg) >= 0.5).mean(axis=1) >= 0.5  # rows the stroke crosses
    return Stroke(k0, k1, int(np.argmin(np.r_[inked[:bar.y0][::-1], False])),
                  int(np.argmin(np.r_[inked[bar.y1:], False])))


def _tick_shaped(stroke: Stroke, bar: Bar) -> bool:
    """A stroke shaped like an end tick of ``bar``."""
    width, up, down = stroke.width, stroke.up, stroke.down
    return (min(up, down) >= 1 and min(up, down) >= 0.5 * max(up, down)
            and up + down + bar.thick >= 2 * width and width <= 2 * bar.thick + 2)


def _spans(mask: np.ndarray) -> list[tuple[int, int]]:
    """(start, length) of the runs of True in a 1-D mask."""
    edges = np.flatnonzero(np.diff(np.r_[0, mask.astype(np.int8), 0]))
    return [(int(a), int(b - a)) for a, b in zip(edges[::2], edges[1::2])]
