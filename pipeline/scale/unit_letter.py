"""Whether a label's unit begins with a bowl (u) or an arch (n): 'um' against 'nm'.

Why: an ASCII 'um' and an 'nm' differ by one letter and a factor of 1000.  A bold serif
'50 nm' 11 px tall, under noise, lost the arch of its 'n' at the line's threshold, and
Tesseract read '50 um' at every OCR size at confidence 78-96: every other check agreed.
The µ of a real micro label hangs below the baseline and is told apart elsewhere
(``parse._micro_or_pico``); this reads the first of the two x-height letters of an
ASCII 'um', where an 'nm' would be read for one.
"""
from __future__ import annotations

import numpy as np

from .glyphs import glyph_pieces, upright
from .label import Label

ARCH, BOWL = "n", "u"
_FAINT = 0.1  # coverage over a counter's open end, past its middle's, that is a stroke however faint


def first_letter(label: Label) -> str | None:
    """'u' where the unit's first letter shows a bowl, 'n' an arch, None where neither
    clearly: too small (under 4 px of x-height), a piece below the baseline in the unit's
    columns (a descender, or a speck), no two stems, ink at both ends of the counter, or
    no coverage beyond the drawn ink (``Label.coverage``).

    The unit is the run of pieces at the right end of the label whose tops are no higher
    than the last piece's (a digit rises above the x-height, if only by a pixel); the
    first letter's counter lies between the first two runs of columns that a stem fills
    (0.6 of the x-height drawn), and its middle third is read (all of it under 3 px),
    clear of the stems' soft edges and of a serif reaching in.  In the window's own
    coverage (not only what was drawn: an arch too faint to be drawn still shows there,
    0.2-0.5 of the ink's contrast on the '50 nm' above) a bowl has ink 0.15 over the
    counter's middle rows in two of its bottom 0.35 rows (an 'n''s feet nearly meeting
    are one row), and in its top 0.35 no more than 0.1 over the middle rows (a blurred
    counter holds its stems' soft edges).  An arch has 0.3 over them in its top rows and
    its bottom clear.  So a serif 'u' whose top serif reaches the middle is None, a doubt
    on an ASCII 'um'.  An 'n' whose arch kept 0.3 of the contrast was no bowl in four
    fonts at 12-24 px; an arch lost altogether leaves nothing to see.  Clean 'nm' labels
    of 9-14 px in every font on this machine: 20 of 3729 lines read as a bowl (small
    italics, Noto bold), where OCR would also have to misread them.  Italic labels are
    read set upright."""
    ink, raw, lh = label.ink, label.coverage, label.lh
    if raw is None or raw.shape != ink.shape:
        return None  # no coverage beyond the drawn ink: a lost arch would not show
    if label.slant:
        pad = int(np.ceil(label.slant * ink.shape[0] / 2)) + 1
        ink, raw = upright(ink, label.slant, pad) > 0.5, upright(raw, label.slant, pad, 1)
    lab, st, big, _, base = glyph_pieces(ink, lh)
    if len(big) < 2:
        return None
    order = sorted(big, key=lambda i: -(st[i, 0] + st[i, 2]))
    xtop, b = st[order[0], 1], int(round(base))
    h = b - xtop
    if h < 4:
        return None
    for tol in (0, max(1, int(round(0.12 * lh)))):  # a serif may lift a letter's top a pixel
        unit = []
        for i in order:  # from the right, while the pieces' tops are no higher than the last's
            if st[i, 1] < xtop - tol:  # (a small digit rises only a pixel above the x-height)
                break
            unit.append(i)
        u0, u1 = int(min(st[unit, 0])), int(max(st[unit, 0] + st[unit, 2]))
        stems = (ink[xtop:b, u0:u1].sum(axis=0) >= 0.6 * h).astype(np.int8)  # columns a stem fills
        edges = np.flatnonzero(np.diff(np.concatenate(([0], stems, [0]))))  # starts and ends of stem runs
        if len(edges) >= 10:  # five stems: a letter and the m
            break
    if ink[b + max(1, int(0.15 * lh)):, u0:u1].any() or u1 - u0 < 4 or len(edges) < 4:
        return None
    c0, c1 = u0 + int(edges[1]), u0 + int(edges[2])  # the counter: between the first two stems
    third = (c1 - c0) // 3  # its middle third (all of it under 3 px): clear of the stems' soft edges
    c0, c1 = c0 + third, c1 - third  # and of a serif reaching in
    k = max(1, int(round(0.35 * h)))
    rows = raw[xtop:b, c0:c1].mean(axis=1)  # the counter's coverage, row by row
    top, bottom, middle = float(rows[:k].max()), float(rows[h - k:].max()), float(rows[k:h - k].mean())
    if (bottom - middle >= 0.15 and int((rows[h - k:] >= middle + 0.08).sum()) >= 2  # a bowl two rows thick:
            and top <= middle + _FAINT):  # an 'n''s feet nearly meeting are one
        return BOWL
    return ARCH if top - middle >= 0.3 and bottom <= middle + _FAINT else None
