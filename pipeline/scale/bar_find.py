"""Find bar-shaped strokes in a frame: the candidates the scale-bar reader tries to label.

Two kinds of search, because bars reach psdwatch in two states:
* Drawn by the microscope's software and untouched: the bar is exactly the frame's
  extreme value (white or black), so a threshold near that extreme finds it and
  nothing else (``drawn``).
* Resampled, compressed or re-rendered for a paper: its rows are no longer one grey
  value, its ends are soft, it may be 1-3 px thick, coloured (grey after conversion)
  or drawn on a texture as bright as itself.  Here a stroke is what is brighter (or
  darker) than the pixels a few rows above and below it: a vertical top-hat, which
  keeps horizontal strokes up to ``_SOFT_THICK`` px thick and drops the texture's
  larger blobs, thresholded at two contrasts (``soft``).
In both, a bar is a group of runs of equal extent on consecutive rows, with
contrasting rows above and below, not the edge of a larger region; two similar
collinear segments with text between are one split bar (FEI databar).
Boxes are half-open (x0, y0, x1, y1): ``image[y0:y1, x0:x1]``.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

Box = tuple[int, int, int, int]  # half-open (x0, y0, x1, y1): image[y0:y1, x0:x1]

_SOFT_THICK = 9  # thickest stroke the top-hat search keeps (px); thicker bars are drawn ones
_SOFT_LEVELS = (0.3, 0.15)  # top-hat contrasts (of the frame's range) the soft search cuts at


@dataclass
class Bar:
    """One candidate: a horizontal stroke of polarity ``pol`` and grey ``level`` (0-1 scaled)."""

    x0: int
    x1: int
    y0: int
    y1: int
    pol: int  # +1 white bar, -1 black bar
    gap: tuple[int, int] | None = None  # the label's gap in a split (FEI) bar
    level: float | None = None  # the bar's grey value when it is not the frame's extreme (soft)

    length = property(lambda self: self.x1 - self.x0)
    thick = property(lambda self: self.y1 - self.y0)
    soft = property(lambda self: self.level is not None)

    @property
    def fg(self) -> float:
        """The bar's value in the 0-1 scaled image."""
        if self.level is not None:
            return self.level
        return 1.0 if self.pol > 0 else 0.0

    @property
    def span(self) -> float:
        """How far the bar's grey lies from the other colour's extreme: what "its colour"
        and "the other colour" are judged against (a soft bar's grey is not 0 or 1)."""
        return abs(self.fg - (0.0 if self.pol > 0 else 1.0))

    def pieces(self) -> list[tuple[int, int]]:
        return [(self.x0, self.x1)] if self.gap is None else [(self.x0, self.gap[0]), (self.gap[1], self.x1)]


def find_bars(img: np.ndarray) -> list[Bar]:
    """Drawn bars first, then soft strokes that no drawn bar already covers."""
    drawn = _drawn(img)
    found = list(drawn)
    for bar in _soft(img):
        if not any(same_stroke(bar, b) for b in found):
            found.append(bar)
    return [b for b in found if not _between_ticks(img, b)]


def _between_ticks(img: np.ndarray, bar: Bar) -> bool:
    """A strip of one colour cut to a bar's shape by the end ticks of a thin bar of the
    other colour beside it, not a bar: past each end a stroke of the other colour (at
    most 4 px wide, or as wide as that bar is thick and 2 px), then the strip's colour
    again; the stroke goes on at least 2 rows past a band of the other colour (at most
    max(10, 2 x thick) rows, with the strip's colour past it) that runs along the strip
    within 3 rows (an edge enlarged 3x takes 2 rows); and the strip has no ticks of its
    own colour at its ends.

    The white margin left between a black H-bar and the top of its white box, once
    sharpened, is a run of white exactly as long as the space between the ticks (71 px
    for a 75 px bar, read with the figure's big white label, no doubt); so is the black
    band between an XL30's white H-bar and the image, once the frame is turned 0.4°
    (157.6 px for 162).  A bar in a tight box, or outlined, is ended by a margin or an
    outline that stops where the band beside it stops (a review's first form of this
    rule dropped such bars, and a box's other margin was read 3-5 % long instead); an
    H-bar has ticks of its own colour; either stays a bar.  The band must be the H-bar
    inside its box: past it the strip's colour again, evenly (a label's row is not), and
    on one side only (a bar in a box with thin margins above and below has a band on
    both): the rendered box layout, a black bar 8 px inside its box under its label, was
    dropped by this rule without those two conditions.  And past the band a tick is
    narrow: beside it the other colour stops (a box with rounded corners and a border of
    its bar's colour leaves its side margins open to the image past its bottom margin;
    taken for ticks they dropped the bar, and the border was read, 116 px for 120, no
    doubt: a review's case)."""
    h, w = img.shape
    fg, span = bar.fg, bar.span
    if span < 0.3:
        return False

    def far(v: np.ndarray) -> np.ndarray:  # pixels nearer the other colour
        return np.abs(v - fg) >= 0.4 * span

    def kind(c: int) -> int:  # 1 the strip's colour, -1 far from it, 0 between (or outside)
        if not 0 <= c < w:
            return 0
        off = abs(float(img[bar.y0:bar.y1, c].mean()) - fg)
        return 1 if off < 0.3 * span else (-1 if off >= 0.4 * span else 0)

    def ours(c0: int, c1: int) -> tuple[np.ndarray, np.ndarray]:  # rows of its colour from it, up and down
        near = np.abs(img[max(0, bar.y0 - 40):bar.y1 + 40, c0:c1] - fg) < 0.5 * span
        top = bar.y0 - max(0, bar.y0 - 40)
        return (np.cumprod(near[:top][::-1], axis=0).sum(axis=0),
                np.cumprod(near[top + bar.thick:], axis=0).sum(axis=0))

    inner = slice(bar.x0 + 2, bar.x1 - 2)
    bands = []  # (row past, rows, step)
    for step in (-1, 1):
        if (found := _band_beside(img, bar, step)) is not None:
            bands.append((*found, step))
    if len(bands) == 2:
        return False  # other colour on both sides: a bar in its box (or outlined), not a margin
    widest = max([4] + [t + 2 for _, t, _ in bands])  # an end tick, about as wide as its bar is thick

    def crosses(c0: int, c1: int, out: int) -> bool:  # the stroke goes on 2 rows past the band, a tick:
        def outside(r: int) -> bool:  # not the other colour just outside it (a rounded box's corner is)
            d = -1 if out < c0 else 1
            return any(abs(float(img[r, c]) - fg) < 0.4 * span for c in (out, out + d, out + 2 * d) if 0 <= c < w)

        return any(all(0 <= r < h and far(img[r, c0:c1]).mean() >= 0.5 and outside(r) for r in (past, past + step))
                   for past, _, step in bands)

    rim = [float(np.median(r)) for r in ours(inner.start, inner.stop)]  # a strip of a wider region has a rim
    own_ticks = 0
    for start, step in ((bar.x0 - 1, -1), (bar.x1, 1)):
        up, down = ours(*((bar.x0, bar.x0 + 3) if step < 0 else (bar.x1 - 3, bar.x1)))
        own_ticks += bool(((up >= rim[0] + 2) & (down >= rim[1] + 2)).any())
        kinds = [kind(start + step * i) for i in range(widest + 6)]
        if -1 not in kinds[:3]:
            return False
        a = kinds.index(-1)
        n = next((i for i, k in enumerate(kinds[a:a + widest + 1]) if k != -1), widest + 1)
        if n > widest or 1 not in kinds[a + n:a + n + 2]:  # the tick, then the strip's colour
            return False
        lo, hi = sorted((start + step * a, start + step * (a + n - 1)))
        if not crosses(lo, hi + 1, lo - 1 if step < 0 else hi + 1):
            return False
    return own_ticks < 2


def _band_beside(img: np.ndarray, bar: Bar, step: int) -> tuple[int, int] | None:
    """(first row past, rows) of a thin band of the other colour along `bar` on the side
    `step` (-1 above, 1 below), within 3 rows of it and at most max(10, 2 x thick) rows,
    with the bar's colour past it evenly; None where there is no such band."""
    h = img.shape[0]
    fg = bar.fg
    span = bar.span
    inner, thickest = slice(bar.x0 + 2, bar.x1 - 2), max(10, 2 * bar.thick)

    def far(v: np.ndarray) -> np.ndarray:  # pixels nearer the other colour
        return np.abs(v - fg) >= 0.4 * span

    edge = bar.y0 - 1 if step < 0 else bar.y1
    rows = [edge + step * i for i in range(3) if 0 <= edge + step * i < h]  # past an edge blurred or enlarged
    r = next((k for k in rows if far(img[k, inner]).mean() >= 0.8), None)
    if r is None:
        return None
    t = 0
    while 0 <= r < h and far(img[r, inner]).mean() >= 0.8 and t <= thickest:
        r, t = r + step, t + 1
    if t > thickest or not (0 <= r < h and far(img[r, inner]).mean() <= 0.5):
        return None  # a region of the other colour (a box's inside up to its label), no bar
    if max((np.abs(img[k, inner] - fg) < 0.3 * span).mean() for k in (r, r + step) if 0 <= k < h) < 0.85:
        return None  # a label's row or a textured surface past it, not the box the bar lies in
    return r, t


def outline_edge(img: np.ndarray, strip: Bar, found: list[Bar]) -> bool:
    """Whether `strip` is one of two strips of one colour that hug a bar of the other
    colour along both its sides, as long as it and as far past each of its ends (a few
    px): an outline round that bar, or a hollow bar round its inside.  Which edge the
    label's length belongs to, the inside or the outside, cannot be told from the
    drawing: a white bar outlined 2 px in black, with a black label, was read by its
    outline, 124 px for 120, no doubt (a review's case); a hollow black bar is read
    rightly by its outside.  The other strip is a bar candidate, or seen in `img`: an
    outline 1 px thick on one side and 2 on the other leaves its 1 px strip no bar
    (a 1-px line needs ticks), and the 2 px one was read, 124 px for 120 (a review's case)."""
    reach = max(4, 2 * strip.thick)

    def hugs(outer: Bar, mid: Bar) -> bool:  # outer along one side of mid, past each end alike
        left, right = mid.x0 - outer.x0, outer.x1 - mid.x1
        return (0 <= left <= reach and 0 <= right <= reach and abs(left - right) <= 1
                and (abs(outer.y1 - mid.y0) <= 1 or abs(outer.y0 - mid.y1) <= 1))

    for mid in found:
        if mid.pol == strip.pol or not hugs(strip, mid):
            continue
        above = strip.y1 <= mid.y0 + 1
        if any(twin is not strip and twin.pol == strip.pol and hugs(twin, mid) and (twin.y1 <= mid.y0 + 1) != above
               and abs(twin.x0 - strip.x0) <= 1 and abs(twin.x1 - strip.x1) <= 1 for twin in found):
            return True
        if _strip_along(img, strip, mid.y1 if above else mid.y0 - 1, 1 if above else -1):
            return True
    return False


def _strip_along(img: np.ndarray, strip: Bar, edge: int, step: int) -> bool:
    """Whether a row at `edge` or the next one out (`step`) holds a line of `strip`'s colour
    over `strip`'s columns, ending where it ends (the image past each end is not its colour)."""
    h, w = img.shape
    span = strip.span
    for r in (edge, edge + step):
        if not 0 <= r < h:
            continue
        ours = (np.abs(img[r, strip.x0:strip.x1] - strip.fg) < 0.3 * span).mean() >= 0.9
        past = [img[r, c] for c in (strip.x0 - 2, strip.x1 + 1) if 0 <= c < w]
        if ours and past and all(abs(v - strip.fg) >= 0.4 * span for v in past):
            return True
    return False


def boxes_label(img: np.ndarray, strip: Bar, label: tuple[int, int, int, int]) -> bool:
    """Whether `strip` is the edge of a box drawn round its own label: at both its ends a
    stroke of its colour runs up (or down) alongside the label, with the other colour
    inside, and past the label a line of its colour closes the box.  A scale bar is never
    a side of the box it sits in: a black box bordered 2 px in white, holding a white
    H-bar and its label, had the H-bar lost to JPEG ringing and the box's bottom border
    read, 221.7 px for 200, no doubt (a review's case).  A bar's ticks are short, a bar on
    a pale support has no contrast inside, and a bracket (a bar whose ticks rise beside
    its label) is open past the label (a review's caution)."""
    h, w = img.shape
    lx0, ly0, lx1, ly1 = label
    if not (strip.x0 <= lx0 and lx1 <= strip.x1):
        return False  # a label beside the strip, or wider than it: no box of the strip's width holds it
    above = ly1 <= strip.y0
    r0, r1 = (ly0, strip.y0) if above else ((strip.y1, ly1) if ly0 >= strip.y1 else (0, 0))
    if r1 - r0 < 3:
        return False
    span = strip.span
    k = max(2, min(strip.thick, 4))  # a border's width: the strip's own thickness, about
    for c0, inner in ((strip.x0, slice(strip.x0 + k, strip.x0 + k + 3)), (strip.x1 - k, slice(strip.x1 - k - 3, strip.x1 - k))):
        side = (np.abs(img[r0:r1, max(0, c0 - 1):c0 + k + 1] - strip.fg) < 0.3 * span).any(axis=1)
        inside = (np.abs(img[r0:r1, inner] - strip.fg) >= 0.6 * span).mean(axis=1) >= 0.5
        if (side & inside).mean() < 0.9:
            return False
    reach = max(8, 2 * (ly1 - ly0))  # a box's padding: about its content's height
    past = range(ly0 - 1, max(-1, ly0 - 1 - reach), -1) if above else range(ly1, min(h, ly1 + reach))
    across = slice(strip.x0 + k, strip.x1 - k)
    return any((np.abs(img[r, across] - strip.fg) < 0.3 * span).mean() >= 0.8 for r in past)


def frame_height(h: int, w: int) -> float:
    """The height a bar's thickness and its label's distance are judged against: the
    frame's, or 0.3 of its width for a strip (a databar cut from its frame: a Hitachi
    TM strip is 139 px tall and its ruler 12 px thick).  Unchanged for any frame at
    least 0.3 as tall as wide."""
    return max(float(h), 0.3 * w)


def same_stroke(a: Bar, b: Bar) -> bool:
    """The same stroke found twice (two searches or two contrasts)."""
    overlap = min(a.x1, b.x1) - max(a.x0, b.x0)
    return (a.pol == b.pol and overlap >= 0.5 * min(a.length, b.length)
            and min(a.y1, b.y1) - max(a.y0, b.y0) >= -1)


def _drawn(img: np.ndarray) -> list[Bar]:
    """Bars at the frame's extreme values, either polarity, split bars re-joined."""
    h, w = img.shape
    med = float(np.median(img[:: max(1, h // 256), :: max(1, w // 256)]))
    found: list[Bar] = []
    for pol, mask in ((1, img >= 1 - 0.3 * (1 - med)), (-1, img <= 0.3 * med)):
        groups = _run_groups(mask)
        found += [b for b in _bars_in(mask, pol, 2, groups=groups) if not _box_margin(img, b)]
        found += [b for b in _bars_in(mask, pol, 1, groups=groups) if b.thick == 1 and _h_ends(mask, b)]
    return found


def _h_ends(mask: np.ndarray, bar: Bar) -> bool:
    """Whether a 1-px line ends in ticks of its colour at both ends, up and down: an H-bar.

    A camera's bar in a small box of a downsized panel is a 1-px line between ticks;
    a 1-px line with no ticks is as likely an edge in the texture, and stays no bar."""
    def run(rows: np.ndarray) -> int:  # consecutive tick rows from the bar outwards
        return int(np.argmin(np.r_[rows, False]))

    for c0, c1 in ((bar.x0 - 1, bar.x0 + 2), (bar.x1 - 2, bar.x1 + 1)):
        cols = mask[:, max(0, c0):c1].any(axis=1)
        up, down = run(cols[:bar.y0][::-1]), run(cols[bar.y1:])
        if min(up, down) < 1 or up + down < 3:  # a tick crosses the line; its ends may be anti-aliased
            return False
    return True


def _box_margin(img: np.ndarray, bar: Bar) -> bool:
    """The margin of a box around a bar of the other colour, not a bar: on one side a stroke
    of the other colour and then the candidate's colour again (the box's far margin), on
    the other a surface that is not that stroke's colour (the image around the box).

    A white box holding a black bar leaves white strips above and below the bar, each
    a bar-shaped run between contrasting rows; the label over the box is white too, and
    read with a strip it measures the box, not the bar.  A bar on a band of the other
    colour has that colour on both sides and stays a bar."""
    h = img.shape[0]
    fg = bar.fg
    reach = max(8, 3 * bar.thick)

    def ours(r: int) -> float:
        return float((np.abs(img[r, bar.x0:bar.x1] - fg) < 0.3).mean())

    def other(r: int) -> float:
        return float((np.abs(img[r, bar.x0:bar.x1] - (1 - fg)) < 0.3).mean())

    sides = ([r for r in range(bar.y0 - 1, max(-1, bar.y0 - 1 - reach), -1)],
             [r for r in range(bar.y1, min(h, bar.y1 + reach))])
    for near, far in (sides, sides[::-1]):
        k = next((i for i, r in enumerate(near) if other(r) < 0.5), len(near))
        sandwich = 1 <= k < len(near) and ours(near[k]) >= 0.5
        if sandwich and far and other(far[0]) < 0.5 and (len(far) < 2 or other(far[1]) < 0.5):
            return True
    return False


def _soft(img: np.ndarray) -> list[Bar]:
    """Thin strokes brighter (darker) than the rows just above and below them."""
    kernel = np.ones((_SOFT_THICK + 2, 1), np.uint8)
    found: list[Bar] = []
    for pol, op in ((1, cv2.MORPH_TOPHAT), (-1, cv2.MORPH_BLACKHAT)):
        hat = cv2.morphologyEx(img, op, kernel)
        for level in _SOFT_LEVELS:
            for bar in _bars_in(hat >= level, pol, min_thick=1, split=False):
                if _uniform(img, bar) and _extend(img, bar) and not any(same_stroke(bar, b) for b in found):
                    found.append(bar)
    return found


def _uniform(img: np.ndarray, bar: Bar) -> bool:
    """A drawn stroke has one grey along its length; a ridge of texture does not.

    Sets ``bar.level`` to that grey (the median of the stroke's core row) and, for a bar
    taken as outlined, grows its rows over its half-covered edges (``_outlined_alike``)."""
    core = _core_row(img, bar)
    inner = core[2:-2] if core.size > 8 else core
    level = float(np.median(inner))
    lo, hi = np.percentile(inner, (10, 90))
    above = img[max(0, bar.y0 - 3):bar.y0, bar.x0:bar.x1]
    below = img[bar.y1:bar.y1 + 3, bar.x0:bar.x1]
    around = np.concatenate([above.ravel(), below.ravel()])
    if not around.size:
        return False
    contrast = abs(level - float(np.median(around)))
    bar.level = level
    if not above.size or not below.size:
        return False
    up, down = float(np.median(above)), float(np.median(below))
    # A bar lies on one surface: the same grey above and below it, row after row.
    # The edge of a box over a darker bar (a white strip between image and ink,
    # then the box again) does not.
    if not (contrast > 0 and (hi - lo) <= 0.35 * contrast
            and abs(up - down) <= 0.25 * min(abs(level - up), abs(level - down))):
        return False
    flat = all(np.ptp(np.median(side, axis=1)) <= 0.5 * contrast for side in (
        img[max(0, bar.y0 - 4):max(0, bar.y0 - 1), bar.x0:bar.x1],  # past a partly covered
        img[bar.y1 + 1:bar.y1 + 4, bar.x0:bar.x1]) if side.size)    # edge row
    return flat or _outlined_alike(img, bar, contrast)


def _outlined_alike(img: np.ndarray, bar: Bar, contrast: float) -> bool:
    """Whether the rows out from the bar's two sides run alike, as an outline of the other
    colour round it does (a white bar edged in black on the image, shrunk for a paper:
    its 2 px outline and then the texture lie within the 4 rows ``_uniform`` looks at).

    The edge of a box over a darker bar, which that look is there to refuse, differs
    side to side: the image on one, the dark bar and the box again on the other.  The
    profiles (median of each row over the bar) must agree within 0.2 of the contrast,
    row for row or shifted by one row (an edge row falls either way of a pixel), and
    each side must dip to the outline (0.8 of the contrast ``_uniform`` measured over the
    rows next to the bar: the outline's) within 5 rows and come back 0.3 of it within 8
    (the surface past the outline; a blurred ridge only falls).  Where they do, the bar
    takes in its half-covered edge rows (nearer its grey than the outline's): the label's
    window measures the surface past the outline from the bar's rows, and one row short
    it met the outline (the real figure with noise added was flagged)."""
    h = img.shape[0]
    if bar.y0 < 8 or bar.y1 + 8 > h:
        return False
    above = np.median(img[bar.y0 - 8:bar.y0, bar.x0:bar.x1], axis=1)[::-1]
    below = np.median(img[bar.y1:bar.y1 + 8, bar.x0:bar.x1], axis=1)
    far = lambda side: float(np.max((bar.fg - side[:5]) * bar.pol))  # noqa: E731 - how far from the bar's grey
    dip = lambda side: side[:5].min() if bar.pol > 0 else side[:5].max()  # noqa: E731 - the outline's grey
    back = lambda side: float(np.max((side[2:] - dip(side)) * bar.pol))  # noqa: E731 - and back again
    if min(far(above), far(below)) < 0.8 * contrast or min(back(above), back(below)) < 0.3 * contrast:
        return False  # no outline's dip on each side, with the surface again past it
    if not any(np.abs(above[max(0, k):5 + min(0, k)] - below[max(0, -k):5 - max(0, k)]).max() <= 0.2 * contrast
               for k in (-1, 0, 1)):
        return False
    while bar.y0 > 0 and abs(float(np.median(img[bar.y0 - 1, bar.x0:bar.x1])) - bar.fg) < 0.5 * contrast:
        bar.y0 -= 1  # its edge rows, nearer the bar's grey than the outline's: the outline is past them
    while bar.y1 < h and abs(float(np.median(img[bar.y1, bar.x0:bar.x1])) - bar.fg) < 0.5 * contrast:
        bar.y1 += 1
    return True


def _extend(img: np.ndarray, bar: Bar) -> bool:
    """Move a soft bar's ends out to where its core row leaves the bar's grey.

    The top-hat may lose a bar's last pixels to a glyph or tick close above or
    below; the bar's own row still holds its grey there.  False if the row runs
    into the frame's edge (not a bar)."""
    w = img.shape[1]
    r = bar.y0 + int(np.argmax(img[bar.y0:bar.y1, bar.x0:bar.x1].mean(axis=1) * bar.pol))
    near = abs(bar.fg - _surround(img, bar)) * 0.5
    row = img[r]
    x0, x1 = bar.x0, bar.x1
    while x0 > 0 and abs(row[x0 - 1] - bar.fg) < near:
        x0 -= 1
    while x1 < w and abs(row[x1] - bar.fg) < near:
        x1 += 1
    bar.x0, bar.x1 = x0, x1
    return x0 > 0 and x1 < w


def _surround(img: np.ndarray, bar: Bar) -> float:
    """Median grey of the 3 rows just above and below the bar."""
    around = np.concatenate([img[max(0, bar.y0 - 3):bar.y0, bar.x0:bar.x1].ravel(),
                             img[bar.y1:bar.y1 + 3, bar.x0:bar.x1].ravel()])
    return float(np.median(around)) if around.size else 1.0 - bar.fg


def _core_row(img: np.ndarray, bar: Bar) -> np.ndarray:
    """The bar's most extreme row (its centre when it is soft), between its ends."""
    rows = img[bar.y0:bar.y1, bar.x0:bar.x1]
    k = int(np.argmax(rows.mean(axis=1) * bar.pol))
    return rows[k]


def min_bar_length(width: int) -> int:
    """The shortest bar searched for in a frame ``width`` px wide: 3 % of the width, at
    least 12 px and at most 24 (comes_last: those under 3 % come last).

    At most 24, since bars of 25 px are to be read in frames of any width: a JEOL
    databar at X30,000 draws a 32 px bar in a 1280 px frame, under 3 % (38 px), and it
    was not searched.  Shorter bars than 25 px are found and flagged
    (reader.MIN_BAR_PX), not read."""
    return min(_three_percent(width), 24)


def _three_percent(width: int) -> int:
    """3 % of a frame's width, 12 px at least: the shortest bar searched for before bars
    of 24 px were."""
    return max(12, int(0.03 * width))


def comes_last(bar: Bar, shape: tuple[int, int]) -> bool:
    """Whether ``bar`` is taken after every other bar of a frame of ``shape`` (reader's
    five OCR'd lines, text first's bars whose surroundings are searched for words): it is
    shorter than 3 % of the width (found only since bars of 24 px are searched) and above
    the frame's bottom quarter.  So strokes of that size in the image (a glyph's, the
    texture's) never take a longer bar's place, while in the bottom quarter, where
    databars and most bars are, the lowest come first as before: a JEOL databar's 32 px
    bar must not wait behind the image's strokes."""
    return bar.length < _three_percent(shape[1]) and bar.y1 <= 0.75 * shape[0]


def _split_piece_length(width: int) -> int:
    """The shortest run looked at in a frame ``width`` px wide, a piece of a split (FEI)
    bar or a bar: half of 3 % of the width, 6 px at least, as before bars of 24 px were
    searched, but never longer than min_bar_length (from 1667 px wide): a half that is a
    bar on its own must be joined to its other half, or it is read alone, at half the
    length.  Taken as half of min_bar_length, a JEOL databar's glyph strokes of 12-18 px
    (the feet of 'LLNL', the arms of a field's 'E's) were joined as split bars over the
    letters between them; bottom first and split first, they took the OCR's five lines
    from the bar's own."""
    return min(max(6, _three_percent(width) // 2), min_bar_length(width))


def _run_groups(mask: np.ndarray) -> list[list[int]]:
    """Runs of a bar's length on consecutive rows of a boolean mask, grouped: (x0, x1, y0, y1).

    The scan of every row was most of _bars_in's time (13 ms on a 2048² mask): rows with
    no run long enough are now skipped, and _drawn reads one mask for two thicknesses
    and scans it once."""
    h, w = mask.shape
    shortest = _split_piece_length(w)  # a whole bar, or a piece of a split one
    # An opening by a row of `shortest` px keeps exactly the runs at least that long
    # (OpenCV, a few ms); only the rows still holding one are scanned run by run. The
    # anchors are explicit: with morphologyEx's centred one an even row shifts runs by 1 px.
    row = np.ones((1, shortest), np.uint8)
    long = cv2.dilate(cv2.erode(np.ascontiguousarray(mask, dtype=bool).view(np.uint8), row, anchor=(0, 0)),
                      row, anchor=(shortest - 1, 0))
    rows = np.flatnonzero(long.any(axis=1))
    pad = np.zeros((rows.size, w + 2), np.int8)
    pad[:, 1:-1] = long[rows]
    ri, xs = np.nonzero(np.diff(pad, axis=1))  # row-major: run starts and ends alternate
    y, a, b = rows[ri[0::2]], xs[0::2], xs[1::2]
    keep = (b - a >= shortest) & (a > 0) & (b < w)  # bars do not touch the edge
    return _group_runs(y[keep].tolist(), a[keep].tolist(), b[keep].tolist())


def _bars_in(mask: np.ndarray, pol: int, min_thick: int, split: bool = True,
             groups: list[list[int]] | None = None) -> list[Bar]:
    """Bar-shaped groups of runs in a boolean mask (``groups``: its _run_groups, when
    already scanned), split bars re-joined."""
    h, w = mask.shape
    min_len = min_bar_length(w)
    groups = _run_groups(mask) if groups is None else groups
    segs = [Bar(x0, x1, y0, y1, pol) for x0, x1, y0, y1 in groups
            if min_thick <= y1 - y0 <= 0.06 * frame_height(h, w) and x1 - x0 >= 3 * (y1 - y0)
            and all(min(mask[r, x0:x1].mean() for r in rows if 0 <= r < h) < 0.25
                    for rows in ((y0 - 1, y0 - 2), (y1, y1 + 1)) if 0 <= rows[0] < h)]  # one edge row may be partly covered
    u8 = mask.astype(np.uint8)
    found = []
    for s in _merge(segs, mask) if split else segs:
        if s.length >= max(min_len, 5 * s.thick):  # and not the edge of a larger region (box margin)
            ff = np.zeros((h + 2, w + 2), np.uint8)
            area = cv2.floodFill(u8, ff, (s.x0 + 1, s.y0), 2, 0, 0, cv2.FLOODFILL_MASK_ONLY | 8)[0]
            found += [s] if area <= 3 * s.length * s.thick else []
    return found


def _group_runs(y: list[int], a: list[int], b: list[int]) -> list[list[int]]:
    """[x0, x1, y0, y1] groups of runs of equal extent (+-2 px) on consecutive rows.

    +-2 px, since a resized figure's bar has a partly covered edge row whose
    anti-aliased ends fall short.  Only groups that reached the row above can grow
    (rows come in order), so a frame of large saturated particles, thousands of
    runs, stays linear."""
    groups: list[list[int]] = []
    above: list[list[int]] = []
    here: list[list[int]] = []
    row = -2
    for yy, ra, rb in zip(y, a, b):
        if yy != row:
            above, here, row = (here if yy == row + 1 else []), [], yy
        g = next((g for g in above if abs(g[0] - ra) <= 2 and abs(g[1] - rb) <= 2), None)
        if g is None:
            g = [ra, rb, yy, yy + 1]
            groups.append(g)
        else:
            above.remove(g)
            g[0], g[1], g[3] = min(g[0], ra), max(g[1], rb), yy + 1
        here.append(g)
    return groups


def _merge(segs: list[Bar], mask: np.ndarray) -> list[Bar]:
    """Join two similar collinear segments with text in between (FEI split bar)."""
    segs, used, out = sorted(segs, key=lambda s: s.x0), set(), []
    for i, a in enumerate(segs):
        for j, b in enumerate(segs[i + 1:], i + 1):
            gap = b.x0 - a.x1
            if (i in used or j in used or abs(a.y0 - b.y0) > 1 or abs(a.y1 - b.y1) > 1 or gap <= 0
                    or gap > 6 * max(a.length, b.length) or min(a.length, b.length) < 0.5 * max(a.length, b.length)):
                continue
            if mask[max(0, a.y0 - 3 * a.thick):a.y1 + 3 * a.thick, a.x1:b.x0].mean() > 0.02:
                out.append(Bar(a.x0, b.x1, min(a.y0, b.y0), max(a.y1, b.y1), a.pol, (a.x1, b.x0)))
                used |= {i, j}
    return out + [s for k, s in enumerate(segs) if k not in used]


def half_contrast_length(img: np.ndarray, bar: Bar, ticked: tuple[bool, bool] = (False, False),
                         beside: tuple[float | None, float | None] = (None, None)) -> tuple[float, float]:
    """Length between the points where the bar's rows cross half contrast, and its spread.

    For a resampled bar: its ends are soft, so each core row (a row at the bar's
    grey) is cut half way between the bar's grey and the surface beside each end,
    interpolating between pixels; end ticks, being on the bar's rows, count as bar,
    so an H-bar measures between the ticks' outer edges.  ``beside``: for each end (left,
    right), the grey it is cut against instead of that surface, where it has one (the
    outline drawn round it: length.outlined_ends)."""
    w = img.shape[1]
    fg, ref = bar.fg, _surround(img, bar)
    core = [r for r in range(bar.y0, bar.y1)
            if abs(float(np.median(img[r, bar.x0:bar.x1])) - fg) <= 0.25 * abs(fg - ref)]
    lengths = []
    for r in core or [bar.y0 + bar.thick // 2]:
        prof = img[r].astype(np.float64)
        ends = []
        for side, start, tick, own in ((-1, bar.x0 + 2, ticked[0], beside[0]), (1, bar.x1 - 3, ticked[1], beside[1])):
            x = _crossing(prof, start, side, (fg + ref) / 2, fg)
            beyond = prof[max(0, x - 7):max(0, x - 1)] if side < 0 else prof[x + 2:min(w, x + 8)]
            if not beyond.size:
                return float(bar.length), 99.0
            k = 2 * bar.thick + 2  # an end tick's columns, and a pixel of anti-aliasing each side
            ink = tick_ink(prof[x:x + k] if side < 0 else prof[max(0, x - k + 1):x + 1], fg, ref) if tick else fg
            half = (ink + (float(np.median(beyond)) if own is None else own)) / 2  # the surface right beside this end
            x = _crossing(prof, start, side, half, fg)
            a, b = prof[x], prof[x + side]  # a on the bar's side of half, b past it
            ends.append(x + side * ((a - half) / (a - b) if a != b else 0.5))
        lengths.append(ends[1] - ends[0])
    return float(np.mean(lengths)), float(np.std(lengths))


def tick_ink(end: np.ndarray, fg: float, surface: float) -> float:
    """The grey an H-bar's end is cut at half of: where its tick crosses it (``end``, the
    bar's rows over its end columns), not the bar's middle ``fg``.

    Blurred, a thin bar keeps less of its contrast along its middle than where a tick
    crosses it (a Zeiss '20 nm', 2 px thick, blurred by a pixel: 0.65 and 0.89), so
    half the middle's contrast lies past the tick's outer edge: 39.9 px read for 39.
    Kept to the middle's grey where the end is no darker (brighter) than the middle,
    and where it is 1.8 times its contrast or more: half of that would cut the middle."""
    ink = float(end.max() if fg > surface else end.min()) if end.size else fg
    return ink if abs(fg - surface) < abs(ink - surface) < 1.8 * abs(fg - surface) else fg


def _crossing(prof: np.ndarray, x: int, side: int, half: float, fg: float) -> int:
    """The last pixel from ``x`` towards ``side`` still on the bar's side of ``half``."""
    while 0 < x + side < prof.size - 1 and (prof[x + side] - half) * (fg - half) > 0:
        x += side
    return x
