"""The label of a bar candidate, found by geometry: a line of glyph-sized strokes of its colour.

Thin-stroked, glyph-sized blobs of the bar's colour in a line next to the bar are
the label; only that line goes to Tesseract.  Its glyph counts and decimal points,
measured on its ink (glyphs.py), are what the OCR text must agree with.
Boxes are half-open (x0, y0, x1, y1): ``image[y0:y1, x0:x1]``.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import cv2
import numpy as np
from scipy.sparse.csgraph import connected_components

from .bar_find import Bar, Box, frame_height
from .faint_strokes import faint_glyphs, faint_strokes, whole_strokes
from .glyphs import around, glyph_stats, italic_slant
from .outline import OutlineMap, outline_grey, outline_map


@dataclass
class Label:
    soft: np.ndarray  # ink coverage in [0, 1] of the line's glyphs only
    ink: np.ndarray   # the glyphs' pixels
    box: Box          # image coordinates
    n_glyphs: tuple[int, int]  # lower and upper bound of the glyph count (dots excluded)
    lh: int           # median glyph height
    n_dots: int       # small blobs on the baseline: decimal points
    side: str = "over"  # where the line is: "over" (above, below, in the gap) the bar, "left" or "right" of it
    bar_x: tuple[float, float] = (0.0, 0.0)  # the bar's ends in the line's columns
    spoilers: tuple[tuple[float, float, str], ...] = ()  # column spans of cut glyphs and blobs touching the line
    slant: float = 0.0  # italic lean, columns per row (0: upright); glyphs are counted and read set upright
    parts: tuple[tuple[int, int], ...] = ()  # column spans OCR'd as lines of their own: the fields of a databar row
    coverage: np.ndarray | None = None  # the window's coverage over soft's crop, not masked to the drawn ink


def surface_pixels(v: np.ndarray, fg: float, soft: bool = False) -> np.ndarray:
    """The pixels of ``v`` (beside a bar of grey ``fg``) that are the surface it lies on,
    not the bar's own grey (its edge, a tick, a glyph of its colour): those past 0.3 of
    it; for a soft bar (not an extreme grey), or where most of ``v`` lies within 0.3 of
    the bar's grey and still apart from it (0.1 or more at its median: a bright support
    under a white bar, a figure's greys bent), those past half their median's contrast.

    Taken past 0.3 only, the real in-situ TEM frame at gamma 0.5 (surface 0.75 under a
    bar at 1.0) had a surface of a few dark specks or, with none, the other extreme: its
    label's window was cut at half a contrast the surface never had, and the glyphs were
    one blob with it; a bar's end measured against it took its first surface column for
    three quarters of bar.  Both the label's window (``surface``) and the bar's ends
    (length.measure_bar) take the surface by this one rule."""
    if not v.size:
        return v
    off, median_off = np.abs(v - fg), abs(fg - float(np.median(v)))
    if soft or ((off > 0.3).mean() < 0.5 and median_off >= 0.1):
        return v[off > 0.5 * median_off]
    return v[off > 0.3]


def surface(img: np.ndarray, bar: Bar, past_outline: bool = False) -> tuple[float, float]:
    """Grey level of what the bar is drawn on (band, box, strip or image) and its spread:
    the 3 rows next to it, or past an outline drawn round it (``outline_grey``) the 3
    rows beyond that."""
    fg, skip = bar.fg, (4 if past_outline else 1)
    v = np.concatenate([img[max(0, bar.y0 - 3 - skip):max(0, bar.y0 - skip), bar.x0:bar.x1].ravel(),
                        img[bar.y1 + skip:bar.y1 + 3 + skip, bar.x0:bar.x1].ravel()])
    v = surface_pixels(v, fg, bar.soft)
    if not v.size:
        return 1.0 - fg, 0.0
    lo, mid, hi = np.percentile(v, (10, 50, 90))
    return float(mid), float(hi - lo)


@dataclass
class _Window:
    """The search window around a bar: its coverage map and the blobs of the bar's colour in it."""
    x0: int
    y0: int
    soft: np.ndarray  # coverage of the bar's colour, 0 (surface) .. 1 (bar)
    n: int
    lab: np.ndarray   # blob labels
    st: np.ndarray    # blob stats (x, y, w, h, area)
    inner: np.ndarray  # blobs not cut by the window's edge
    glyph: np.ndarray  # blobs shaped like glyphs
    outline: OutlineMap | None = None  # round a bar with an outline: where it (and a label's) lies


def text_lines(img: np.ndarray, bar: Bar, ink: float | None = None) -> list[Label]:
    """The nearest line of thin-stroked, glyph-sized blobs of the bar's colour on each side.

    One over (above, below or in the gap), one left and one right of the bar, because
    in a data line the bar has fields on both sides ("x2,000  WD 4.9 ▬▬ 2 µm") and the
    nearer may be the wrong one; the reader keeps the line whose words hold a label
    in the right place.  Over (or under) a long bar several fields may stand on one row,
    as near as each other (a Hitachi TM ruler over "14:17 I  MMD7.9  x300  300 µm"):
    the whole row is the "over" line, each field OCR'd as a line of its own (Tesseract
    reads a long line of spaced fields worse), and the parser takes the row's one
    number + unit (a field's name before a value, "WD 10.0 mm", rules the value out; two
    values, none).  ``ink``: the grey the label's strokes are cut against, where it is
    not the bar's (own_ink.label_inks).
    """
    win = _window(img, bar, ink=ink)
    found = sorted(_near_lines(win, bar), key=lambda c: c[0])
    cut = [b for _, line, _ in found for b in _cut_beside(win, line, bar, img.shape)]
    if cut:  # a glyph of a line cut by the window's edge: left out, '0.5 µm' was read '5 µm'
        box = (min(c[0] for c in cut) + win.x0, min(c[1] for c in cut) + win.y0,
               max(c[2] for c in cut) + win.x0, max(c[3] for c in cut) + win.y0)
        grown = _window(img, bar, box, ink=ink)  # grown by the lines' and cut glyphs' height around them
        if grown.soft.shape != win.soft.shape:
            win, found = grown, sorted(_near_lines(grown, bar), key=lambda c: c[0])
    nearest: dict[str, tuple] = {}
    for c in found:
        nearest.setdefault(c[2], c)
    parts: list[tuple[int, int]] = []
    if "over" in nearest:
        nearest["over"], parts = _row(nearest["over"], [c for c in found if c[2] == "over"])
    return [_line_label(img, win, bar, line, side, parts if side == "over" else [])
            for _, line, side in sorted(nearest.values(), key=lambda c: c[0])]


def _row(first: tuple, over: list[tuple]) -> tuple[tuple, list[tuple[int, int]]]:
    """The nearest line over a bar joined with every line as near on its row (fields of a
    databar spread over a ruler): the first line's distance and glyph height, their box;
    and each line's columns (window coordinates), left to right."""
    d0, (x0, y0, x1, y1, lh), side = first
    row = sorted(c[1] for c in over if c[0] - d0 <= 0.25 and min(c[1][3], y1) - max(c[1][1], y0) >= 0.5 * lh)
    box = (min(r[0] for r in row), min(r[1] for r in row), max(r[2] for r in row), max(r[3] for r in row), lh)
    return (d0, box, side), [(int(r[0]), int(r[2])) for r in row]


def words_ink(img: np.ndarray, box: Box, pol: int) -> tuple[float, float, float]:
    """Grey of the ink of polarity ``pol`` in a words' box, and of the surface it is drawn
    on with that surface's spread: (ink, surface, spread), as ``surface`` gives a bar's.

    The ink is what the brightest (darkest) 3 % of the box hold: glyph strokes cover more
    of a word's box than that.  The surface is the rest of the box, less what is near the ink's grey."""
    x0, y0, x1, y1 = box
    v = img[max(0, y0):y1, max(0, x0):x1].ravel()
    if v.size < 16:
        return (1.0 if pol > 0 else 0.0), (0.0 if pol > 0 else 1.0), 0.0
    fg = float(np.percentile(v, 97 if pol > 0 else 3))
    rest = v[(v - fg) * pol < -0.3 * float(np.ptp(v))]
    if not rest.size:
        return fg, 1.0 - fg, 0.0
    lo, mid, hi = np.percentile(rest, (10, 50, 90))
    return fg, float(mid), float(hi - lo)


def window_reach(bar: Bar, shape: tuple[int, int]) -> float:
    """How many rows above and below a bar its label's line is looked for (own_ink
    measures the label's grey over the same rows)."""
    return min(0.8 * bar.length, 0.12 * frame_height(*shape)) + 2 * bar.thick


def _window(img: np.ndarray, bar: Bar, include: Box | None = None, pol: int | None = None,
            ink: float | None = None) -> _Window:
    """The blobs of the bar's colour around it (and around ``include``, a label's box
    seen by the text finder), and which of them are shaped like glyphs.

    With ``pol`` other than the bar's polarity the blobs are those of the words' own ink
    in ``include`` (a white label over the image above a black bar in a white box).
    With ``ink`` the coverage runs from the surface to that grey, not to the bar's."""
    h, w = img.shape
    L = bar.length
    outlined = False
    if include is not None and pol is not None and pol != bar.pol:
        fg, bg, spread = words_ink(img, include, pol)
    else:
        outlined = outline_grey(img, bar) is not None
        fg, (bg, spread) = bar.fg if ink is None else ink, surface(img, bar)
    if abs(fg - bg) < 1e-3:
        fg, bg = bar.fg, 1.0 - bar.fg
    dx, dy = min(2.2 * L, 0.35 * w), window_reach(bar, img.shape)
    wx0, wx1 = max(0, int(bar.x0 - dx)), min(w, int(bar.x1 + dx))
    wy0, wy1 = max(0, int(bar.y0 - dy)), min(h, int(bar.y1 + dy))
    if include is not None:
        m = include[3] - include[1]
        wx0, wx1 = max(0, min(wx0, include[0] - m)), min(w, max(wx1, include[2] + m))
        wy0, wy1 = max(0, min(wy0, include[1] - m)), min(h, max(wy1, include[3] + m))
    soft = np.clip((img[wy0:wy1, wx0:wx1] - bg) / (fg - bg), 0, 1)
    win = (soft > (0.5 if spread < 0.1 * abs(fg - bg) else 0.6)).astype(np.uint8)  # stricter over texture
    for sx0, sx1 in bar.pieces():  # the bar and its end ticks are not text
        win[max(0, bar.y0 - wy0 - 1):bar.y1 - wy0 + 1, max(0, sx0 - wx0 - 1):sx1 - wx0 + 1] = 0
    n, lab, st, _ = cv2.connectedComponentsWithStats(win, connectivity=8)
    x, y, cw, ch, area = st[:, 0], st[:, 1], st[:, 2], st[:, 3], st[:, 4]
    inner = (x > 0) & (y > 0) & (x + cw < win.shape[1]) & (y + ch < win.shape[0])
    glyph = inner & (ch >= 5) & glyph_sized(cw, ch, L) & (area >= 0.12 * cw * ch)
    glyph[0] = False
    for i in np.nonzero(glyph)[0]:  # strokes are thin, particles are solid
        sub = (lab[y[i]:y[i] + ch[i], x[i]:x[i] + cw[i]] == i).astype(np.uint8)
        glyph[i] = cv2.distanceTransform(np.pad(sub, 1), cv2.DIST_L2, 3).max() <= max(2.0, 0.3 * ch[i])
    if not outlined:
        return _Window(wx0, wy0, soft, n, lab, st, inner, glyph)
    beyond = surface(img, bar, past_outline=True)[0]  # what the outline, and a label edged alike, is drawn on
    return _Window(wx0, wy0, soft, n, lab, st, inner, glyph,
                   outline_map(img[wy0:wy1, wx0:wx1], lab, bar.pol, beyond, abs(fg - beyond)))


def glyph_sized(width: np.ndarray, height: np.ndarray, bar_length: float) -> np.ndarray:
    """Whether blobs of ``width`` x ``height`` px may be glyphs of a bar's label: no wider
    than 4 heights (a rule, a bar's edge is), no taller than 0.9 of a bar of
    ``bar_length`` px (8 px at least: a short bar's label may stand taller than it)."""
    return (height <= max(8.0, 0.9 * bar_length)) & (width <= 4 * height)


def _past_outline(win: _Window, sel: np.ndarray, lh: int) -> tuple[np.ndarray, np.ndarray] | None:
    """In a line whose glyphs are outlined like its bar (white edged in black on the
    image itself), the blobs of its colour that lie past that outline, masks over the
    window's blobs: (those left out of the line and of its doubts, those of them that
    may be one of its glyphs, a doubt).  None where the line is not outlined.

    The outline parts the glyphs from what they are drawn on, so a bright blob of the
    texture beside a glyph or showing through a counter is neither ink nor something
    touching the label: read with it, a real figure's '200 nm' was '200,mm', and flagged
    as touched.  A line is outlined where two glyph-tall blobs at least, and two thirds
    of them, are edged all round (0.9 of their rim, ``OutlineMap.share``).  Past the
    outline: a blob near the line with under 0.6 of its rim edged, or in an outlined
    glyph's counter (inside its box, the glyph's strokes left and right of it on its
    rows).  Never a speck on the baseline, from a glyph height before the first outlined
    glyph to the last, with 0.6 of its rim edged, walled in or not: a decimal point
    whose outline was blurred open is one, and the point checks (``_left_out``,
    ``glyph_stats``) judge it as on a line with no outline; a speck of the texture in
    the word space is not (on the real figure compressed, counted as a point it flagged
    '200 nm').

    Between the centres of the first and last outlined glyph, blobs past the outline
    holding a glyph's ink between two of them (0.15 of the glyph height squared, as
    bright as 0.8 of the outlined glyphs' median) are a doubt: an unoutlined glyph there,
    alone, broken or run into the texture, is no texture for sure, and left out it
    changes the value (a '50 nm' whose '0' was drawn without its outline was read
    '5 nm', confidently).  Left out before or after them it leaves a number that is no
    1-2-5 value ('00', '0', '.5' for '0.5': the parser reads none of them), no value,
    or no unit."""
    if win.outline is None:
        return None
    x, y, cw, ch = (win.st[:, k] for k in range(4))
    tall = sel & win.glyph & (ch >= 0.6 * lh)
    if tall.sum() < 2:
        return None
    lx0, ly0, lx1, ly1 = x[tall].min(), y[tall].min(), (x + cw)[tall].max(), (y + ch)[tall].max()
    near = (x < lx1 + 3 * lh) & (x + cw > lx0 - 3 * lh) & (y < ly1 + 2 * lh) & (y + ch > ly0 - 2 * lh)
    near[0] = False
    edged = np.ones(win.n)
    for i in np.nonzero(near)[0]:
        edged[i] = win.outline.share(win.lab[y[i]:y[i] + ch[i], x[i]:x[i] + cw[i]] == i, x[i], y[i], lh)
    own = tall & (edged >= 0.9)
    if own.sum() < 2 or own.sum() < 2 / 3 * tall.sum():
        return None
    counter = np.zeros(win.n, bool)
    for i in np.nonzero(own)[0]:
        inside = (x >= x[i]) & (x + cw <= x[i] + cw[i]) & (y >= y[i]) & (y + ch <= y[i] + ch[i]) & ~own
        for j in np.nonzero(inside)[0]:  # between two strokes of the glyph (an italic '1' leans over its point)
            rows = win.lab[y[j]:y[j] + ch[j]] == i
            counter[j] = bool(rows[:, x[i]:x[j]].any() and rows[:, x[j] + cw[j]:x[i] + cw[i]].any())
    cx = x + cw / 2
    top, base = int(np.median(y[own])), int(np.median((y + ch)[own]))
    point = ((ch < 0.45 * lh) & (np.abs(y + ch - base) <= 0.25 * lh + 1) & ~counter
             & (cx >= x[own].min() - lh) & (cx <= cx[own].max()))
    for i in np.nonzero(point & (edged < 0.6))[0]:  # edged round most of its rim, if open
        point[i] = win.outline.share(win.lab[y[i]:y[i] + ch[i], x[i]:x[i] + cw[i]] == i, x[i], y[i], lh,
                                     walled=False) >= 0.6
    beyond = ((edged < 0.6) | counter) & ~point
    beyond[0] = False
    bright = 0.8 * float(np.median(win.soft[np.isin(win.lab, np.nonzero(own)[0])]))
    doubt = np.zeros(win.n, bool)
    centres = np.sort(cx[own])
    for c0, c1 in zip(centres[:-1], centres[1:]):  # each gap between two outlined glyphs
        cols = slice(int(c0) + 1, int(np.ceil(c1)))
        lab = win.lab[top:base, cols][win.soft[top:base, cols] >= bright]
        ink = np.bincount(lab, minlength=win.n) * (beyond & ~counter)
        if ink.sum() >= 0.15 * lh * lh:
            doubt |= ink > 0
    return beyond, doubt


def _cut_beside(win: _Window, line: tuple[int, int, int, int, int], bar: Bar,
                shape: tuple[int, int]) -> list[tuple[int, int, int, int]]:
    """The line's box and those of the glyph-sized blobs cut by the window's edge (not the
    frame's) on its rows, over the bar or within two glyph heights of the line's ends
    (window coordinates); none when there are no such blobs.  A glyph of the line that the
    window cut off is left out of it: a small frame's window is shallow, the tops of a
    tall '0.5' reached past it, and 'µm' alone was the line."""
    lx0, ly0, lx1, ly1, lh = line
    x, y, cw, ch = (win.st[1:, k] for k in range(4))
    wh, ww = win.soft.shape
    cut = (((x == 0) & (win.x0 > 0)) | ((y == 0) & (win.y0 > 0))
           | ((x + cw == ww) & (win.x0 + ww < shape[1])) | ((y + ch == wh) & (win.y0 + wh < shape[0])))
    cut &= (ch <= 1.6 * lh) & (cw <= 3 * lh)  # glyph-sized, as far as the window shows them
    rows = np.minimum(y + ch, ly1) - np.maximum(y, ly0) >= 0.3 * lh
    near = ((x < lx1 + 2 * lh) & (x + cw > lx0 - 2 * lh)) | ((x < bar.x1 - win.x0) & (x + cw > bar.x0 - win.x0))
    hit = np.nonzero(cut & rows & near)[0]
    return [] if not hit.size else [(lx0, ly0, lx1, ly1)] + [
        (int(x[i]), int(y[i]), int(x[i] + cw[i]), int(y[i] + ch[i])) for i in hit]


def _near_lines(win: _Window, bar: Bar) -> list[tuple[float, tuple[int, int, int, int, int], str]]:
    """Lines of glyphs (vertical overlap, similar height, small gaps) within two glyph heights
    of the bar, 2.5 right of an H-bar (an XL30 databar shrunk to 0.7x puts its '2 µm' 2.1
    glyph heights right of the bar's tick; any bar's 2.5 took a databar's '1 µm' as the
    label of a stroke two fields to its left): (distance in glyph heights, (x0, y0, x1,
    y1, glyph height), side)."""
    x, y, cw, ch = win.st[:, 0], win.st[:, 1], win.st[:, 2], win.st[:, 3]
    idx = np.nonzero(win.glyph)[0]
    link = np.zeros((len(idx), len(idx)), bool)
    for k, i in enumerate(idx):  # same line: vertical overlap, similar height, small gap
        for m, j in enumerate(idx[k + 1:], k + 1):
            ov = min(y[i] + ch[i], y[j] + ch[j]) - max(y[i], y[j])
            gapx = max(x[i], x[j]) - min(x[i] + cw[i], x[j] + cw[j])
            link[k, m] = (ov >= 0.5 * min(ch[i], ch[j]) and gapx <= 1.2 * max(ch[i], ch[j])
                          and min(ch[i], ch[j]) >= 0.4 * max(ch[i], ch[j]))
    ncomp, comp = connected_components(link, directed=False)
    bx0, bx1, by0, by1 = bar.x0 - win.x0, bar.x1 - win.x0, bar.y0 - win.y0, bar.y1 - win.y0
    rise, drop = _tick_reach(win.soft, bx0, bx1, by0, by1)  # an H-bar's label sits above (below) its ticks' tips
    near = []
    for mem in (idx[comp == c] for c in range(ncomp)):
        if len(mem) < 2:
            continue
        lx0, ly0, lx1, ly1 = x[mem].min(), y[mem].min(), (x + cw)[mem].max(), (y + ch)[mem].max()
        lh = int(np.median(ch[mem]))
        if min(lx1, bx1) - max(lx0, bx0) >= 0.5 * (lx1 - lx0) or (lx0 < bx0 and lx1 > bx1):
            d, side = max(by0 - rise - ly1, ly0 - by1 - drop, 0), "over"  # above, below or in the gap
        elif min(ly1, by1 + lh) - max(ly0, by0 - lh) > 0:  # beside
            d, side = max(bx0 - lx1, lx0 - bx1, 0), "left" if lx1 <= bx0 + 0.5 * lh else "right"
        else:
            continue
        if d <= (2.5 if side == "right" and (rise or drop) else 2) * lh:  # an H-bar's label, right of its tick
            near.append((d / lh, (lx0, ly0, lx1, ly1, lh), side))
    return near


def _tick_reach(soft: np.ndarray, bx0: int, bx1: int, by0: int, by1: int) -> tuple[int, int]:
    """How far end ticks at both ends of the bar reach above and below its rows (0 if none).

    A Zeiss bar is an H: 2-px ticks rise a glyph height above the bar, and its label
    stands above the ticks, not above the bar."""
    def reach(rows: range) -> int:
        n = 0
        for r in rows:  # ink at both ends, and not between them (a line of text over the whole bar)
            if (not all((soft[r, max(0, c0):c1] > 0.5).any() for c0, c1 in ((bx0 - 1, bx0 + 3), (bx1 - 3, bx1 + 1)))
                    or (bx1 - bx0 > 12 and (soft[r, bx0 + 4:bx1 - 4] > 0.5).mean() > 0.2)):
                break
            n += 1
        return n
    up = reach(range(by0 - 1, -1, -1))
    down = reach(range(by1, soft.shape[0]))
    return (up if up <= 0.5 * (bx1 - bx0) else 0), (down if down <= 0.5 * (bx1 - bx0) else 0)


def _left_out(win: _Window, sel: np.ndarray, line: tuple[int, int, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Blobs beside a line's glyphs (``sel``) that may belong to its number yet were not
    taken: (a glyph just before the line, a point too small to count), masks over the
    window's blobs.

    A glyph standing just before the line, as tall as its glyphs, closer than a word space
    or with a point or comma between: the line or the words found began after the number
    did ('2.5 nm' in a monospace font, its '2' a wide cell away, was read '5 nm'; a
    '0.5 µm' whose '0.' the word finder missed, '5 µm').  A databar's field a space
    before the label ("SEI  100 nm") is no doubt.

    A solid point on the baseline between two glyphs, smaller than a point is counted at
    (a 1 x 2 px '.' of a 12 px '1.0 µm' shrunk for a paper): every OCR size read '10um'.
    It is not counted as a point (a noise speck would make '10' '1.0'), but it is a doubt.
    """
    lx0, ly0, lx1, ly1, lh = line
    x, y, cw, ch = (win.st[:, k] for k in range(4))
    cx = x + cw / 2
    small = ch < 0.45 * lh
    tall_sel = sel & win.glyph & ~small
    tall = float(ch[tall_sel].max()) if tall_sel.any() else float(lh)
    base = float(np.median((y + ch)[tall_sel])) if tall_sel.any() else float(ly1)  # not a µ's descender
    before = ((win.glyph | ~win.inner) & ~sel & (np.minimum(y + ch, ly1) - np.maximum(y, ly0) >= 0.5 * lh)
              & (ch >= 0.6 * lh) & (ch <= 1.1 * tall) & (x + cw <= lx0) & (x + cw >= lx0 - 1.5 * tall))
    before[0] = False
    point = ((ch < 0.6 * lh) & (x + cw <= lx0 + 1)  # a point, or a comma reaching below the baseline
             & (y + ch >= base - 0.25 * lh - 1) & (y >= base - 0.45 * lh) & (y + ch <= base + 0.45 * lh))
    for i in np.nonzero(before)[0]:
        before[i] = lx0 - (x[i] + cw[i]) <= 0.3 * tall or bool((point & (x >= x[i] + cw[i] - 1)).any())
    tiny = win.inner & ~sel & small & (np.abs(y + ch - base) <= 0.25 * lh + 1) & (cx > lx0) & (cx < lx1)
    tiny[0] = False
    if tiny.any():  # in a gap: no glyph ink in its columns on the rows just above the baseline
        r0, r1 = max(0, int(base - 0.3 * lh)), max(1, int(base))  # (italic glyphs lean over gaps higher up)
        taken = np.isin(win.lab[r0:r1], np.nonzero(tall_sel)[0]).any(axis=0)
        for i in np.nonzero(tiny)[0]:
            own = win.lab[y[i]:y[i] + ch[i], x[i]:x[i] + cw[i]] == i
            tiny[i] = (not taken[x[i]:x[i] + cw[i]].any()
                       and float(win.soft[y[i]:y[i] + ch[i], x[i]:x[i] + cw[i]][own].max()) >= 0.85)
    return before, tiny


def _line_label(img: np.ndarray, win: _Window, bar: Bar, line: tuple[int, int, int, int, int], side: str,
                parts: list[tuple[int, int]] | None = None) -> Label:
    """One line as a Label: its glyphs' coverage, counts, and what may spoil its reading;
    ``parts``, the columns (window coordinates) of fields on one row, OCR'd apart."""
    h, w = img.shape
    lx0, ly0, lx1, ly1, lh = line
    x, y, cw, ch, area = (win.st[:, k] for k in range(5))
    wx0, wy0, lab, soft, inner, glyph = win.x0, win.y0, win.lab, win.soft, win.inner, win.glyph
    px, py = max(2, int(0.25 * lh)), max(2, int(0.35 * lh))
    cx, cy = x + cw / 2, y + ch / 2
    small = ch < 0.45 * lh  # dots and Å rings inside the line, not specks beside it
    sel = inner & (cx >= lx0 - px) & (cx <= lx1 + px) & (cy >= ly0 - py) & (cy <= ly1 + py) & (ch <= 1.6 * lh)
    sel &= glyph | (small & (cx > lx0) & (cx < lx1) & (cy <= ly1) & (area >= max(1.0, (0.12 * lh) ** 2)))
    sel[0] = False
    past = _past_outline(win, sel, lh)
    beyond, unedged = past if past is not None else (np.zeros(win.n, bool), np.zeros(win.n, bool))
    edged = None if past is None else partial(win.outline.share, lh=lh)  # faint strokes: the outlined only
    if beyond.any():  # an outlined line: its box is its outlined glyphs' (and points')
        sel &= ~beyond
        lx0, lx1 = int(x[sel].min()), int((x + cw)[sel].max())
        ly0, ly1 = int(y[sel & glyph].min()), int((y + ch)[sel & glyph].max())
    cy0, cx0 = max(0, ly0 - py), max(0, lx0 - px)
    # What may spoil a reading: a glyph cut by the image edge beside the line, and
    # a blob of the label's colour that is no glyph yet overlaps the line (a
    # particle under a letter, or a letter merged with one and dropped).
    edge = ((x + wx0 == 0) | (x + cw + wx0 == w) | (y + wy0 == 0) | (y + ch + wy0 == h)) & (ch <= 1.6 * lh) & ~beyond
    edge &= (cw <= 3 * lh) & (np.minimum(y + ch, ly1) - np.maximum(y, ly0) >= 0.3 * lh)
    inside = np.bincount(lab[ly0:ly1, lx0:lx1].ravel(), minlength=win.n)  # pixels in the line's box
    touch = ~sel & ~edge & ~beyond & (ch >= 0.45 * lh) & (inside >= max(4.0, 0.1 * lh * lh))
    edge[0] = touch[0] = False
    before, tiny = _left_out(win, sel, (lx0, ly0, lx1, ly1, lh))
    before &= ~beyond
    tiny &= ~beyond
    spoilers = tuple((float(x[i]), float(x[i] + cw[i]), why) for why, m in (  # window columns until cx0 is final
        ("label touches the image edge", edge & (x < lx1 + 1.5 * lh) & (x + cw > lx0 - 1.5 * lh)),
        ("something of the label's colour touches it", touch),
        ("a glyph just before the label", before & ~edge & ~touch),
        ("a point too small to count between glyphs", tiny),
        ("a piece of the label's colour in it without the outline round its glyphs", unedged))
        for i in np.nonzero(m)[0])
    ink = np.isin(lab, np.nonzero(sel)[0])
    faint, preceded = faint_strokes(soft, ink, (lx0, ly0, lx1, ly1), lh, py, edged)  # read with the line too
    spoilers += tuple((a, b, "a faint glyph in or beside the label") for a, b in preceded)
    if faint.any():  # the line now starts at the stroke, and reaches up to its top
        cols, rows = np.nonzero(faint.any(axis=0))[0], np.nonzero(faint.any(axis=1))[0]
        lx0, ly0 = min(lx0, int(cols[0])), min(ly0, int(rows[0]))
        cx0, cy0 = max(0, lx0 - px), max(0, ly0 - py)
        ink |= faint
    spoilers = tuple((a - cx0, b - cx0, why) for a, b, why in spoilers)
    whole = whole_strokes(soft, ink, win.st[sel])  # drawn for OCR; the upper glyph count keeps the line's ink
    spoilers += tuple((a - cx0, b - cx0, "a faint glyph in or beside the label")
                      for a, b in faint_glyphs(soft, whole, (lx0, ly0, lx1, ly1), lh, edged))
    keep = ink[cy0:ly1 + py, cx0:lx1 + px]
    line_soft = around(soft[cy0:ly1 + py, cx0:lx1 + px], whole[cy0:ly1 + py, cx0:lx1 + px])
    box = (int(lx0 + wx0), int(ly0 + wy0), int(lx1 + wx0), int(ly1 + wy0))
    bx0, bx1 = bar.x0 - wx0 - cx0, bar.x1 - wx0 - cx0
    slant = italic_slant(keep)
    counts, n_dots = glyph_stats(line_soft, keep, lh, slant)
    cols = tuple((max(0, a - px - cx0) if k else 0, min(keep.shape[1], b + px - cx0))  # the first from column 0:
                 for k, (a, b) in enumerate(parts or [])) if len(parts or []) > 1 else ()  # a faint '1' read with it
    return Label(line_soft, keep, box, counts, lh, n_dots, side, (float(bx0), float(bx1)), spoilers, slant, cols,
                 soft[cy0:ly1 + py, cx0:lx1 + px].copy())


def token_label(label: Label, x0: float, x1: float) -> Label:
    """The part of a line that holds the label's words (columns x0..x1), with its own counts."""
    n, lab, st, _ = cv2.connectedComponentsWithStats(label.ink.astype(np.uint8), connectivity=8)
    centre = st[:, 0] + st[:, 2] / 2
    mine = [i for i in range(1, n) if x0 - 0.15 * label.lh <= centre[i] <= x1 + 0.15 * label.lh]
    ink = np.isin(lab, mine)
    soft = around(label.soft, ink)
    counts, n_dots = glyph_stats(soft, ink, label.lh, label.slant)
    spoil = tuple(s for s in label.spoilers if s[0] < x1 + 1.5 * label.lh and s[1] > x0 - 1.5 * label.lh)
    return Label(soft, ink, label.box, counts, label.lh, n_dots, label.side, label.bar_x, spoil, label.slant,
                 coverage=label.coverage)


def label_in_box(img: np.ndarray, bar: Bar, box: Box, side: str, pol: int | None = None) -> Label | None:
    """The glyphs inside ``box`` (where a text finder saw the label's words) as a Label,
    with the same counts and spoilers as a line found by geometry; None when fewer than
    two glyphs are there.  The glyphs are of the bar's colour, or of ``pol``, the words'
    own polarity, when it is not the bar's (ink and surface then measured in the box)."""
    win = _window(img, bar, box, pol)
    x, y, cw, ch = (win.st[:, k] for k in range(4))
    cx, cy = x + cw / 2 + win.x0, y + ch / 2 + win.y0
    bh = box[3] - box[1]
    mine = np.nonzero(win.glyph & (cx >= box[0]) & (cx <= box[2]) & (cy >= box[1] - 0.2 * bh)
                      & (cy <= box[3] + 0.2 * bh))[0]
    if len(mine) < 2:
        return None
    line = (int(x[mine].min()), int(y[mine].min()), int((x + cw)[mine].max()), int((y + ch)[mine].max()),
            int(np.median(ch[mine])))
    return _line_label(img, win, bar, line, side)
