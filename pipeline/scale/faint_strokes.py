"""Strokes a label line's ink threshold left out: a thin glyph shrunk with its figure to
half contrast, a stroke broken at the threshold.  Taken into the line where that is
safe (a leading '1', the rest of a broken stroke), a doubt where it is not.
"""
from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from .bar_find import Box

_INK = 0.6  # coverage of drawn ink: the label finder's threshold over texture
_SHARE = 0.1  # of the glyph height squared: a glyph's stroke of such ink, not a rim's pixel


def whole_strokes(soft: np.ndarray, ink: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """``ink`` with the thin pieces over the faint finders' 0.35 contour that join it,
    taken inside each glyph's own box (and a pixel round it): the rest of a stroke
    broken at the line's threshold.

    A 1-px stroke shrunk with its figure spreads over two columns at about half
    contrast each, and the 0.6 threshold kept over texture keeps only parts of it: the
    right side of an '0' and a leg of an 'n' were lost (0.7x of a real TEM figure), and
    Tesseract read '100 nm' as '10C rm'.  Only pieces at most 2 px wide (exact distance
    to their edge at most 1.5 px), seen whole up to 4 px round the box, are taken: a
    particle touching a glyph is wider (drawn with it an italic '50' was read 'S'),
    and cut at the box's edge it would look thin."""
    grown, (h, w), reach = ink.copy(), soft.shape, 4
    for x, y, cw, ch in boxes[:, :4]:
        r0, c0 = max(0, y - reach), max(0, x - reach)
        rows, cols = slice(r0, min(h, y + ch + reach)), slice(c0, min(w, x + cw + reach))
        own = ink[rows, cols]
        n, lab = cv2.connectedComponents(((soft[rows, cols] > 0.35) & ~own).astype(np.uint8), connectivity=8)
        touching = np.unique(lab[cv2.dilate(own.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0])
        inside = np.zeros(own.shape, bool)
        inside[max(0, y - 1) - r0:y + ch + 1 - r0, max(0, x - 1) - c0:x + cw + 1 - c0] = True
        for i in touching[touching > 0]:
            piece = lab == i
            dist = cv2.distanceTransform(np.pad(piece.astype(np.uint8), 1), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
            if dist.max() <= 1.5:
                grown[rows, cols] |= piece & inside
    return grown


def faint_strokes(soft: np.ndarray, line_ink: np.ndarray, line: Box, lh: int, py: int,
                  edged: Callable[..., float] | None = None) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """The pixels of a glyph-tall thin stroke just left of the line that its ink threshold
    left out: a leading '1' shrunk with its figure to half contrast; and the column spans
    of those of them that have faint ink as tall just before them, which are doubts.

    Read with the line it makes '100 nm' of what would be read '00 nm' or nothing; left
    out, the line is flagged (``faint_glyphs``).  Only a leading stroke is taken: noise
    read as a leading '1' makes a number that is no 1-2-5 value (15, 110, 1200), which
    the parser flags, while a faint ring in the gap between number and unit would make
    '1 µm' '10 µm' and pass; that one stays a flag.  The stroke must stand on the line's
    baseline, be as tall as its glyphs, lie whole inside the searched rows and columns
    (a streak of texture crossing them is not taken) and apart from the line's glyphs
    at the 0.35 contour.

    A stroke with a glyph-tall piece of 0.35 ink within a letter space before it may
    lead nothing: it may be the rest of a faint glyph broken in pieces, so it is read
    with the line and is a doubt.  The right half of a noisy bold italic '0' 8 px tall
    was taken as a lead before 'nm' whose '2' and the '0''s left half had broken off,
    and every OCR scale read '1 nm' (for '20 nm').  Left out instead, such a line lost
    its number and the frame its only reading that disagreed with a wrong bar's."""
    lx0, ly0, lx1, ly1 = line
    r0, r1 = max(0, ly0 - lh), min(soft.shape[0], ly1 + py)  # a digit rises above a line of x-height letters
    a = max(0, int(lx0 - 2.5 * lh))  # whole strokes a space away
    n, lab, st, _ = cv2.connectedComponentsWithStats((soft[r0:r1, a:lx0] > 0.35).astype(np.uint8), connectivity=8)
    kept = np.bincount(lab.ravel(), weights=line_ink[r0:r1, a:lx0].ravel(), minlength=n)
    out, preceded = np.zeros(soft.shape, bool), []
    x, y, cw, ch = (st[:, k] for k in range(4))
    for i in range(1, n):
        bottom = r0 + y[i] + ch[i]
        if not (0.9 * lh <= ch[i] <= 1.6 * lh and cw[i] <= 1.2 * lh and st[i, 4] <= 0.6 * cw[i] * ch[i]
                and kept[i] == 0 and y[i] > 0 and y[i] + ch[i] < r1 - r0 and x[i] > 0 and a + x[i] + cw[i] < lx0
                and lx0 - (a + x[i] + cw[i]) <= 1.2 * lh and ly1 - 0.4 * lh <= bottom <= ly1 + 1):
            continue
        piece = lab[y[i]:y[i] + ch[i], x[i]:x[i] + cw[i]] == i
        if cv2.distanceTransform(np.pad(piece.astype(np.uint8), 1), cv2.DIST_L2, 3).max() > max(2.0, 0.3 * ch[i]):
            continue
        if edged is not None and edged(piece, a + x[i], r0 + y[i], walled=True) < 0.6:
            continue  # past the outline of an outlined line: texture
        before = ((x + cw / 2 < x[i]) & (x + cw >= x[i] - 1.2 * lh) & (ch >= 0.6 * lh)  # (an italic one leans over it)
                  & (np.minimum(y + ch, y[i] + ch[i]) - np.maximum(y, y[i]) >= 0.5 * ch[i]))
        before[0] = before[i] = False
        if before.any():
            preceded.append((float(a + x[i]), float(a + x[i] + cw[i])))
        out[r0 + y[i]:r0 + y[i] + ch[i], a + x[i]:a + x[i] + cw[i]] |= piece
    return out, preceded


def faint_glyphs(soft: np.ndarray, line_ink: np.ndarray, line: Box, lh: int,
                 edged: Callable[..., float] | None = None) -> list[tuple[float, float]]:
    """Column spans of glyph-tall strokes in or just beside the line that its ink left
    out, wholly or by a stroke (``_part_left_out``).

    A thin '1' or '0' shrunk with its figure keeps half its contrast and falls below
    the line's ink threshold: the line is then read '10 nm' for '100 nm', and every
    check agrees with the shortened text.  ``edged`` (an outlined line's
    ``OutlineMap.share``) leaves out the texture, strokes no outline walls in: the grey
    between two outlined '0's of the real two-panel figure, glyph-tall and hemmed in by
    their outlines on both sides, runs on above and below them.  A glyph of an outlined
    label keeps its outline, at half contrast still past the surface; one whose outline
    fades too would be missed (the labels seen draw every glyph alike).

    Glyphs run together at the 0.35 contour (a blob wider than 1.2 glyph heights) are
    looked at where that blob is mostly drawn, and count only for ink left out as dark
    as drawn ink (``_INK``), ``_SHARE`` of the glyph height squared of it (3 px at least),
    far from the drawing: a faint bold serif '500 nm' 7 px tall broke at the line's threshold into
    specks and a 2 x 5 px piece of its 5, the rest of the 5 ran into the 0 beside it at
    the contour, and every OCR size read '200 nm', confidently.  Its left-out specks are
    0.2 of the glyph height squared, at coverage 0.87; the rim and texture joined to a
    resampled real label's glyphs (seven of them were flagged by any left-out pixel far
    from the drawing, the rule for a lone glyph) hold 0.02 at most, at 0.4-0.5."""
    lx0, ly0, lx1, ly1 = line
    a, b = max(0, int(lx0 - 1.2 * lh)), min(soft.shape[1], int(lx1 + 1.2 * lh))  # a letter space
    n, lab, st, _ = cv2.connectedComponentsWithStats((soft[ly0:ly1, a:b] > 0.35).astype(np.uint8), connectivity=8)
    ink = line_ink[ly0:ly1, a:b] > 0
    kept = np.bincount(lab.ravel(), weights=ink.ravel(), minlength=n)
    far: np.ndarray | None = None  # each pixel's distance from the drawn ink, once per line
    spans = []
    for i in range(1, n):
        if not (0.6 * lh <= st[i, 3] <= 1.8 * lh and st[i, 4] <= 0.6 * st[i, 2] * st[i, 3]):  # glyph-tall, stroked
            continue
        wide = st[i, 2] > 1.2 * lh  # glyphs run together at the 0.35 contour
        if wide and kept[i] < 0.5 * st[i, 4]:
            continue
        x, y, cw, ch = (int(v) for v in st[i, :4])
        if edged is not None and edged(lab[y:y + ch, x:x + cw] == i, a + x, ly0 + y, walled=True) < 0.6:
            continue  # past the outline of an outlined line: texture
        if kept[i] >= 0.5 * st[i, 4]:  # mostly drawn (so the line has ink): is a stroke of it left out?
            if far is None:
                far = cv2.distanceTransform((~ink).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
            rest = (lab == i) & ~ink
            if wide:  # glyphs run together: only ink as dark as drawn ink, a glyph's share of it
                rest &= soft[ly0:ly1, a:b] >= _INK
            if not _part_left_out(rest, far, lh, max(3.0, _SHARE * lh * lh) if wide else 1.0):
                continue
        spans.append((float(a + st[i, 0]), float(a + st[i, 0] + st[i, 2])))
    return spans


def _part_left_out(rest: np.ndarray, far: np.ndarray, lh: int, least: float = 1.0) -> bool:
    """Whether ``rest``, the pixels of a 0.35 contour's blob left out of the drawing,
    reach 0.3 of the line's height (3 px at least) from the drawn ink (``far``: each
    pixel's distance from it), ``least`` pixels of them: a glyph's stroke, not the
    anti-aliased rim that hugs it (2-3 px wide on an enlarged label).

    Drawn with its broken strokes' rest (``whole_strokes``), most of a glyph may be in
    while a stroke of it outside its box is not: a noisy serif '5' lost its top, the
    rest drawn was read '2' at two OCR sizes, confidently, for a bar of '50 nm'."""
    return bool(rest.any() and (far[rest] >= max(3.0, 0.3 * lh)).sum() >= least)
