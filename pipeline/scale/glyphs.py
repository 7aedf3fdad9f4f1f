"""A label line's glyphs: their italic slant and the line set upright, their count and
decimal points, and their pieces (the descender checks' and the unit letter's).

What the OCR text of a line must agree with is measured here, on the line's own ink:
a digit lost or invented, a point read or missed, a µ told from a p (parse.py).
"""
from __future__ import annotations

import cv2
import numpy as np


_SLANTS = (0.15, 0.2, 0.25, 0.3)  # italic fonts lean 10-17 degrees


def italic_slant(ink: np.ndarray) -> float:
    """The italic slant of a line (columns per row; 0 when upright): the shear that opens the
    most empty columns between its glyphs, where it opens clearly more than upright.

    Italic glyphs overlap in columns: counted by columns, '200 nm' is three glyphs, and
    Tesseract reads the 'n' of a tiny italic label as 'A' (Zeiss databars)."""
    def gaps(a: np.ndarray) -> int:
        cols = np.nonzero(a.any(axis=0))[0]
        return int(cols.size and (cols[-1] - cols[0] + 1 - cols.size))
    if ink.shape[0] < 6 or not ink.any():
        return 0.0
    pad = int(np.ceil(max(_SLANTS) * ink.shape[0] / 2)) + 1
    as_drawn = gaps(ink)
    best = max(_SLANTS, key=lambda sl: gaps(upright(ink, sl, pad) > 0.5))
    opened = gaps(upright(ink, best, pad) > 0.5)
    return best if opened >= max(as_drawn + 3, 1.5 * as_drawn) else 0.0


def upright(a: np.ndarray, slant: float, pad: int, interp: int = cv2.INTER_NEAREST) -> np.ndarray:
    """``a`` sheared back by ``slant`` about its middle row, ``pad`` columns added each side
    (whole pixels moved for a mask: a 1-px stroke stays whole)."""
    h, w = a.shape
    m = np.float32([[1, slant, pad - slant * h / 2], [0, 1, 0]])  # top rows left, bottom rows right
    return cv2.warpAffine(a.astype(np.float32), m, (w + 2 * pad, h), flags=interp, borderValue=0)


def around(soft: np.ndarray, ink: np.ndarray) -> np.ndarray:
    """The coverage of these glyphs only: their pixels and the anti-aliased rim around them."""
    return soft * (cv2.dilate(ink.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0)


def glyph_stats(soft: np.ndarray, ink: np.ndarray, lh: int, slant: float = 0.0) -> tuple[tuple[int, int], int]:
    """Glyph counts bracketing the truth, and the decimal points on the baseline.

    At a low threshold thin arches (n, m) hold but neighbours may touch; at the
    line's threshold glyphs stay apart but may break: the truth lies between.
    Italic glyphs are counted set upright (their columns overlap as drawn), and there
    two pieces are one glyph only where they share half the narrower one's columns (a
    serif foot still reaches under its neighbour); the dots are found as drawn
    (shearing a 1-px stroke may break its foot off).  A glyph of the ink 1.45 times as
    wide as the tallest is tall is glyphs run together (blurred, 'µm' was one blob 1.75
    times as wide, and '2 µm' counted 2): the upper count takes one more for each whole
    0.7 of that height it holds past the first, the last (the unit) at most two: a bold
    serif 'nm' run together is 2.1-2.3 and counted as three it let '500 nm' pass for
    '50 nm'.  No single glyph is that wide: a serif 'm' is 1.22, and counted as two it
    let '500nm' pass for '50nm'.  Digits run together are told by their height too
    (see ``_run_together``).
    """
    counts: list[int] = []
    pad, share = int(np.ceil(slant * ink.shape[0] / 2)) + 1, (0.5 if slant else 0.0)
    for m in (soft > 0.3, ink):
        if slant:
            m = upright(m, slant, pad) > 0.5
        spans = cv2.connectedComponentsWithStats(m.astype(np.uint8), connectivity=8)[2][1:]
        glyphs, left, right = [], -1, -1
        for a, b, h in sorted((int(s[0]), int(s[0] + s[2]), int(s[3])) for s in spans if s[3] >= 0.45 * lh):
            if right - a >= share * min(b - a, right - left):  # x-overlapping (or touching) pieces: one glyph
                right = glyphs[-1][1] = max(right, b)
                glyphs[-1][2] = max(glyphs[-1][2], h)
            else:
                left, right = a, b
                glyphs.append([a, b, h])
        counts.append(len(glyphs))
    tallest = max((int(s[3]) for s in spans), default=0)  # the ink's pieces (the loop's last pass): a digit's height
    merged = sum(_run_together(b - a, h, tallest, k == len(glyphs) - 1) for k, (a, b, h) in enumerate(glyphs))
    lab, st, big, _, base = glyph_pieces(ink, lh)
    if not big:
        return (counts[0], counts[1] + merged), 0
    st = st[1:]
    small = np.ones(len(st), bool)
    small[np.array(big) - 1] = False
    dots = small & (np.abs(st[:, 1] + st[:, 3] - base) <= 0.2 * lh + 1) & (st[:, 2] <= 0.35 * lh)
    # A point stands in the gap between two glyphs.  A speck within a glyph's columns (set
    # upright) and a pixel from its ink is a piece of that glyph broken off by noise (a
    # 9 px '2 nm': its 2's foot and its n's stem were counted as two decimal points); one
    # farther from the ink still counts (a kerned '7.' may put its point under the 7's arm).
    cx = st[:, 0] + st[:, 2] / 2 + (slant * (st[:, 1] + st[:, 3] / 2) + pad - slant * ink.shape[0] / 2 if slant else 0)
    inside = np.array([any(a <= c < b for a, b, _ in glyphs) for c in cx])
    if (dots & inside).any():
        tall = cv2.dilate(np.isin(lab, 1 + np.nonzero(~small)[0]).astype(np.uint8), np.ones((5, 5), np.uint8))
        for i in np.nonzero(dots & inside)[0]:  # within 2 px of a tall piece (one empty pixel between)
            inside[i] = bool(tall[lab == i + 1].any())
    return (counts[0], counts[1] + merged), int((dots & ~inside).sum())


def _run_together(width: int, height: int, tallest: int, last: bool) -> int:
    """How many more glyphs than one a glyph ``width`` x ``height`` px holds, against the
    line's ``tallest`` piece (a digit's height): one more for each whole 0.7 of that
    height past the first where it is 1.45 times as wide (the last, the unit, at most
    one more); and one more for a glyph before the last as tall as a digit and 1.2
    times as wide.  No digit is over 0.85 times as wide as tall (318 fonts, bold italic
    the widest), and a letter as wide (m) is no taller than an x: an italic '00'
    enlarged 2x, set upright, is 1.33 and was counted one, so '200 nm' was a doubt."""
    if not tallest:
        return 0
    more = int(width / (0.7 * tallest)) - 1
    if width >= 1.45 * tallest:
        return min(more, 1) if last else more
    return int(not last and height >= 0.85 * tallest and width >= 1.2 * tallest)


def glyph_pieces(ink: np.ndarray, lh: int) -> tuple[np.ndarray, np.ndarray, list[int], list[int], float]:
    """The connected pieces of ``ink`` (labels, stats), those at least 0.45 of the glyph
    height ``lh`` tall, the ones of those hanging below their baseline, and that baseline
    (the median of their bottoms): the glyphs' own parts, as the counts, the decimal
    points and the descender checks see them."""
    n, lab, st, _ = cv2.connectedComponentsWithStats(ink.astype(np.uint8), connectivity=8)
    big = [i for i in range(1, n) if st[i, 3] >= 0.45 * lh]
    if not big:
        return lab, st, big, [], 0.0
    base = float(np.median([st[i, 1] + st[i, 3] for i in big]))
    return lab, st, big, [i for i in big if st[i, 1] + st[i, 3] - base >= max(1.5, 0.15 * lh)], base
